"""Benchmark: the negative-binomial likelihood (--likelihood nb) on raw counts against the Gaussian on
log1p counts, for nvae (label quality) and deepaa (side quality), on real single-cell counts.

Data
----
scanpy's bundled ``pbmc68k_reduced`` (700 cells x 765 genes, no download). Its ``.raw.X`` holds
log1p(counts / n_counts * 1e4); the counts are recovered as round(expm1(raw) * n_counts / 1e4). The
smallest non-zero value of every cell then comes out at 1 count, and every value lies within 0.12 of a
whole number (the stored values are rounded), so these are the cells' real counts for these 765 genes
(assumption: the smallest non-zero count of each cell is 1, which the near-integrality confirms).

Protocol
--------
* One stratified split (by bulk_labels, random_state 0): 75 % training, 25 % test cells. The models see
  only the training cells (their own 10 % validation split is for early stopping).
* nb: ``archetool.fit(counts AnnData, likelihood="nb")`` -- encoder reads log1p(counts).
  gaussian: ``archetool.fit(log1p(counts) AnnData)`` -- standardised log1p counts, Gaussian likelihood with
  per-gene variance (the default for expression data).
* Held-out log-likelihood of the test cells' counts, nats per cell, at the encoder mean (and, for nvae,
  the true class): nb -- log NB(counts | softmax(decoder) x library, theta), summed over genes;
  gaussian -- the Gaussian on standardised log1p counts, discretised to a distribution over counts:
  P(c) = Phi(t(c + 0.5)) - Phi(t(c - 0.5)), t(c) = (log1p(c) - mean) / std in the model's units, with
  t(-0.5) = -inf. Both are then probabilities of the same integer counts, so the numbers compare.
* nvae (label bulk_labels): test accuracy and balanced accuracy of q(y|x).
  deepaa (side percent_mito, k = 4): test R^2 of the predicted side value.
Usage: python benchmarks/count_likelihood.py [--epochs 40] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, machine, markdown, mean_sd, write_report  # noqa: E402


def counts_anndata():
    import anndata as ad
    import scanpy as sc

    pbmc = sc.datasets.pbmc68k_reduced()
    raw = pbmc.raw.X.toarray() if hasattr(pbmc.raw.X, "toarray") else np.asarray(pbmc.raw.X)
    exact = np.expm1(raw.astype(np.float64)) * pbmc.obs["n_counts"].to_numpy()[:, None] / 1e4
    counts = np.round(exact)
    off = float(np.abs(exact - counts).max())
    adata = ad.AnnData(X=counts.astype(np.float32), obs=pbmc.obs[["bulk_labels", "percent_mito"]].copy(),
                       var=pbmc.raw.var[[]].copy())
    return adata, off


def heldout_loglik(model, x_test: np.ndarray, counts: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """log p(counts) per test cell (nats) at the encoder mean; see the module docstring."""
    import torch
    from scipy.stats import norm

    module = model.module
    prep = model.prep
    with torch.no_grad():
        z = torch.from_numpy(model.transform(prep.scale_x(x_test))["z"])
        if module.kind == "nvae":
            out = module._decoder_out(z, torch.from_numpy(labels))
        else:
            out = module.decoder(z)
        if prep.likelihood == "nb":
            return module.likelihood.log_prob(out, torch.from_numpy(counts.astype(np.float32))).sum(-1).double().numpy()
        sigma = module.likelihood.log_var.clamp(-6, 6).exp().sqrt().numpy()
    mean, std = np.asarray(prep.x_mean), np.asarray(prep.x_std)
    m = out.numpy()

    def t(c):
        return ((np.log1p(np.clip(c, 0, None)) - mean) / std - m) / sigma

    upper = norm.cdf(t(counts + 0.5))
    lower = np.where(counts > 0, norm.cdf(t(counts - 0.5)), 0.0)
    return np.log(np.clip(upper - lower, 1e-300, None)).sum(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    import anndata as ad
    from sklearn.model_selection import train_test_split

    import archetool

    adata, off = counts_anndata()
    idx = np.arange(adata.n_obs)
    train, test = train_test_split(idx, test_size=0.25, stratify=adata.obs["bulk_labels"], random_state=0)
    log_adata = ad.AnnData(X=np.log1p(adata.X), obs=adata.obs.copy(), var=adata.var.copy())
    classes = sorted(adata.obs["bulk_labels"].astype(str).unique())
    y_test = np.array([classes.index(c) for c in adata.obs["bulk_labels"].astype(str).to_numpy()[test]])
    results = {}
    tic0 = time.perf_counter()
    for kind, opts in (("nvae", dict(label="bulk_labels")), ("deepaa", dict(side=["percent_mito"], k=4))):
        for lik in ("nb", "gaussian"):
            for seed in args.seeds:
                data = adata if lik == "nb" else log_adata
                tic = time.perf_counter()
                model = archetool.fit(data[train].copy(), model=kind, likelihood=lik, epochs=args.epochs, seed=seed,
                                      progress_bar=False, out=f"/tmp/count_bench/{kind}-{lik}-{seed}", **opts)
                seconds = time.perf_counter() - tic
                test_data = data[test].copy()
                table = model.embed(test_data, inplace=False)
                ll = heldout_loglik(model, np.asarray(test_data.X), adata.X[test], y_test)
                rec = {"loglik": float(ll.mean()), "seconds": seconds}
                if kind == "nvae":
                    truth = adata.obs["bulk_labels"].astype(str).to_numpy()[test]
                    hit = table["pred_label"].astype(str).to_numpy() == truth
                    rec["accuracy"] = float(hit.mean())
                    rec["balanced"] = float(np.mean([hit[truth == c].mean() for c in np.unique(truth)]))
                else:
                    truth = adata.obs["percent_mito"].to_numpy()[test]
                    pred = table["pred_percent_mito"].to_numpy()
                    rec["r2"] = float(1 - ((pred - truth) ** 2).sum() / ((truth - truth.mean()) ** 2).sum())
                results.setdefault((kind, lik), []).append(rec)
                print(kind, lik, seed, rec, file=sys.stderr)
    rows = []
    for (kind, lik), recs in results.items():
        row = {"model": kind, "likelihood": "nb (counts)" if lik == "nb" else "gaussian (log1p counts)",
               "held-out log-lik (nats/cell)": mean_sd([r["loglik"] for r in recs])}
        if kind == "nvae":
            row["test accuracy"] = mean_sd([r["accuracy"] for r in recs])
            row["balanced accuracy"] = mean_sd([r["balanced"] for r in recs])
        else:
            row["side R² (percent_mito)"] = mean_sd([r["r2"] for r in recs])
        row["fit s"] = float(np.mean([r["seconds"] for r in recs]))
        rows.append(row)
    cols = ["model", "likelihood", "held-out log-lik (nats/cell)", "test accuracy", "balanced accuracy",
            "side R² (percent_mito)", "fit s"]
    notes = [f"pbmc68k_reduced counts recovered from .raw (max distance to a whole number {off:.3f}); "
             f"{len(train)} training / {len(test)} test cells, 765 genes; {args.epochs} epochs (early stopping, "
             f"patience 15), seeds {args.seeds}; mean ± sd over seeds.",
             f"Machine: {machine()}; load before {load_average()}; total {time.perf_counter() - tic0:.0f}s."]
    write_report("Count data: negative binomial vs Gaussian on log1p counts", markdown(rows, cols), notes,
                 "count_likelihood")


if __name__ == "__main__":
    main()

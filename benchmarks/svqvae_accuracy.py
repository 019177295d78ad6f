"""svqvae nearest-code accuracy on a held-out split vs a logistic-regression baseline, same split, same run.

Datasets
  digits   sklearn's 8x8 digits (1,797 images, 64 pixels, 10 classes), written as a CSV.
  lincs    a LINCS-shaped synthetic set made here, written as a .gctx (signatures x 978 genes):
           30 shared gene programmes (each a signed loading on 30-80 genes); each of 60 perturbagen classes
           switches on 2-4 of them with signed weights, so classes share programmes; per-signature potency
           (log-normal, 30 % of signatures weak), plate effects (24 plates, a rank-5 gene pattern each),
           unit gene noise; imbalanced Zipf-like class sizes (40 to 800 signatures, 5,614 in all).
  plate    (optional) the real L1000 plate of ../shared/data (377 signatures, 60 pert_iname classes of
           mostly 6 signatures): a small, hard real set; needs the shared file.

For every dataset and seed: one stratified split, 80 % train / 20 % test. svqvae is fitted with the
archetool Python API on the train rows only (its own validation rows for early stopping come out of
those), then the test rows are embedded and ``pred_label`` is compared with the truth. The baseline
is ``StandardScaler + LogisticRegression`` on the raw features of the same train rows, scored on the
same test rows. Nothing is tuned on the test rows.

    OMP_NUM_THREADS=2 python benchmarks/svqvae_accuracy.py --datasets digits,lincs --seeds 0,1,2

Prints a Markdown table and writes ``benchmarks/results/<name>.md`` (and the per-seed ``<name>.csv``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


# --------------------------------------------------------------------------------------- datasets


def digits() -> tuple[np.ndarray, np.ndarray, list[str]]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data.astype(np.float32), d.target.astype(str), [f"px{i}" for i in range(64)]


def lincs_like(n_classes: int = 60, n_genes: int = 978, n_programmes: int = 30, n_plates: int = 24,
               signal: float = 0.5, min_size: int = 40, max_size: int = 800, seed: int = 0,
               return_signatures: bool = False):
    """LINCS-shaped synthetic signatures: (x (n, 978) float32, labels (n,) str, gene names)
    [+ the true class signatures (60, 978) with ``return_signatures``]."""
    rng = np.random.default_rng(seed)
    programmes = np.zeros((n_programmes, n_genes))
    for j in range(n_programmes):
        genes = rng.choice(n_genes, size=rng.integers(30, 80), replace=False)
        programmes[j, genes] = rng.normal(size=len(genes))
    weights = np.zeros((n_classes, n_programmes))
    for c in range(n_classes):
        k = rng.integers(2, 5)
        chosen = rng.choice(n_programmes, size=k, replace=False)
        weights[c, chosen] = rng.choice([-1, 1], size=k) * rng.uniform(0.5, 1.5, size=k)
    ranks = rng.permutation(n_classes) + 1
    sizes = np.clip((max_size * ranks ** -0.8).astype(int), min_size, max_size)
    y = np.repeat(np.arange(n_classes), sizes)
    n = len(y)
    potency = rng.lognormal(0.0, 0.4, size=n) * np.where(rng.random(n) < 0.3, 0.3, 1.0)
    plates = rng.integers(0, n_plates, size=n)
    plate_effect = (rng.normal(size=(n_plates, 5)) * 0.4) @ rng.normal(size=(5, n_genes))
    x = signal * potency[:, None] * (weights[y] @ programmes) + plate_effect[plates] + rng.normal(size=(n, n_genes))
    names = np.array([f"PERT{c:02d}" for c in range(n_classes)])
    genes = [f"{200000 + g}_at" for g in range(n_genes)]
    if return_signatures:
        return x.astype(np.float32), names[y], genes, weights @ programmes
    return x.astype(np.float32), names[y], genes


def offdiag_r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r between the off-diagonal entries of two square matrices."""
    mask = ~np.eye(len(a), dtype=bool)
    return float(np.corrcoef(a[mask], b[mask])[0, 1])


def code_structure(model, x, y, train) -> dict:
    """lincs only: do the class codes recover which classes share gene programmes?

    r between the off-diagonal class-class correlations of the true signatures and of (a) the codes,
    (b) the decoded prototypes, (c) the plain class means of the training rows (for reference)."""
    from archetool.analysis.svqvae import code_correlations

    _, names, _, truth = lincs_like(return_signatures=True)
    classes = list(model.prep.classes)
    order = [int(c[4:]) for c in classes]  # PERTnn -> generator class nn
    true_corr = np.corrcoef(truth[order])
    codes = model.module.codes().numpy()
    import torch

    with torch.no_grad():
        proto = model.prep.unscale_x(model.module.decode(torch.from_numpy(codes)).numpy())
    means = np.stack([x[train][y[train] == c].mean(0) for c in classes])
    return {"r_codes": offdiag_r(code_correlations(codes), true_corr),
            "r_prototypes": offdiag_r(np.corrcoef(proto), true_corr),
            "r_class_means": offdiag_r(np.corrcoef(means), true_corr)}


def plate():
    """The real LINCS L1000 plate in ../shared/data (A375, 24 h; 377 signatures x 978 genes, 60 pert_iname)."""
    from archetool.data.readers.gctx import GctxSource

    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "lincs_l1000_a375_plate.gctx"
    if not path.exists():
        raise SystemExit(f"{path}: the shared LINCS plate is absent; drop 'plate' from --datasets")
    batch = GctxSource(path).read()
    return batch.matrix, batch.obs["pert_iname"].astype(str).to_numpy(), list(batch.feature_names)


DATASETS = {"digits": digits, "lincs": lincs_like, "plate": plate}


# ------------------------------------------------------------------------------------------- runs


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    train, test = train_test_split(idx, test_size=test_fraction, stratify=labels, random_state=seed)
    return np.sort(train), np.sort(test)


def write_split(name: str, x, y, genes, index, path: Path) -> Path:
    ids = [f"{name}_{i:05d}" for i in index]
    if name in ("lincs", "plate"):
        from archetool.data.readers.gctx import write_gctx

        path = path.with_suffix(".gctx")
        write_gctx(path, x[index], genes, ids, {"pert_iname": y[index]})
    else:
        path = path.with_suffix(".csv")
        frame = pd.DataFrame(x[index], columns=genes)
        frame.insert(0, "id", ids)
        frame["label"] = y[index]
        frame.to_csv(path, index=False)
    return path


def logistic(x, y, train, test) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    tic = time.perf_counter()
    scaler = StandardScaler().fit(x[train])
    clf = LogisticRegression(max_iter=3000).fit(scaler.transform(x[train]), y[train])
    return float(clf.score(scaler.transform(x[test]), y[test])), time.perf_counter() - tic


def svqvae(name, x, y, genes, train, test, seed, workdir: Path, epochs: int, set_options: dict,
           patience: int = 15) -> dict:
    from archetool.fitting import FitOptions, fit
    from archetool.model import ArchetoolModel

    train_path = write_split(name, x, y, genes, train, workdir / f"{name}_train")
    test_path = write_split(name, x, y, genes, test, workdir / f"{name}_test")
    label = "pert_iname" if name in ("lincs", "plate") else "label"
    tic = time.perf_counter()
    fit(FitOptions(data=str(train_path), model="svqvae", label=label, out=str(workdir / f"{name}_model"),
                   epochs=epochs, patience=patience, seed=seed, device="cpu", progress_bar=False, model_options=dict(set_options)))
    seconds = time.perf_counter() - tic
    model = ArchetoolModel.load(workdir / f"{name}_model")
    emb = model.embed(test_path)
    acc = float((emb["pred_label"].astype(str).to_numpy() == y[test]).mean())
    summary = model.config["summary"]
    extra = code_structure(model, x, y, train) if name == "lincs" else {}
    return {**extra, "svqvae_test_acc": acc, "svqvae_val_acc": summary.get("val_accuracy"), "svqvae_s": seconds,
            "epochs_run": summary["epochs_run"], "best_epoch": summary["best_epoch"]}


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="digits,lincs")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--patience", type=int, default=15, help="early-stopping patience of fit (its default: 15)")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--set", action="append", default=[], help="svqvae hyper-parameter KEY=VALUE (JSON value)")
    parser.add_argument("--out", default=None, help="directory for the per-seed CSV (default: benchmarks/results)")
    parser.add_argument("--name", default="svqvae_accuracy", help="results file name (benchmarks/results/NAME.md)")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    set_options = {}
    for item in args.set:
        key, value = item.split("=", 1)
        try:
            set_options[key] = json.loads(value)
        except json.JSONDecodeError:
            set_options[key] = value
    records = []
    for name in args.datasets.split(","):
        x, y, genes = DATASETS[name]()
        for seed in [int(s) for s in args.seeds.split(",")]:
            train, test = stratified_split(y, args.test_fraction, seed)
            base_acc, base_s = logistic(x, y, train, test)
            with tempfile.TemporaryDirectory() as tmp:
                rec = svqvae(name, x, y, genes, train, test, seed, Path(tmp), args.epochs, set_options, args.patience)
            rec = {"dataset": name, "seed": seed, "n": len(y), "features": x.shape[1], "classes": len(set(y)),
                   "test_rows": len(test), "logistic_test_acc": base_acc, **rec, "logistic_s": base_s}
            print(json.dumps(rec), file=sys.stderr, flush=True)
            records.append(rec)
    table = pd.DataFrame(records)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import RESULTS, machine, markdown, write_result

    out = Path(args.out) if args.out else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"{args.name}.csv", index=False)
    agg = table.groupby("dataset", sort=False).agg(
        n=("n", "first"), features=("features", "first"), classes=("classes", "first"), test_rows=("test_rows", "first"),
        svqvae_mean=("svqvae_test_acc", "mean"), svqvae_min=("svqvae_test_acc", "min"),
        logistic_mean=("logistic_test_acc", "mean"), logistic_min=("logistic_test_acc", "min"),
        wins=("svqvae_test_acc", lambda s: int((s.to_numpy() >= table.loc[s.index, "logistic_test_acc"].to_numpy()).sum())),
        seeds=("seed", "count"), fit_s=("svqvae_s", "mean"))
    lines = ["| dataset | rows x features | classes | test rows | svqvae nearest-code acc. (mean, min) | "
             "logistic acc. (mean, min) | svqvae >= logistic | fit s |", "|---|---|---|---|---|---|---|---|"]
    for name, r in agg.iterrows():
        lines.append(f"| {name} | {int(r.n):,} x {int(r.features)} | {int(r.classes)} | {int(r.test_rows)} | "
                     f"{r.svqvae_mean:.3f} ({r.svqvae_min:.3f}) | {r.logistic_mean:.3f} ({r.logistic_min:.3f}) | "
                     f"{int(r.wins)}/{int(r.seeds)} seeds | {r.fit_s:.0f} |")
    if "r_codes" in table.columns:
        r = table[table["dataset"] == "lincs"][["r_codes", "r_prototypes", "r_class_means"]].mean()
        lines += ["", f"lincs class structure (Pearson r with the true class-class signature correlations, mean over "
                      f"seeds): codes {r.r_codes:.3f}, decoded prototypes {r.r_prototypes:.3f}, "
                      f"training class means {r.r_class_means:.3f}"]
    summary = "\n".join(lines)
    print(summary)
    per_seed = table[[c for c in ("dataset", "seed", "svqvae_test_acc", "logistic_test_acc", "svqvae_val_acc",
                                  "epochs_run", "best_epoch", "svqvae_s", "r_codes", "r_prototypes") if c in table]]
    command = "OMP_NUM_THREADS=2 .venv/bin/python benchmarks/svqvae_accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = (f"# svqvae held-out nearest-code accuracy vs logistic regression\n\n{machine()}\n\n    {command}\n\n"
            f"{summary}\n\nPer seed:\n\n{markdown(per_seed.round(3).to_dict('records'))}\n")
    print(f"wrote {write_result(args.name, text)}", file=sys.stderr)
    return table


if __name__ == "__main__":
    main()

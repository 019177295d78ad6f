"""Benchmark: does deepaa keep the information of real tables in its embedding? (deepaa vs linear AA)

Tables (all bundled, nothing downloaded)
----------------------------------------
* wine:          ``sample_data/wine.csv`` (scikit-learn's ``load_wine``), 178 rows x 13 features, side ``alcohol``
                 (the string column ``cultivar`` is not a feature).
* diabetes:      scikit-learn's ``load_diabetes``, 442 rows x 10 features, side ``target`` (disease progression).
* breast_cancer: scikit-learn's ``load_breast_cancer``, 569 rows x 29 features, side ``mean radius``.
* pbmc:          ``sample_data/pbmc_small.h5ad`` (scanpy's ``pbmc68k_reduced`` subset), 400 cells x 200 genes,
                 side ``percent_mito``.

Methods (same k for both, same run)
-----------------------------------
* deepaa: ``archetool.fit`` with the CLI's defaults (100 epochs, early stopping, one initialisation) plus the
  ``--deepaa-options`` given; the weights are the ``a0..`` columns of ``model.embed`` on the training file.
* linear AA: ``archetypes.AA(n_archetypes=k, init="furthest_sum")`` on the standardised features (z-scores);
  the weights are ``transform`` of the same matrix.

Measures
--------
* on vertex: fraction of rows whose largest weight is > 0.999.
* distinct: number of distinct weight rows (rounded to 6 decimals) / number of rows.
* side R²: deepaa's held-out R² (``val_r2_<side>``, the 10 % validation rows); linear AA: 5-fold
  cross-validated R² of a least-squares fit of the side on the k weights (the information the weights keep).
* Targets (issue 10): deepaa's on-vertex fraction <= max(3 x linear AA's, 0.05); distinct >= 0.95.

Run:   OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python benchmarks/deepaa_real_tables.py          (~2-4 min, 2 cores)
Other: ... --deepaa-options '{"weights_activation": "sparsemax"}' --name deepaa_real_tables_sparsemax
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, load_average, machine, markdown, write_report  # noqa: E402

VERTEX, DECIMALS = 0.999, 6
TABLES = ("wine", "diabetes", "breast_cancer", "pbmc")


def table_file(name: str, work: Path) -> tuple[Path, str, np.ndarray, np.ndarray]:
    """Write/locate the table; return (file for archetool, side column, feature matrix (n, p), side (n,))."""
    if name == "wine":
        path = REPO / "sample_data" / "wine.csv"
        df = pd.read_csv(path)
        side = "alcohol"
        x = df.drop(columns=["id", "cultivar", side]).to_numpy(float)
        return path, side, x, df[side].to_numpy(float)
    if name == "pbmc":
        import anndata

        path = REPO / "sample_data" / "pbmc_small.h5ad"
        ad = anndata.read_h5ad(path)
        x = ad.X.toarray() if hasattr(ad.X, "toarray") else np.asarray(ad.X)
        return path, "percent_mito", np.asarray(x, float), ad.obs["percent_mito"].to_numpy(float)
    from sklearn import datasets

    if name == "diabetes":
        bunch, side = datasets.load_diabetes(as_frame=True), "target"
        df = bunch.frame
    elif name == "breast_cancer":
        bunch, side = datasets.load_breast_cancer(as_frame=True), "mean radius"
        df = bunch.frame.drop(columns=["target"])
    else:
        raise ValueError(name)
    df = df.rename(columns=lambda c: c.replace(" ", "_"))
    side = side.replace(" ", "_")
    df.insert(0, "id", [f"{name}_{i:04d}" for i in range(len(df))])
    path = work / f"{name}.csv"
    df.to_csv(path, index=False)
    return path, side, df.drop(columns=["id", side]).to_numpy(float), df[side].to_numpy(float)


def weight_figures(w: np.ndarray) -> dict:
    return {"on_vertex": float((w.max(1) > VERTEX).mean()),
            "distinct": len(np.unique(np.round(w, DECIMALS), axis=0)) / len(w)}


def cv_r2(w: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated R² of y ~ least squares on the weights (with intercept)."""
    order = np.random.default_rng(seed).permutation(len(y))
    pred = np.empty_like(y)
    for f in range(folds):
        test = order[f::folds]
        train = np.setdiff1d(order, test)
        design = np.c_[w, np.ones(len(w))]
        coef, *_ = np.linalg.lstsq(design[train], y[train], rcond=None)
        pred[test] = design[test] @ coef
    return float(1 - ((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def run_deepaa(path: Path, side: str, k: int, seed: int, out: Path, options: dict) -> dict:
    import archetool

    tic = time.perf_counter()
    model = archetool.fit(str(path), side=[side], k=k, seed=seed, device="cpu", out=str(out), progress_bar=False,
                          model_options=dict(options))
    seconds = time.perf_counter() - tic
    emb = model.embed(str(path))
    w = emb[[f"a{j}" for j in range(k)]].to_numpy(float)
    summary = model.config["summary"]
    return {**weight_figures(w), "side_r2": float(summary.get(f"val_r2_{side}", float("nan"))), "seconds": seconds,
            "epochs": summary.get("epochs_run")}


def run_linear_aa(x: np.ndarray, y: np.ndarray, k: int, seed: int) -> dict:
    import archetypes

    z = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
    tic = time.perf_counter()
    aa = archetypes.AA(n_archetypes=k, init="furthest_sum", random_state=seed).fit(z)
    w = aa.transform(z)
    return {**weight_figures(w), "side_r2": cv_r2(w, y), "seconds": time.perf_counter() - tic}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tables", default=",".join(TABLES))
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=1, help="deepaa/AA seeds 0..N-1 (figures are means over seeds)")
    ap.add_argument("--deepaa-options", default="{}", help='JSON of DeepAA hyper-parameters, e.g. \'{"weights_activation": "sparsemax"}\'')
    ap.add_argument("--threads", type=int, default=1, help="torch threads for deepaa (tiny models: 1 is fastest on a shared machine)")
    ap.add_argument("--name", default="deepaa_real_tables", help="results/<name>.md")
    args = ap.parse_args(argv)
    options = json.loads(args.deepaa_options)
    logging.getLogger("archetool").setLevel(logging.WARNING)
    import torch

    torch.set_num_threads(args.threads)
    import archetool

    archetool.set_threads(args.threads)  # else each fit picks its own count (OMP_NUM_THREADS=2 here): 2 threads ran ~50x slower than 1 at load 15 (issue 17 round 3)
    load = load_average()
    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in args.tables.split(","):
            path, side, x, y = table_file(name, work)
            per = {"deepaa": [], "linear AA": []}
            for seed in range(args.seeds):
                per["deepaa"].append(run_deepaa(path, side, args.k, seed, work / f"{name}_{seed}.archetool", options))
                per["linear AA"].append(run_linear_aa(x, y, args.k, seed))
            aa_vertex = np.mean([r["on_vertex"] for r in per["linear AA"]])
            for method, recs in per.items():
                mean = {key: float(np.mean([r[key] for r in recs])) for key in ("on_vertex", "distinct", "side_r2", "seconds")}
                row = {"table": name, "rows × features": f"{len(x)} × {x.shape[1]}", "side": side, "model": method,
                       "on vertex (max weight > 0.999)": mean["on_vertex"], "distinct embeddings": mean["distinct"],
                       "side R²": mean["side_r2"], "s": mean["seconds"]}
                if method == "deepaa":
                    limit = max(3 * aa_vertex, 0.05)
                    ok = mean["on_vertex"] <= limit and mean["distinct"] >= 0.95
                    row["target"] = f"vertex ≤ {limit:.3f}, distinct ≥ 0.95: {'met' if ok else 'NOT met'}"
                rows.append(row)
                print(f"[{time.perf_counter() - t0:5.0f}s] {name} {method}: on vertex {mean['on_vertex']:.3f}, distinct "
                      f"{mean['distinct']:.3f}, side R² {mean['side_r2']:.3f}", file=sys.stderr, flush=True)
    columns = ["table", "rows × features", "side", "model", "on vertex (max weight > 0.999)", "distinct embeddings",
               "side R²", "target", "s"]
    notes = [f"k = {args.k}; deepaa options: {options or 'defaults'}; {args.seeds} seed(s), means over seeds. "
             "deepaa side R²: held-out validation rows; linear AA side R²: 5-fold CV least squares on the weights.",
             f"Machine: {machine()}; load at start {load}; total {time.perf_counter() - t0:.0f} s."]
    write_report("deepaa on real tables: rows on a vertex and distinct embeddings", markdown(rows, columns), notes, args.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

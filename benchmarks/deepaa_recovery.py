"""Benchmark: does deepaa recover known archetypes? (deepaa vs linear archetypal analysis)

Data (synthetic, with known archetypes)
---------------------------------------
* Mixture weights a ~ Dirichlet(alpha·1_k) with alpha = 0.3 (< 1). With alpha < 1 the mass piles up
  near the vertices and edges of the simplex, so every true vertex is actually approached by some
  samples (the script reports how close: "nearest sample" below). With alpha >= 1 the corners are
  almost empty and *no* method can locate them from the data; that is a limit of the data, not of a
  method.
* Latent point u = a·C, where C (k x (k-1)) holds the vertices of a regular simplex of unit radius.
* Two maps into p = 24 dimensions, both fixed per seed and applied identically for every method:
  - linear:  x = u·L + mu,  L a (k-1) x p Gaussian matrix with entries N(0, 1).
  - warped:  x = sin(u·W + b)·M,  W a (k-1) x 64 Gaussian matrix with entries N(0, 1.5²), b ~ U(0, 2π)
    (a random-Fourier-feature map; phase variation across the simplex is ~2-4 rad, so edges curve
    and fold back), M a 64 x p Gaussian matrix with entries N(0, 1/64). A smooth, fixed, injective
    in practice but strongly nonlinear warp; the script reports how nonlinear it is as
    "linear R²": the share of the variance of x that the best *linear* function of the weights a
    explains (1.0 for the linear data).
* Isotropic Gaussian noise is added to x, sd = 0.05/sqrt(p) × the mean distance of the noise-free data
  to its centroid per coordinate (so the noise vector's length is ~5 % of the data's spread).
* True archetypes: the noise-free images of the k pure vertices (a = e_j).
* Side variable (a function of the mixture weights only, nonlinear, distinct at each vertex):
      y = sum_j c_j a_j + 1.5·a_0·a_1 + eps,   c = linspace(-1, 1, k),   eps ~ N(0, 0.05²)
  "oracle R²" = 1 - 0.05² / Var(y) is the best any predictor can reach on held-out rows.

Measures
--------
* Archetype error: decoded archetypes vs true vertices matched one-to-one by the Hungarian algorithm
  (scipy.optimize.linear_sum_assignment on Euclidean distances), mean matched distance divided by the
  training data's mean distance to its centroid.
  deepaa: decode(Z) = ``archetypes.csv`` features (``archetool archetypes``), original units.
  linear AA: ``archetypes.AA(n_archetypes=k, init="furthest_sum").fit(X).archetypes_``.
  nearest sample: for each true vertex the nearest (noisy) training row, i.e. how well a method that
  could only pick real samples might do.
  vertices found: how many true vertices have a matched archetype within 0.2 (relative units), summed
  over seeds; it separates "slightly off everywhere" from "one vertex missed entirely".
* Side R²: deepaa's ``pred_y`` on n_test = 1000 fresh rows from the same distribution that neither
  training nor early stopping saw.
* Targets: warped: deepaa error <= 0.5 × linear AA's; linear: deepaa error <= 1.5 × linear AA's
  (compared on the means over seeds).

Run (2 cores):  OMP_NUM_THREADS=2 .venv/bin/python benchmarks/deepaa_recovery.py
                (~7-10 min on a shared 2-core machine; deepaa trains with one torch thread, see --threads)
Restarts:       ... deepaa_recovery.py --restarts 3 --name deepaa_recovery_restarts3
Reference head: ... deepaa_recovery.py --deepaa-options '{"weights_activation": "softmax", "likelihood_variance": "learned"}'
                    --final-lr-fraction 1 --name deepaa_recovery_reference   (softmax A, learned variance, constant lr)
Other settings: --deepaa-options '{"prior": "dirichlet"}' --name deepaa_recovery_prior_dirichlet
Add seeds:      ... deepaa_recovery.py --seed-list 1,2 --name deepaa_recovery_seeds12   (only those seeds)
Fresh seeds:    ... deepaa_recovery.py --kinds warped --ks 3,4,5 --seed-list 100,101,102,103,104 --restarts 1
                    --name deepaa_recovery_fresh   (seeds the default run never uses; issue 17's check;
                    benchmarks/deepaa_crowding_grid.py runs the same data for several forms of the crowding penalty)
Smoke mode:     OMP_NUM_THREADS=2 .venv/bin/python benchmarks/deepaa_recovery.py --quick
Needs the bench extra (``pip install -e .[bench]``: the ``archetypes`` package).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")  # the machine budget: at most 2 cores

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import mean_sd  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
N_INIT = 1  # furthest_sum init; n_init=3 gave identical errors on seed 0 of all four settings at 3x the time
ALPHA, P, HIDDEN_WARP, NOISE, SIDE_NOISE, N_TEST = 0.3, 24, 64, 0.05, 0.05, 1000


def simplex(k: int) -> np.ndarray:
    """(k, k-1) vertices of a regular simplex centred at 0 with unit-norm vertices."""
    e = np.eye(k) - 1.0 / k
    u, s, vt = np.linalg.svd(e)
    c = e @ vt[: k - 1].T
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def make_data(k: int, n: int, kind: str, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    C = simplex(k)
    if kind == "linear":
        L, mu = rng.normal(size=(k - 1, P)), rng.normal(size=P)
        f = lambda u: u @ L + mu  # noqa: E731
    else:
        W = rng.normal(scale=1.5, size=(k - 1, HIDDEN_WARP))
        b = rng.uniform(0, 2 * np.pi, size=HIDDEN_WARP)
        M = rng.normal(scale=1 / np.sqrt(HIDDEN_WARP), size=(HIDDEN_WARP, P))
        f = lambda u: np.sin(u @ W + b) @ M  # noqa: E731
    a = rng.dirichlet(np.full(k, ALPHA), size=n + N_TEST)
    clean = f(a @ C)
    scale = np.linalg.norm(clean - clean.mean(0), axis=1).mean()
    x = clean + rng.normal(scale=NOISE * scale / np.sqrt(P), size=clean.shape)
    c = np.linspace(-1, 1, k)
    y = a @ c + 1.5 * a[:, 0] * a[:, 1] + rng.normal(scale=SIDE_NOISE, size=len(a))
    # how nonlinear is the map: R² of the best linear function of a (with intercept) for the noise-free x
    coef, *_ = np.linalg.lstsq(np.c_[a, np.ones(len(a))], clean, rcond=None)
    lin_r2 = 1 - ((clean - np.c_[a, np.ones(len(a))] @ coef) ** 2).sum() / ((clean - clean.mean(0)) ** 2).sum()
    return dict(x=x[:n], y=y[:n], x_test=x[n:], y_test=y[n:], vertices=f(C), lin_r2=float(lin_r2),
                oracle_r2=float(1 - SIDE_NOISE**2 / y.var()))


def matched(found: np.ndarray, true: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per-vertex distances after Hungarian matching, divided by the data's mean distance to its centroid."""
    d = cdist(found, true)
    r, c = linear_sum_assignment(d)
    return d[r, c] / np.linalg.norm(x - x.mean(0), axis=1).mean()


def match_error(found: np.ndarray, true: np.ndarray, x: np.ndarray) -> float:
    return float(matched(found, true, x).mean())


FOUND = 0.2  # a vertex counts as found when its matched archetype is within 0.2 (relative units)


def write_csv(path: Path, x: np.ndarray, y: np.ndarray | None) -> None:
    df = pd.DataFrame(x, columns=[f"f{j}" for j in range(x.shape[1])])
    df.insert(0, "id", [f"r{i}" for i in range(len(x))])
    if y is not None:
        df["y"] = y
    df.to_csv(path, index=False)


def run_deepaa(data: dict, k: int, seed: int, work: Path, options: dict, fit_kw: dict, restarts: int) -> dict:
    """Fit with ``restarts`` into ``work/model``; restarts finished by an earlier fit there are read back
    (``resume``), not rerun, so ``seconds`` covers only the new ones."""
    import archetool
    from archetool.analysis import adapter

    train_csv, test_csv = work / "train.csv", work / "test.csv"
    if not train_csv.exists():
        write_csv(train_csv, data["x"], data["y"])
        write_csv(test_csv, data["x_test"], None)
    tic = time.perf_counter()
    model = archetool.fit(str(train_csv), side=["y"], k=k, seed=seed, device="cpu", out=str(work / "model"),
                          progress_bar=False, model_options=dict(options), restarts=restarts,
                          resume=(work / "model").exists(), **fit_kw)
    seconds = time.perf_counter() - tic
    table = adapter("deepaa").decode_table(model, model.module.Z.cpu().numpy())
    found = table[[f"f{j}" for j in range(P)]].to_numpy()
    pred = model.embed(str(test_csv))["pred_y"].to_numpy()
    yt = data["y_test"]
    r2 = 1 - ((pred - yt) ** 2).sum() / ((yt - yt.mean()) ** 2).sum()
    per = matched(found, data["vertices"], data["x"])
    return dict(err=float(per.mean()), found=int((per < FOUND).sum()), r2=float(r2), seconds=seconds,
                epochs=model.config["summary"]["epochs_run"])


def run_linear_aa(data: dict, k: int, seed: int) -> dict:
    import archetypes

    tic = time.perf_counter()
    aa = archetypes.AA(n_archetypes=k, init="furthest_sum", n_init=N_INIT, random_state=seed).fit(data["x"])
    per = matched(aa.archetypes_, data["vertices"], data["x"])
    return dict(err=float(per.mean()), found=int((per < FOUND).sum()), seconds=time.perf_counter() - tic)


def nearest_sample_error(data: dict) -> float:
    x, v = data["x"], data["vertices"]
    nearest = x[cdist(v, x).argmin(1)]
    return match_error(nearest, v, x)


def markdown(df: pd.DataFrame) -> str:
    """A pipe table without the optional ``tabulate`` dependency."""
    fmt = lambda v: f"{v:.3f}" if isinstance(v, (float, np.floating)) else str(v)  # noqa: E731
    rows = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    rows += ["| " + " | ".join(fmt(v) for v in rec) + " |" for rec in df.itertuples(index=False)]
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke mode: k=3, one seed, n=1000, 30 epochs")
    ap.add_argument("--ks", default="3,4")
    ap.add_argument("--kinds", default="linear,warped")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed-list", default=None, help="comma-separated seeds to run instead of 0..seeds-1 (e.g. to add seeds to a run)")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=None, help="deepaa epochs (default: archetool's default)")
    ap.add_argument("--restarts", default="1,3", help="archetool fit --restarts values, ascending (each adds initialisations to the "
                    "previous fit, which is resumed; one table row per value)")
    ap.add_argument("--final-lr-fraction", type=float, default=None, help="archetool fit --final-lr-fraction (default: the model's)")
    ap.add_argument("--deepaa-options", default="{}", help='JSON of DeepAA hyper-parameters, e.g. \'{"archetype_weight": 10}\'')
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads for deepaa (default 1: these models are tiny, and on a shared 2-core "
                         "machine 2 threads ran ~6x slower than 1; the recovery numbers do not depend on it)")
    ap.add_argument("--name", default="deepaa_recovery", help="results/<name>.md")
    args = ap.parse_args(argv)
    ks = [int(k) for k in args.ks.split(",")]
    kinds = args.kinds.split(",")
    seeds, n = args.seeds, args.n
    fit_kw = {} if args.epochs is None else {"epochs": args.epochs}
    if args.quick:
        ks, seeds, n, fit_kw = [3], 1, 1000, {"epochs": 30}
    seed_list = [int(s) for s in args.seed_list.split(",")] if args.seed_list else list(range(seeds))
    seeds = len(seed_list)
    restart_values = sorted(int(r) for r in args.restarts.split(","))
    if args.final_lr_fraction is not None:
        fit_kw["final_lr_fraction"] = args.final_lr_fraction
    options = json.loads(args.deepaa_options)

    import logging

    logging.getLogger("archetool").setLevel(logging.WARNING)
    import torch

    torch.set_num_threads(args.threads)
    import archetool

    archetool.set_threads(args.threads)  # else each fit picks its own count (OMP_NUM_THREADS=2 here): 2 threads ran ~50x slower than 1 at load 15 (issue 17 round 3)

    records = []
    t0 = time.perf_counter()
    for kind in kinds:
        for k in ks:
            for seed in seed_list:
                data = make_data(k, n, kind, seed)
                lin = run_linear_aa(data, k, seed)
                with tempfile.TemporaryDirectory() as tmp:
                    elapsed = 0.0  # a fresh fit with this many restarts costs all of them
                    for restarts in restart_values:
                        deep = run_deepaa(data, k, seed, Path(tmp), options, fit_kw, restarts)
                        elapsed += deep["seconds"]
                        rec = dict(kind=kind, k=k, restarts=restarts, seed=seed, deepaa_err=deep["err"], aa_err=lin["err"],
                                   deepaa_found=deep["found"], aa_found=lin["found"],
                                   nearest_err=nearest_sample_error(data), deepaa_r2=deep["r2"], oracle_r2=data["oracle_r2"],
                                   lin_r2=data["lin_r2"], deepaa_s=elapsed, aa_s=lin["seconds"], epochs=deep["epochs"])
                        records.append(rec)
                        print(f"[{time.perf_counter() - t0:6.0f}s] {kind:6s} k={k} seed={seed} restarts={restarts}: deepaa "
                              f"{deep['err']:.3f} (R² {deep['r2']:.3f}, {elapsed:.0f}s, {deep['epochs']} ep)  linear AA "
                              f"{lin['err']:.3f} ({lin['seconds']:.0f}s)  nearest sample {rec['nearest_err']:.3f}",
                              file=sys.stderr, flush=True)
    df = pd.DataFrame(records)

    lines = [f"n = {n} training rows (+{N_TEST} held-out), p = {P}, Dirichlet alpha = {ALPHA}, noise |e| ≈ {NOISE} × "
             f"data spread, {seeds} seed(s); deepaa options: {options or 'defaults'}, fit {fit_kw}; mean ± sd over seeds.", "",
             "| data | k | restarts | linear R² of map | deepaa error | linear AA error | nearest-sample error | deepaa / AA | target | met | "
             "vertices found deepaa / AA | "
             "deepaa side R² (held-out) | oracle R² | deepaa s | AA s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (kind, k, restarts), g in df.groupby(["kind", "k", "restarts"], sort=False):
        ratio = g.deepaa_err.mean() / g.aa_err.mean()
        target = 0.5 if kind == "warped" else 1.5
        lines.append(f"| {kind} | {k} | {restarts} | {g.lin_r2.mean():.2f} | {mean_sd(g.deepaa_err)} | {mean_sd(g.aa_err)} | {mean_sd(g.nearest_err)} | "
                     f"{ratio:.2f} | ≤ {target} | {'yes' if ratio <= target else 'NO'} | "
                     f"{g.deepaa_found.sum()}/{k * len(g)} · {g.aa_found.sum()}/{k * len(g)} | {mean_sd(g.deepaa_r2)} | "
                     f"{g.oracle_r2.mean():.3f} | {g.deepaa_s.mean():.0f} | {g.aa_s.mean():.0f} |")
    lines += ["", f"Error = mean distance between matched archetypes and true vertices / mean distance of the data to its "
              f"centroid. A vertex is *found* when its matched archetype is within {FOUND} of it. deepaa s: the whole fit "
              f"with that many restarts.",
              "", f"Total wall time {time.perf_counter() - t0:.0f} s (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, torch threads {args.threads})."]
    lines += ["", "<details><summary>per seed</summary>", "", markdown(df), "", "</details>"]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = args.name + ("_quick" if args.quick else "")
    (RESULTS / f"{name}.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Grid: forms of deepaa's crowding penalty against archetype recovery (warped simplex) and rows on a vertex (real tables).

Issue 17 item 5: the crowding penalty (issue 10) keeps rows of small real tables off the vertices, but with it on from
the first epoch deepaa's archetype error on warped simplex data rose to ~2× linear AA's. This script tries forms of the
penalty side by side, on seeds deepaa_recovery.py never uses (default 100-104), with linear AA in the same run:

* recovery: ``deepaa_recovery.make_data`` (warped map, n rows, p = 24, Dirichlet 0.3); error as in that benchmark
  (Hungarian-matched decoded archetypes vs true vertices / data spread); single run unless --restarts.
* real tables: ``deepaa_real_tables`` (k = 4): fraction of rows on a vertex (max weight > 0.999) and distinct embeddings.

Forms are named JSON objects of DeepAA options, e.g.
  --forms '{"default": {}, "off": {"crowding_weight": 0}, "late": {"crowding_start": 0.5, "crowding_ramp": 0.2}}'

Run:  OMP_NUM_THREADS=2 python benchmarks/deepaa_crowding_grid.py --ks 3,4,5 --seeds 100,101,102,103,104 --forms ...
Writes results/<name>.md (one row per form × k, per-seed table below) and appends nothing elsewhere.
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
import deepaa_real_tables as real  # noqa: E402
import deepaa_recovery as rec  # noqa: E402
from _common import load_average, machine  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--forms", required=True, help="JSON {name: {DeepAA option: value}}")
    ap.add_argument("--ks", default="3,4,5")
    ap.add_argument("--seeds", default="100,101,102,103,104", help="comma-separated data/fit seeds")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--tables", default="wine,diabetes,breast_cancer,pbmc", help="real tables ('' = none)")
    ap.add_argument("--table-seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--restarts", type=int, default=1, help="archetool fit --restarts (deepaa s counts all of them)")
    ap.add_argument("--aa-cache", default=None, help="JSON file keeping linear AA's results per (k, n, seed) between runs")
    ap.add_argument("--name", default="deepaa_crowding_grid_run")
    args = ap.parse_args(argv)
    forms = json.loads(args.forms)
    ks = [int(k) for k in args.ks.split(",") if k]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    fit_kw = {} if args.epochs is None else {"epochs": args.epochs}
    logging.getLogger("archetool").setLevel(logging.WARNING)
    import torch

    torch.set_num_threads(args.threads)
    import archetool

    archetool.set_threads(args.threads)  # else each fit picks its own count (OMP_NUM_THREADS=2 here): 2 threads ran ~50x slower than 1 at load 15 (issue 17 round 3)
    load, t0 = load_average(), time.perf_counter()
    recs, tabs = [], []
    cache = json.loads(Path(args.aa_cache).read_text()) if args.aa_cache and Path(args.aa_cache).exists() else {}
    for k in ks:
        for seed in seeds:
            data = rec.make_data(k, args.n, "warped", seed)
            key = f"{k}/{args.n}/{seed}"
            if key not in cache:  # linear AA depends only on the data: computed once per set, kept in --aa-cache
                cache[key] = rec.run_linear_aa(data, k, seed)
                if args.aa_cache:
                    Path(args.aa_cache).write_text(json.dumps(cache))
            lin = cache[key]
            for form, options in forms.items():
                with tempfile.TemporaryDirectory() as tmp:
                    deep = rec.run_deepaa(data, k, seed, Path(tmp), options, fit_kw, args.restarts)
                recs.append(dict(form=form, k=k, seed=seed, deepaa_err=deep["err"], aa_err=lin["err"],
                                 ratio=deep["err"] / lin["err"], found=deep["found"], r2=deep["r2"],
                                 seconds=deep["seconds"], epochs=deep["epochs"]))
                print(f"[{time.perf_counter() - t0:5.0f}s] {form} k={k} seed={seed}: deepaa {deep['err']:.3f} "
                      f"AA {lin['err']:.3f} ratio {deep['err'] / lin['err']:.2f} ({deep['seconds']:.0f}s)",
                      file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in [t for t in args.tables.split(",") if t]:
            path, side, x, y = real.table_file(name, work)
            aa = [real.run_linear_aa(x, y, 4, s) for s in range(args.table_seeds)]
            for form, options in forms.items():
                for s in range(args.table_seeds):
                    r = real.run_deepaa(path, side, 4, s, work / f"{name}_{form}_{s}", options)
                    tabs.append(dict(form=form, table=name, seed=s, on_vertex=r["on_vertex"], distinct=r["distinct"],
                                     side_r2=r["side_r2"], aa_vertex=aa[s]["on_vertex"], aa_distinct=aa[s]["distinct"]))
                g = [t for t in tabs if t["form"] == form and t["table"] == name]
                print(f"[{time.perf_counter() - t0:5.0f}s] {form} {name}: on vertex {np.mean([t['on_vertex'] for t in g]):.3f} "
                      f"distinct {np.mean([t['distinct'] for t in g]):.3f}", file=sys.stderr, flush=True)

    lines = [f"Command: `python benchmarks/deepaa_crowding_grid.py {' '.join(argv if argv is not None else sys.argv[1:])}`", "",
             f"Machine: {machine()}; load at start {load}; total {time.perf_counter() - t0:.0f} s. "
             f"Warped simplex n = {args.n}, p = 24, seeds {seeds}, restarts {args.restarts}; fit {fit_kw or 'defaults'}.", ""]
    if recs:
        df = pd.DataFrame(recs)
        lines += ["### Recovery (warped): deepaa error / linear AA error (ratio of the means over seeds; target ≤ 0.5)", "",
                  "| form | options | " + " | ".join(f"k={k}" for k in ks) + " | worst seed ratio | vertices found | deepaa s (mean) |",
                  "|---|---|" + "---|" * len(ks) + "---|---|---|"]
        for form, options in forms.items():
            g = df[df.form == form]
            cells = []
            for k in ks:
                gk = g[g.k == k]
                cells.append(f"{gk.deepaa_err.mean() / gk.aa_err.mean():.2f} ({gk.deepaa_err.mean():.3f} / {gk.aa_err.mean():.3f})")
            lines.append(f"| {form} | `{json.dumps(options)}` | " + " | ".join(cells) + f" | {g.ratio.max():.2f} | "
                         f"{g.found.sum()}/{sum(g.k)} | {g.seconds.mean():.0f} |")
        lines.append("")
    if tabs:
        tf = pd.DataFrame(tabs)
        names = list(dict.fromkeys(tf.table))
        lines += [f"### Real tables (k = 4, seeds 0-{args.table_seeds - 1}): on vertex / distinct embeddings, means over seeds", "",
                  "| form | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for form in forms:
            cells = []
            for name in names:
                g = tf[(tf.form == form) & (tf.table == name)]
                cells.append(f"{100 * g.on_vertex.mean():.1f} % / {100 * g.distinct.mean():.1f} %")
            lines.append(f"| {form} | " + " | ".join(cells) + " |")
        cells = []
        for name in names:
            g = tf[(tf.form == next(iter(forms))) & (tf.table == name)]
            cells.append(f"{100 * g.aa_vertex.mean():.1f} % / {100 * g.aa_distinct.mean():.1f} %")
        lines.append("| linear AA | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["<details><summary>per seed</summary>", ""]
    if recs:
        lines += [rec.markdown(pd.DataFrame(recs)), ""]
    if tabs:
        lines += [rec.markdown(pd.DataFrame(tabs)), ""]
    lines += ["</details>"]
    text = "\n".join(lines) + "\n"
    print(text)
    (rec.RESULTS / f"{args.name}.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

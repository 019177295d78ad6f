"""Molecule fits at scale (issue 18, item 4): time and peak memory of ``archetool fit`` on 5k / 20k / 50k random
MOSES training molecules (side: RDKit Crippen logP), featurisation and the sequence decoder included, against
the code before issue 18 (``--baseline DIR``: a checkout of it, e.g. ``git worktree add /tmp/base 848f634``)
side by side in the same run.

Per size and code: wall seconds of the whole command, its peak RSS, the featurisation time (fit's "read in"
log line), epochs run (early stopping), mean seconds per epoch (history.csv) and the validation R² of logP;
then, for the new code, a refit of the same file (features read from the cache). The data are written once to
``--work`` (default: a temporary folder): ``moses_<n>.smi`` with columns smiles, id, logp.

Run from the repository root:
  nice -n 10 python benchmarks/molecule_fit_scaling.py --moses /work/moses/moses/dataset/data/train.csv.gz \\
      --sizes 5000,20000,50000 [--baseline /tmp/base] [--epochs N] [--no-refit] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, load_average, machine, markdown, run_timed, write_report  # noqa: E402


def make_data(moses: Path, sizes: list[int], work: Path, seed: int = 0) -> dict[int, Path]:
    from rdkit import Chem, RDLogger
    from rdkit.Chem import Crippen

    RDLogger.DisableLog("rdApp.*")
    paths = {n: work / f"moses_{n}.smi" for n in sizes}
    if all(p.exists() for p in paths.values()):
        return paths
    frame = pd.read_csv(moses)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(frame), max(sizes), replace=False)
    smiles = frame["SMILES"].to_numpy()[idx]
    logp = [round(Crippen.MolLogP(Chem.MolFromSmiles(s)), 4) for s in smiles]
    table = pd.DataFrame({"smiles": smiles, "id": [f"m{i}" for i in idx], "logp": logp})
    for n, path in paths.items():
        table.iloc[:n].to_csv(path, sep=" ", index=False)  # nested subsets: 5k in 20k in 50k
    return paths


def fit_once(code: Path, data: Path, out: Path, args, env: dict) -> dict:
    cmd = [sys.executable, "-m", "archetool", "fit", str(data), "--side", "logp", "--out", str(out), "--no-progress"]
    epochs = args.epochs if code == REPO else (args.baseline_epochs or args.epochs)
    if epochs:  # else the code's default (new: 100, or the step budget's fewer for large data)
        cmd += ["--epochs", str(epochs)]
    if args.threads and code == REPO:
        cmd += ["--threads", str(args.threads)]
    r = run_timed(cmd, env={**env, "PYTHONPATH": str(code)})
    read = re.search(r"read in ([\d.]+)s", r["stderr"])
    r2 = re.search(r"val_r2_logp=([-\d.e]+)", r["stderr"])
    stage = re.search(r"decoder stage: (\d+) epochs in ([\d.]+)s, best validation token loss ([\d.]+)", r["stderr"])
    history = pd.read_csv(out / "history.csv")
    return {"wall s": r["wall_s"], "peak RSS MiB": r["peak_rss_mib"], "CPU s": r["cpu_s"],
            "read + featurise s": float(read.group(1)) if read else float("nan"), "epochs": len(history),
            "s / epoch": float(history["seconds"].mean()),
            "decoder epochs": int(stage.group(1)) if stage else 0,
            "decoder s": float(stage.group(2)) if stage else float("nan"),
            "decoder val tokens": float(stage.group(3)) if stage else float("nan"),
            "val R² logP": float(r2.group(1)) if r2 else float("nan"), "load before": r["load_before"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moses", type=Path, default=Path("/work/moses/moses/dataset/data/train.csv.gz"))
    ap.add_argument("--sizes", default="5000,20000,50000")
    ap.add_argument("--epochs", type=int, default=None, help="--epochs of every fit (default: each code's default)")
    ap.add_argument("--baseline-epochs", type=int, default=None,
                    help="--epochs of the baseline's fits (default: --epochs; the code before round 3 defaults to 100)")
    ap.add_argument("--no-refit", action="store_true", help="skip the refit from the feature cache")
    ap.add_argument("--threads", type=int, default=None, help="--threads for the new code (default: its default)")
    ap.add_argument("--omp-threads", type=int, default=None,
                    help="OMP_NUM_THREADS for both codes (the same threads, so the rows compare the rest)")
    ap.add_argument("--baseline", type=Path, default=None, help="checkout of the code before issue 18")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--name", default="molecule_fit_scaling")
    args = ap.parse_args()

    sizes = [int(s) for s in args.sizes.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="archetool-scaling-"))
    work.mkdir(parents=True, exist_ok=True)
    paths = make_data(args.moses, sizes, work)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["ARCHETOOL_CACHE_DIR"] = str(work / "cache")
    if args.omp_threads:
        env["OMP_NUM_THREADS"] = str(args.omp_threads)
    subprocess.run(["rm", "-rf", str(work / "cache")])
    rows = []
    for n in sizes:
        codes = [("new", REPO)] + ([("before issue 18", args.baseline)] if args.baseline else [])
        for label, code in codes:
            out = work / f"fit_{n}_{label.replace(' ', '_')}"
            subprocess.run(["rm", "-rf", str(out)])
            row = {"molecules": n, "code": label, **fit_once(code, paths[n], out, args, env)}
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
        if args.no_refit:
            continue
        out = work / f"fit_{n}_refit"
        subprocess.run(["rm", "-rf", str(out)])
        row = {"molecules": n, "code": "new, refit (features cached)", **fit_once(REPO, paths[n], out, args, env)}
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
    for n in sizes:
        base = [r for r in rows if r["molecules"] == n and r["code"] == "before issue 18"]
        for r in rows:
            if r["molecules"] == n and base:
                r["wall vs before"] = r["wall s"] / base[0]["wall s"]
                r["CPU vs before"] = r["CPU s"] / base[0]["CPU s"]
    columns = ["molecules", "code", "wall s", "wall vs before", "CPU s", "CPU vs before", "peak RSS MiB", "read + featurise s",
               "epochs", "s / epoch", "decoder epochs", "decoder s", "decoder val tokens", "val R² logP",
               "load before"]
    notes = [f"Command: `nice -n 10 python benchmarks/molecule_fit_scaling.py --sizes {args.sizes}"
             + (f" --epochs {args.epochs}" if args.epochs else "")
             + (f" --baseline {args.baseline}" if args.baseline else "")
             + (f" --baseline-epochs {args.baseline_epochs}" if args.baseline_epochs else "")
             + (" --no-refit" if args.no_refit else "") + (f" --threads {args.threads}" if args.threads else "")
             + (f" --omp-threads {args.omp_threads}" if args.omp_threads else "") + "`",
             "Each fit: `archetool fit moses_<n>.smi --side logp" + (f" --epochs {args.epochs}" if args.epochs else "")
             + "` (deepaa k=4, the default decoder (SMILES from 5,000 molecules up), default patience 15, then the decoder stage); random MOSES train subsets, "
             "seed 0, nested. `epochs`, `s / epoch`: the main fit's (the decoder trains in its own stage since issue 18 round 4); "
             "`decoder val tokens`: the decoder stage's best validation token loss (the decoder that is kept); `decoder s`: "
             "the stage's seconds.",
             f"Machine: {machine()}; date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
             "Machine shared with other jobs (see the load column): compare rows of the same size, taken in the same run."]
    write_report("Molecule fits at scale (MOSES)", markdown(rows, columns), notes, args.name)


if __name__ == "__main__":
    main()

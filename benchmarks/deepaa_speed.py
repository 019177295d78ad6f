"""Benchmark: ``archetool fit sample_data/molecules.smi --side heat_capacity`` with default settings.

What it measures (through the real CLI, as a user runs it):
* wall time of the fit, several repetitions, median (target: under 60 s on 2 CPU cores), plus the
  CPU time the fit used and the machine's load average (other jobs on a shared machine slow it down);
* held-out R² of heat capacity (config.json summary ``val_r2_heat_capacity``: the 10 % validation rows);
* how much of the data's heat-capacity range the k archetypes' *predicted* heat capacities span
  (``archetool archetypes MODEL`` -> archetypes.csv ``pred_heat_capacity``):
  (max - min of the archetypes' predictions) / (max - min of the data);
* a second fit with ``--side band_gap``: which molecules are exemplars (``exemplars.csv``, 5 per
  archetype) and how many exemplar ids the two models share (DESIGN §1.1: the side variable decides
  which features the latent keeps, so changing it changes the archetypes). As a control, the overlap
  between two heat-capacity fits that differ only in ``--seed`` is reported too (full mode).

Run:        OMP_NUM_THREADS=2 .venv/bin/python benchmarks/deepaa_speed.py            (3 repetitions)
            .venv/bin/python benchmarks/deepaa_speed.py --threads 1                  (one intra-op thread)
Smoke mode: OMP_NUM_THREADS=2 .venv/bin/python benchmarks/deepaa_speed.py --quick    (1 repetition, 5 epochs)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / "sample_data" / "molecules.smi"


def archetool_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("archetool")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "archetool"]


def run(args: list[str], env: dict) -> tuple[float, float]:
    """Run the CLI; return (wall seconds, CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    tic = time.perf_counter()
    proc = subprocess.run(archetool_cmd() + args, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - tic
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"archetool {' '.join(args)} failed with exit code {proc.returncode}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def fit(side: str, out: Path, env: dict, extra: list[str]) -> dict:
    load = os.getloadavg()[0]
    wall, cpu = run(["fit", str(DATA), "--side", side, "--out", str(out), *extra], env)
    summary = json.loads((out / "config.json").read_text())["summary"]
    run(["archetypes", str(out), "--out", str(out / "archetypes")], env)
    return dict(wall=wall, cpu=cpu, load=load, summary=summary,
                archetypes=pd.read_csv(out / "archetypes" / "archetypes.csv"),
                exemplars=pd.read_csv(out / "archetypes" / "exemplars.csv", dtype={"id": str}))


def span(pred: pd.Series, data: pd.Series) -> float:
    return float((pred.max() - pred.min()) / (data.max() - data.min()))


def overlap(a: pd.DataFrame, b: pd.DataFrame) -> tuple[int, int]:
    sa, sb = set(a["id"]), set(b["id"])
    return len(sa & sb), len(sa | sb)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke mode: one repetition, --epochs 5, no seed control")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None,
                    help="OMP_NUM_THREADS for the fits (default: $OMP_NUM_THREADS, else 2)")
    ap.add_argument("--control", action=argparse.BooleanOptionalAction, default=True,
                    help="also fit heat_capacity with --seed 1 (exemplar-overlap control)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the model directories here")
    args = ap.parse_args(argv)
    reps = 1 if args.quick else args.reps
    extra = ["--epochs", "5"] if args.quick else []
    threads = str(args.threads) if args.threads else os.environ.get("OMP_NUM_THREADS", "2")
    env = dict(os.environ, OMP_NUM_THREADS=threads)
    data = pd.read_csv(DATA, sep=r"\s+")
    work = Path(tempfile.mkdtemp(prefix="deepaa_speed_"))
    try:
        hc = []
        for i in range(reps):
            hc.append(fit("heat_capacity", work / f"hc{i}", env, extra))
            r = hc[-1]
            print(f"fit --side heat_capacity #{i + 1}: {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU, load {r['load']:.1f}, "
                  f"val R² {r['summary']['val_r2_heat_capacity']:.3f}", file=sys.stderr, flush=True)
        bg = fit("band_gap", work / "bg", env, extra)
        print(f"fit --side band_gap: {bg['wall']:.1f} s", file=sys.stderr, flush=True)
        control = None if args.quick or not args.control else fit("heat_capacity", work / "hc_seed1", env, ["--seed", "1"])
        if args.keep:
            shutil.copytree(work, args.keep, dirs_exist_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    walls = [r["wall"] for r in hc]
    loads = [r["load"] for r in hc]
    first = hc[0]
    k = len(first["archetypes"])
    hc_pred = first["archetypes"]["pred_heat_capacity"]
    bg_pred = bg["archetypes"]["pred_band_gap"]
    shared, union = overlap(first["exemplars"], bg["exemplars"])
    n_ex = first["exemplars"]["id"].nunique()
    lines = [
        f"`archetool fit sample_data/molecules.smi --side heat_capacity` ({len(data)} QM9 molecules, defaults"
        + (", **--epochs 5 (quick smoke mode, not the target)**" if args.quick else "")
        + f"), OMP_NUM_THREADS={env['OMP_NUM_THREADS']}, {os.cpu_count()} visible cores.",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| fit wall time, median of {reps} (min–max) | {statistics.median(walls):.1f} s ({min(walls):.1f}–{max(walls):.1f}) | < 60 s |",
        f"| fit CPU time (user+sys), median | {statistics.median(r['cpu'] for r in hc):.1f} s | |",
        f"| 1-min load average at start (2 cores) | {', '.join(f'{load:.1f}' for load in loads)} | |",
        f"| epochs run (early stopping) / best epoch | {first['summary']['epochs_run']} / {first['summary']['best_epoch']} | |",
        f"| held-out R² heat capacity (val_r2_heat_capacity) | {first['summary']['val_r2_heat_capacity']:.3f} | |",
        f"| archetypes' pred_heat_capacity | {', '.join(f'{v:.1f}' for v in hc_pred)} cal/mol/K | |",
        f"| data heat capacity range | {data.heat_capacity.min():.1f}–{data.heat_capacity.max():.1f} cal/mol/K | |",
        f"| fraction of the data's range spanned by the {k} archetypes | {span(hc_pred, data.heat_capacity):.2f} | most (> 0.5) |",
        f"| `--side band_gap`: held-out R² band gap | {bg['summary']['val_r2_band_gap']:.3f} | |",
        f"| `--side band_gap`: archetypes' pred_band_gap | {', '.join(f'{v:.3f}' for v in bg_pred)} Ha (data {data.band_gap.min():.3f}–{data.band_gap.max():.3f}; spans {span(bg_pred, data.band_gap):.2f}) | |",
        f"| exemplar ids shared, heat_capacity vs band_gap model | {shared} of {n_ex} (Jaccard {shared / union:.2f}) | small |",
    ]
    if control is not None:
        c_shared, c_union = overlap(first["exemplars"], control["exemplars"])
        lines.append(f"| control: exemplar ids shared, heat_capacity seed 0 vs seed 1 | {c_shared} of {n_ex} (Jaccard {c_shared / c_union:.2f}) | |")
    lines += ["", "Exemplars (rank 1 per archetype) and their measured properties:", "",
              "| model | archetype | id | smiles | heat_capacity | band_gap |", "|---|---|---|---|---|---|"]
    for name, r in [("heat_capacity", first), ("band_gap", bg)]:
        top = r["exemplars"][r["exemplars"]["rank"] == 1].merge(data[["id", "heat_capacity", "band_gap"]], on="id", how="left",
                                                                suffixes=("_x", ""))
        for rec in top.itertuples(index=False):
            lines.append(f"| {name} | {rec.archetype} | {rec.id} | `{rec.smiles}` | {rec.heat_capacity:.2f} | {rec.band_gap:.4f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "deepaa_speed" + ("_quick" if args.quick else "") + ("" if threads == "2" else f"_threads{threads}")
    (RESULTS / f"{name}.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

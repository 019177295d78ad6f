"""Benchmark: training throughput of ``archetool fit`` against a bare PyTorch loop and scvi-tools' SCVI.

One synthetic single-cell-like count matrix (20,000 cells x 2,000 genes by default, negative-binomial
counts from 4 mixed gene programmes and log-normal library sizes) is written to an .h5ad with the raw
counts in X and ``log1p(counts)`` in the layer "log1p". Then, in the same run, one after the other:

* ``archetool fit counts.h5ad --layer log1p`` (deepaa, Gaussian likelihood on the log1p counts, which
  archetool standardises per gene) through the real CLI;
* a bare PyTorch loop: the same DeepAA module (same hyper-parameters, same ``loss_terms``), the same
  standardised log1p matrix preloaded as one tensor, Adam, shuffled mini-batches -- nothing else;
* scvi-tools ``SCVI`` on the raw counts (its own ZINB likelihood), from a separate virtual environment
  (``--scvi-python``; scvi-tools is a benchmark-only extra, never a project dependency).

All three use the same hidden width and depth (two hidden layers of ``--width`` in encoder and decoder),
batch size, epochs, CPU threads and no validation split. Throughput is cells per second of one epoch,
the median over epochs 2..E, start-up (imports, reading, model building) excluded: archetool's epoch
time is the gap between consecutive per-epoch log lines (so it includes everything the loop does per
epoch: checkpoint, history, loss bookkeeping); the bare loop and SCVI time each epoch the same way.

    .venv/bin/python benchmarks/train_throughput.py             # 20,000 x 2,000, 6 epochs
    .venv/bin/python benchmarks/train_throughput.py --quick     # 2,000 x 500, 3 epochs
    .venv/bin/python benchmarks/train_throughput.py --rows 50000 --genes 2000 --epochs 4

scvi-tools setup (kept out of the project venv; ``pip install torch`` first so it does not pull CUDA):
    python3 -m venv /tmp/scvi-venv && /tmp/scvi-venv/bin/pip install torch==2.13.0 && /tmp/scvi-venv/bin/pip install scvi-tools

Prints a markdown table and writes benchmarks/results/train_throughput.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import archetool_cmd, load_average, machine, markdown, write_report  # noqa: E402


# ------------------------------------------------------------------------------------------ data


def make_counts(path: Path, n: int, p: int, seed: int = 0) -> Path:
    """NB counts: mu = library * (w @ programmes), w ~ Dirichlet over 4 programmes; X raw, layer log1p."""
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(seed)
    programs = rng.dirichlet(np.full(p, 0.3), size=4)  # gene frequencies of 4 programmes, rows sum to 1
    w = rng.dirichlet(np.full(4, 0.7), size=n)
    library = rng.lognormal(np.log(3000), 0.4, size=(n, 1))
    mu = library * (w @ programs)
    theta = 5.0  # NB inverse dispersion
    counts = rng.poisson(rng.gamma(theta, mu / theta)).astype(np.float32)
    adata = ad.AnnData(X=counts, obs=pd.DataFrame(index=[f"cell{i:06d}" for i in range(n)]),
                       var=pd.DataFrame(index=[f"gene{j:05d}" for j in range(p)]))
    adata.layers["log1p"] = np.log1p(counts)
    adata.write_h5ad(path)
    return path


# --------------------------------------------------------------------------------------- workers


def _epoch_times(stamps: list[float]) -> list[float]:
    return [b - a for a, b in zip(stamps, stamps[1:])]


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def bare_worker(args) -> dict:
    """The same DeepAA and loss as archetool, on preloaded standardised tensors; a minimal loop."""
    import anndata as ad
    import torch

    from archetool.models import build_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = np.asarray(ad.read_h5ad(args.data).layers["log1p"], dtype=np.float32)
    mean, std = x.mean(0), x.std(0)
    std[std < 1e-8] = 1.0
    x = torch.from_numpy((x - mean) / std)
    module = build_model("deepaa", n_features=x.shape[1], n_archetypes=4, n_side=0, likelihood="gaussian",
                         hidden=[args.width, args.width])
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    module.train()
    n, bs = x.shape[0], args.batch_size
    stamps, cpu = [time.perf_counter()], [time.process_time()]
    for epoch in range(args.epochs):
        module.on_epoch_start(epoch, args.epochs)
        perm = torch.randperm(n)
        for start in range(0, n - bs + 1, bs):
            loss = module.loss_terms({"x": x[perm[start:start + bs]]})["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        stamps.append(time.perf_counter())
        cpu.append(time.process_time())
    # epoch 1 left out (warm-up), like archetool's, whose first log line is the first time stamp
    return {"epochs": _epoch_times(stamps)[1:], "cpu": _epoch_times(cpu)[1:], "last_loss": float(loss)}


SCVI_WORKER = r'''
import json, sys, time, warnings
warnings.filterwarnings("ignore")
args = json.loads(sys.argv[1])
import torch
torch.set_num_threads(args["threads"])
import anndata as ad, scvi
from lightning.pytorch.callbacks import Callback
scvi.settings.num_threads = args["threads"]
scvi.settings.dl_num_workers = 0
scvi.settings.seed = 0
stamps, cpu = [], []
class Timer(Callback):
    def on_train_epoch_start(self, trainer, module):
        if not stamps:
            stamps.append(time.perf_counter()); cpu.append(time.process_time())
    def on_train_epoch_end(self, trainer, module):
        stamps.append(time.perf_counter()); cpu.append(time.process_time())
adata = ad.read_h5ad(args["data"])
del adata.layers["log1p"]
scvi.model.SCVI.setup_anndata(adata)
model = scvi.model.SCVI(adata, n_hidden=args["width"], n_layers=2)
model.train(max_epochs=args["epochs"], batch_size=args["batch_size"], accelerator="cpu", devices=1,
            train_size=1.0, early_stopping=False, enable_progress_bar=False, logger=False,
            enable_checkpointing=False, callbacks=[Timer()])
print("RESULT " + json.dumps({"epochs": [b - a for a, b in zip(stamps[1:], stamps[2:])],
                              "cpu": [b - a for a, b in zip(cpu[1:], cpu[2:])],
                              "scvi": scvi.__version__, "torch": torch.__version__,
                              "params": sum(p.numel() for p in model.module.parameters())}))
'''


def run_archetool(args, work: Path) -> dict:
    """``archetool fit`` through the CLI; per-epoch time from the arrival times of its epoch log lines."""
    out = work / "counts.deepaa.archetool"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [*archetool_cmd(), "fit", str(args.data), "--layer", "log1p", "--hidden", f"{args.width},{args.width}",
           "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--val-fraction", "0",
           "--patience", "0", "--no-progress", "--device", "cpu", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    tic = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    stamps, cpu, lines = [], [], []
    for line in proc.stderr:
        lines.append(line)
        if " epoch " in f" {line}" and "/" in line and line.split("epoch ", 1)[1].split("/")[0].isdigit():
            stamps.append(time.perf_counter())
            cpu.append(_proc_cpu(proc.pid))
    if proc.wait() != 0:
        raise RuntimeError("archetool fit failed:\n" + "".join(lines[-20:]))
    wall = time.perf_counter() - tic
    config = json.loads((out / "config.json").read_text())

    from archetool.models import build_model

    n_params = sum(p.numel() for p in build_model("deepaa", **config["hparams"]).parameters())
    return {"epochs": _epoch_times(stamps), "cpu": _epoch_times(cpu), "wall": wall, "params": n_params,
            "first_epoch_at": stamps[0] - tic if stamps else float("nan")}


def run_bare(args) -> dict:
    cmd = [sys.executable, __file__, "--_worker", "bare", "--data", str(args.data), "--epochs", str(args.epochs),
           "--batch-size", str(args.batch_size), "--width", str(args.width), "--threads", str(args.threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError("bare loop failed:\n" + proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_scvi(args) -> dict:
    python = args.scvi_python
    if not python or not Path(python).exists():
        return {"error": f"no scvi-tools Python at {python} (see the module docstring for the setup)"}
    script = Path(tempfile.mkdtemp()) / "scvi_worker.py"
    script.write_text(SCVI_WORKER)
    payload = json.dumps({"data": str(args.data), "epochs": args.epochs, "batch_size": args.batch_size,
                          "width": args.width, "threads": args.threads})
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    proc = subprocess.run([python, str(script), payload], capture_output=True, text=True, env=env)
    shutil.rmtree(script.parent, ignore_errors=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": f"SCVI run failed ({proc.returncode}): " + (proc.stderr.strip().splitlines() or ["?"])[-1][:300]}


def epoch_stats(runs: list[dict], key: str = "epochs") -> tuple[float, float]:
    """(median, minimum) seconds per epoch over every run (epochs 2..E of each)."""
    times = []
    for res in runs:
        times += res.get(key) or []
    return (statistics.median(times), min(times)) if times else (float("nan"), float("nan"))


# ------------------------------------------------------------------------------------------ main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000, help="cells")
    ap.add_argument("--genes", type=int, default=2_000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--width", type=int, default=256, help="hidden width (2 hidden layers) for all three")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds of the three runs")
    ap.add_argument("--scvi-python", default="/tmp/scvi-venv/bin/python", help="'' skips SCVI")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/archetool-bench-train"))
    ap.add_argument("--quick", action="store_true", help="smoke run: 2,000 x 500, 3 epochs")
    ap.add_argument("--_worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._worker == "bare":
        print(json.dumps(bare_worker(args)))
        return 0
    if args.quick:
        args.rows, args.genes, args.epochs, args.repeats = min(args.rows, 2000), min(args.genes, 500), 3, 1
    work = args.dir
    work.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict]] = {"archetool": [], "bare": [], "scvi": []}
    loads = [load_average()]
    try:
        args.data = make_counts(work / "counts.h5ad", args.rows, args.genes)
        for _ in range(args.repeats):  # interleaved, so slow spells of a shared machine hit all three
            runs["archetool"].append(run_archetool(args, work))
            runs["bare"].append(run_bare(args))
            if args.scvi_python:
                runs["scvi"].append(run_scvi(args))
            loads.append(load_average())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = args.rows
    scvi_error = next((r["error"] for r in runs["scvi"] if "error" in r), None) if runs["scvi"] else "skipped"
    names = {"archetool": "archetool fit (deepaa, log1p counts, Gaussian)",
             "bare": "bare PyTorch loop (same DeepAA, same loss)",
             "scvi": f"scvi-tools {runs['scvi'][0].get('scvi', '')} SCVI (raw counts, ZINB)" if runs["scvi"] else "scvi-tools SCVI"}
    stats, rows = {}, []
    for key, label in names.items():
        if key == "scvi" and scvi_error:
            rows.append({"run": label, "s/epoch (median)": float("nan"), "s/epoch (min)": float("nan"),
                         "cells/s (median)": float("nan"), "CPU s/epoch": float("nan"), "epochs timed": scvi_error})
            continue
        med, low = epoch_stats(runs[key])
        cpu_med, _ = epoch_stats(runs[key], "cpu")
        stats[key] = (med, low, cpu_med)
        rows.append({"run": label, "s/epoch (median)": med, "s/epoch (min)": low, "cells/s (median)": n / med,
                     "CPU s/epoch": cpu_med, "epochs timed": sum(len(r["epochs"]) for r in runs[key])})
    table = markdown(rows)
    arch0 = runs["archetool"][0]
    (a_med, a_min, a_cpu), (b_med, b_min, b_cpu) = stats["archetool"], stats["bare"]
    lines = [
        f"* machine: {machine()}",
        f"* load average (1/5/15 min) before and after each round: {' | '.join(loads)}",
        f"* data: {n:,} cells x {args.genes:,} genes, negative-binomial counts (.h5ad: X raw counts, layer log1p)",
        f"* all three: 2 hidden layers of {args.width} (encoder and decoder), batch {args.batch_size}, {args.epochs} epochs, "
        f"{args.threads} thread(s), CPU, no validation split, {args.repeats} interleaved round(s); "
        f"epoch 1 of each run left out (warm-up)",
        f"* archetool: `archetool fit counts.h5ad --layer log1p --hidden {args.width},{args.width} --epochs {args.epochs} "
        f"--batch-size {args.batch_size} --val-fraction 0 --patience 0 --no-progress --device cpu` "
        f"({arch0['params']:,} parameters; first epoch logged {arch0['first_epoch_at']:.1f}s after launch, "
        f"whole command {arch0['wall']:.1f}s)",
        f"* **overhead archetool / bare loop: {a_med / b_med:.3f}x (median wall), {a_min / b_min:.3f}x (fastest epoch), "
        f"{a_cpu / b_cpu:.3f}x (CPU time)** (target <= 1.15)",
    ]
    if "scvi" in stats:
        s_med, s_min, s_cpu = stats["scvi"]
        lines.append(f"* SCVI: n_hidden={args.width}, n_layers=2, n_latent=10, ZINB ({runs['scvi'][0]['params']:,} "
                     f"parameters; torch {runs['scvi'][0]['torch']}, separate venv {args.scvi_python})")
        lines.append(f"* **cells/s archetool / SCVI: {s_med / a_med:.2f}x (median wall), {s_min / a_min:.2f}x (fastest "
                     f"epoch), {s_cpu / a_cpu:.2f}x (CPU time)** (target >= 1.0)")
    else:
        lines.append(f"* SCVI: not run -- {scvi_error}")
    name = "train_throughput_quick" if args.quick else "train_throughput" if args.threads == 1 else f"train_throughput_{args.threads}threads"
    write_report("Training throughput", table, lines, name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

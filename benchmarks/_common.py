"""Shared helpers for the benchmarks: machine description, load, markdown tables, timed runs, reports."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"


def load_average() -> str:
    """'1.23 0.98 0.75' (1, 5, 15 minute load averages)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1]) / 2**20
    except (OSError, StopIteration):
        mem = float("nan")
    import torch

    return (f"{os.cpu_count()} cores ({cpu}; shared with other jobs), {mem:.0f} GiB RAM, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def markdown(rows: list[dict], columns: list[str] | None = None) -> str:
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        if v != v:
            return "n/a"
        return f"{v:,.0f}" if abs(v) >= 1000 else (f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}")
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def time_binary() -> str:
    """GNU time (``/usr/bin/time -v`` reports the peak RSS); install Debian's ``time`` package if missing."""
    path = "/usr/bin/time"
    if not Path(path).exists():
        sys.exit("benchmarks need GNU time: apt-get install -y time")
    return path


def run_timed(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd`` under ``/usr/bin/time -v``; return wall seconds, peak RSS (MiB), CPU %, and stderr."""
    full = [time_binary(), "-v", *cmd]
    load = load_average()
    tic = time.perf_counter()
    proc = subprocess.run(full, capture_output=True, text=True, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - tic
    err = proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    cpu = re.search(r"Percent of CPU this job got: (\d+)%", err)
    user = re.search(r"User time \(seconds\): ([\d.]+)", err)
    system = re.search(r"System time \(seconds\): ([\d.]+)", err)
    cpu_s = float(user.group(1)) + float(system.group(1)) if user and system else float("nan")
    return {"wall_s": wall, "peak_rss_mib": int(rss.group(1)) / 1024 if rss else float("nan"),
            "cpu_pct": int(cpu.group(1)) if cpu else float("nan"), "cpu_s": cpu_s, "stderr": err,
            "stdout": proc.stdout, "load_before": load}


def archetool_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("archetool")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "archetool"]


def free_gib(path: Path) -> float:
    return shutil.disk_usage(path).free / 2**30


def write_result(name: str, text: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.md"
    out.write_text(text)
    return out


def write_report(title: str, table: str, notes: list[str], name: str) -> Path:
    """Print ``## title``, the markdown ``table`` and the ``notes`` lines; write them to results/<name>.md and
    name that file on stderr."""
    text = f"## {title}\n\n" + table + "\n\n" + "\n".join(notes) + "\n"
    print(text)
    out = write_result(name, text)
    print(f"wrote {out}", file=sys.stderr)
    return out


def mean_sd(values) -> str:
    """'0.912 ± 0.014': mean ± sample standard deviation over seeds (sd 0 for one value)."""
    values = np.asarray(values, float)
    return f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.3f}"

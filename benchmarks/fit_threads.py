"""Threads (issue 18, item 5): the README's main job with the default thread count, one thread and N threads,
on the machine as it is and with busy loops running beside it.

``archetool -v fit sample_data/molecules.smi --side heat_capacity --epochs E`` (features cached after a first
warm-up run, so the rows time training) with:

* default: no --threads (archetool.threads.default_threads: the CPUs this process may use less those other
  jobs keep busy; the count it chose is read from the -v log);
* --threads 1;
* --threads N (N = the CPUs available) with OpenMP's own wait policy (OMP_WAIT_POLICY empty: waiting threads
  spin a while) and with OMP_WAIT_POLICY=PASSIVE (archetool's default since issue 18);

each ``--repeats`` times, alternately, once on the machine as it is ("as is") and once with ``--busy`` CPU-bound
loops (``while True: pass`` processes) running beside it ("busy"). OMP_NUM_THREADS is removed from the
environment. Ratios are to --threads 1 in the same condition.

Run from the repository root:  python benchmarks/fit_threads.py [--epochs 100] [--repeats 1] [--busy 2]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, archetool_cmd, load_average, machine, markdown, run_timed, write_report  # noqa: E402


def busy_loops(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--busy", type=int, default=2, help="busy loops beside the fit in the 'busy' condition")
    ap.add_argument("--name", default="threads")
    ap.add_argument("--variants", default="", help="comma-separated indices of the variants to run (default: all)")
    ap.add_argument("--conditions", default="as is,busy")
    args = ap.parse_args()

    from archetool.threads import available_cpus

    n_cpus = available_cpus()
    data = REPO / "sample_data" / "molecules.smi"
    tmp = Path(tempfile.mkdtemp(prefix="archetool-threads-"))
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    env["ARCHETOOL_CACHE_DIR"] = str(tmp / "cache")
    base = [*archetool_cmd(), "-v", "fit", str(data), "--side", "heat_capacity", "--epochs", str(args.epochs),
            "--no-progress", "--patience", "0"]
    variants = [("default", [], {}), ("--threads 1", ["--threads", "1"], {}),
                (f"--threads {n_cpus}, OpenMP's default wait policy", ["--threads", str(n_cpus)], {"OMP_WAIT_POLICY": ""}),
                (f"--threads {n_cpus}, OMP_WAIT_POLICY=PASSIVE", ["--threads", str(n_cpus)], {"OMP_WAIT_POLICY": "PASSIVE"})]
    if args.variants:
        variants = [variants[int(i)] for i in args.variants.split(",")]
    conditions = args.conditions.split(",")
    subprocess.run(base + ["--out", str(tmp / "warm"), "--epochs", "1"], env=env, capture_output=True, check=True)
    results: dict[tuple[str, str], list[dict]] = {}
    for repeat in range(args.repeats):
        for condition in conditions:
            loops = busy_loops(args.busy) if condition == "busy" else []
            try:
                time.sleep(1.0 if loops else 0.0)
                for name, extra, extra_env in variants:
                    out = tmp / f"m{repeat}"
                    r = run_timed(base + extra + ["--out", str(out)], env={**env, **extra_env})
                    chosen = re.search(r"training on (\d+) CPU thread", r["stderr"])
                    r2 = re.search(r"val_r2_heat_capacity=([-\d.e]+)", r["stderr"])
                    r.update(threads=int(chosen.group(1)) if chosen else None, r2=float(r2.group(1)) if r2 else float("nan"))
                    results.setdefault((condition, name), []).append(r)
                    print(f"{condition:6s} {name:40s} {r['wall_s']:7.1f} s  threads {r['threads']}  load {r['load_before']}",
                          file=sys.stderr, flush=True)
                    subprocess.run(["rm", "-rf", str(out)])
            finally:
                for p in loops:
                    p.kill()
                    p.wait()
    rows = []
    for condition in conditions:
        ones = results.get((condition, "--threads 1"))
        one = np.median([r["wall_s"] for r in ones]) if ones else float("nan")
        for name, _, _ in variants:
            rs = results[(condition, name)]
            wall = float(np.median([r["wall_s"] for r in rs]))
            rows.append({"condition": condition, "threads": name, "chosen": rs[0]["threads"], "wall s": wall,
                         "CPU s": float(np.median([r["cpu_s"] for r in rs])), "vs 1 thread": wall / one,
                         "val R² heat_capacity": float(np.median([r["r2"] for r in rs])),
                         "load before": rs[0]["load_before"]})
    notes = [f"Command: `{' '.join(['archetool', '-v', 'fit', 'sample_data/molecules.smi', '--side', 'heat_capacity', '--epochs', str(args.epochs), '--patience', '0'])} [--threads N]`, "
             f"features cached by a warm-up run; {args.repeats} repeat(s), median; busy = {args.busy} `while True: pass` "
             f"processes beside the fit; OMP_NUM_THREADS and OMP_WAIT_POLICY unset unless the row says.",
             f"Script: `python benchmarks/fit_threads.py --epochs {args.epochs} --repeats {args.repeats} --busy {args.busy}`",
             f"Machine: {machine()}; {n_cpus} CPUs available to the process; date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
             "The machine was shared with other jobs throughout (see the load column): 'as is' is not a quiet machine."]
    write_report("Threads: default vs 1 vs N (the README's main job)", markdown(rows), notes, args.name)


if __name__ == "__main__":
    main()

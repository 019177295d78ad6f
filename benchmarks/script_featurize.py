"""Benchmark: what an unguarded script costs in featurisation (issue 15 item 11).

A script that calls archetool at its top level without an ``if __name__ == "__main__":`` block cannot
use worker processes (they would run the script again), so archetool featurises its molecules in the
calling process. This measures the price: the same ``featurize_smiles`` call on the first N molecules
of RDKit's NCI ``first_5K.smi`` (fast descriptor set, 2048 bits), timed inside a script run as
``python x.py``, once guarded (``--jobs`` worker processes) and once unguarded (in-process). Rounds
alternate (guarded, unguarded, ...); medians are reported with the load average before each run.

Run:    python benchmarks/script_featurize.py                     (3 rounds, 2,000 molecules, 2 jobs)
Quick:  python benchmarks/script_featurize.py --rounds 1 --molecules 1000
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, load_average, markdown, write_report  # noqa: E402

BODY = """import time
from archetool.data import featurizers as f
smiles = [l.split()[0] for l in open({path!r}).read().splitlines()[:{n}]]
settings = (2, 2048, False, tuple(f.descriptor_names("fast")))
tic = time.perf_counter()
x, valid = f.featurize_smiles(smiles, settings, jobs={jobs})
print(time.perf_counter() - tic, int(valid.sum()), f.main_script_reruns())
"""


def run(script: Path) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, script.name], cwd=script.parent, capture_output=True, text=True, env=env, check=True)
    seconds, _, reruns = out.stdout.split()
    return float(seconds), reruns


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--molecules", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    import rdkit

    nci = Path(rdkit.__file__).parent / "Data" / "NCI" / "first_5K.smi"
    body = BODY.format(path=str(nci), n=args.molecules, jobs=args.jobs)
    times: dict[str, list[float]] = {"guarded (worker processes)": [], "unguarded (in-process)": []}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        guarded = Path(tmp) / "guarded.py"
        guarded.write_text("if __name__ == '__main__':\n" + "".join(f"    {line}\n" for line in body.splitlines()))
        plain = Path(tmp) / "plain.py"
        plain.write_text(body)
        for _ in range(args.rounds):
            for name, script in zip(times, (guarded, plain)):
                loads.append(load_average())
                seconds, reruns = run(script)
                assert (reruns == "None") == (script is guarded), reruns
                times[name].append(seconds)
    base = statistics.median(times["guarded (worker processes)"])
    rows = [{"script": name, "featurise s (median)": statistics.median(t), "molecules/s": args.molecules / statistics.median(t),
             "x guarded time": statistics.median(t) / base, "runs": ", ".join(f"{v:.2f}" for v in t)} for name, t in times.items()]
    notes = [f"Command: `python benchmarks/script_featurize.py --molecules {args.molecules} --rounds {args.rounds} --jobs {args.jobs}`",
             f"{os.cpu_count()} cores, machine shared with other jobs; load averages before the runs: {'; '.join(loads)}.",
             "Time of the featurize_smiles call only (inside the script; worker start-up included for the guarded one)."]
    write_report("Featurisation in a guarded vs an unguarded script", markdown(rows), notes, "script_featurize")


if __name__ == "__main__":
    main()

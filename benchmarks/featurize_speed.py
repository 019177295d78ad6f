"""Benchmark: molecule featurisation speed (issue 12 item 6).

Part 1, descriptor cost: each RDKit 2D descriptor's time per molecule over the first N molecules of
RDKit's NCI ``first_5K.smi``, computed in RDKit's order on the same molecule objects, as the featuriser
computes them (descriptors of one family share cached intermediates, e.g. Crippen contributions or
E-state indices, so the first of a family pays for the rest). For the descriptors that archetool's
"fast" set leaves out, the information they add is measured too: the R² of a least-squares fit of each
from the fast set's descriptors (R² near 1: the fast set already carries it).

Part 2, whole process: ``archetool embed MODEL first_5K.smi`` (Python start, imports, model load,
parallel featurisation, forward passes, writing a Parquet file), with --jobs 1 and --jobs 2, against a
bare single-core loop of RDKit Morgan fingerprints + descriptors over the same file (its own process too,
including its imports), once with archetool 0.1's descriptor list ("full") and once with the "fast" set
the model uses. The runs alternate (baseline, jobs 1, jobs 2, ...) and medians are reported with the load
average before each run, because the machine may be shared.

Run:    nice -n 10 .venv/bin/python benchmarks/featurize_speed.py                 (3 rounds, 2,000 molecules for part 1)
Quick:  .venv/bin/python benchmarks/featurize_speed.py --rounds 1 --molecules 500 --embed-molecules 1000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import archetool_cmd, load_average, markdown, run_timed, write_report  # noqa: E402

BARE_LOOP = """
import sys, time
import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Chem import Descriptors, rdFingerprintGenerator
RDLogger.DisableLog("rdApp.*")
names = set(sys.argv[2].split(","))
functions = [f for n, f in Descriptors.descList if n in names]
generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
rows = []
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    mol = Chem.MolFromSmiles(line.split()[0])
    if mol is None:
        continue
    values = []
    for f in functions:
        try:
            values.append(float(f(mol)))
        except Exception:
            values.append(float("nan"))
    rows.append(np.concatenate([generator.GetFingerprintAsNumPy(mol).astype(np.float32), np.array(values, np.float32)]))
print(len(rows))
"""


def nci_file() -> Path:
    import rdkit

    return Path(rdkit.__file__).parent / "Data" / "NCI" / "first_5K.smi"


def descriptor_costs(n_molecules: int) -> tuple[str, list[str]]:
    from rdkit import Chem, RDLogger
    from rdkit.Chem import Descriptors

    from archetool.data.featurizers import SLOW_DESCRIPTORS, descriptor_names

    RDLogger.DisableLog("rdApp.*")
    smiles = [line.split()[0] for line in nci_file().read_text().splitlines() if line.strip()]
    mols = [m for m in (Chem.MolFromSmiles(s) for s in smiles[:n_molecules]) if m is not None]
    functions = dict(Descriptors.descList)
    full = descriptor_names("full")
    fast = set(descriptor_names("fast"))
    seconds, values = {}, {}
    for name in full:  # RDKit's order, same molecule objects: cached intermediates shared as in featurisation
        tic = time.perf_counter()
        out = []
        for mol in mols:
            try:
                out.append(float(functions[name](mol)))
            except Exception:
                out.append(np.nan)
        seconds[name] = time.perf_counter() - tic
        values[name] = np.asarray(out)
    total = sum(seconds.values())
    fast_matrix = np.column_stack([values[n] for n in full if n in fast])
    fast_matrix = np.where(np.isfinite(fast_matrix) & (np.abs(fast_matrix) < 1e8), fast_matrix, np.nan)
    fast_matrix = np.nan_to_num((fast_matrix - np.nanmean(fast_matrix, 0)) / (np.nanstd(fast_matrix, 0) + 1e-12))
    design = np.column_stack([np.ones(len(mols)), fast_matrix])

    def r2(name: str) -> float:
        y = values[name]
        ok = np.isfinite(y)
        coef, *_ = np.linalg.lstsq(design[ok], y[ok], rcond=None)
        resid = y[ok] - design[ok] @ coef
        return float(1 - resid.var() / max(y[ok].var(), 1e-12))

    ranked = sorted(full, key=lambda n: -seconds[n])
    shown = ranked[:15] + [n for n in SLOW_DESCRIPTORS if n not in ranked[:15]]
    rows = []
    for name in shown:
        rows.append({"descriptor": name, "µs/molecule": 1e6 * seconds[name] / len(mols),
                     "share of descriptor time": f"{100 * seconds[name] / total:.1f} %",
                     "in fast set": "yes" if name in fast else "no",
                     "R² from fast set": r2(name) if name not in fast else float("nan")})
    slow_share = sum(seconds[n] for n in SLOW_DESCRIPTORS if n in seconds) / total
    notes = [f"{len(mols)} NCI molecules; all {len(full)} descriptors: {1e6 * total / len(mols):,.0f} µs/molecule; "
             f"the fast set ({len(fast)} descriptors) leaves out {', '.join(SLOW_DESCRIPTORS)}: "
             f"{100 * slow_share:.0f} % of the descriptor time.",
             "R² from fast set: least-squares fit of the left-out descriptor from the standardised fast-set descriptors."]
    return markdown(rows, list(rows[0])), notes


def whole_process(rounds: int, jobs: list[int], n_embed: int | None) -> tuple[str, list[str]]:
    from archetool.data.featurizers import descriptor_names

    lines = [line for line in nci_file().read_text().splitlines() if line.strip()][:n_embed]
    n_mol = len(lines)
    cmd = archetool_cmd()
    env = {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "nci.smi"
        data.write_text("\n".join(lines) + "\n")
        train = tmp / "train.smi"
        train.write_text("\n".join(lines[:300]) + "\n")
        run_timed([*cmd, "-q", "fit", str(train), "--out", str(tmp / "model"), "--epochs", "2", "--no-progress"], env=env)
        runs = {"bare loop, full descriptors": [sys.executable, "-c", BARE_LOOP, str(data), ",".join(descriptor_names("full"))],
                "bare loop, fast descriptors": [sys.executable, "-c", BARE_LOOP, str(data), ",".join(descriptor_names("fast"))]}
        for j in jobs:
            runs[f"archetool embed --jobs {j}"] = [*cmd, "-q", "embed", str(tmp / "model"), str(data),
                                                   "--out", str(tmp / f"emb{j}.parquet"), "--jobs", str(j)]
        results: dict[str, list] = {name: [] for name in runs}
        for r in range(rounds):  # alternate, so a burst of load elsewhere hits every variant alike
            for name, command in runs.items():
                results[name].append(run_timed(command, env={**env, "OMP_NUM_THREADS": "1"}))
                print(f"round {r + 1} {name}: {results[name][-1]['wall_s']:.1f}s (load {results[name][-1]['load_before']})",
                      file=sys.stderr)
    base = statistics.median(x["wall_s"] for x in results["bare loop, full descriptors"])
    base_fast = statistics.median(x["wall_s"] for x in results["bare loop, fast descriptors"])
    rows = []
    for name, xs in results.items():
        wall = statistics.median(x["wall_s"] for x in xs)
        rows.append({"run": name, "median wall s": wall, "molecules/s": n_mol / wall,
                     "CPU s": statistics.median(x["cpu_s"] for x in xs),
                     "× bare loop (full)": base / wall, "× bare loop (fast)": base_fast / wall,
                     "walls s": ", ".join(f"{x['wall_s']:.1f}" for x in xs),
                     "load before": "; ".join(x["load_before"].split()[0] for x in xs)})
    notes = [f"{n_mol} molecules (the first of RDKit's first_5K.smi), {rounds} alternating rounds, medians; "
             f"{os.cpu_count()} cores (sched_getaffinity: {len(os.sched_getaffinity(0))}), load average now {load_average()}.",
             "Every run is a whole process (imports included); the embed runs also load the model and write a Parquet file."]
    return markdown(rows, list(rows[0])), notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--molecules", type=int, default=2000, help="molecules for the per-descriptor costs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", default="1,2", help="--jobs values for the embed runs")
    parser.add_argument("--embed-molecules", type=int, default=None, help="embed only the first N molecules (default: all 4,999)")
    parser.add_argument("--skip-costs", action="store_true")
    args = parser.parse_args()
    parts, notes = [], []
    if not args.skip_costs:
        table, extra = descriptor_costs(args.molecules)
        parts.append("### RDKit descriptor cost\n\n" + table)
        notes += extra
    table, extra = whole_process(args.rounds, [int(j) for j in args.jobs.split(",")], args.embed_molecules)
    parts.append("### Whole-process embed vs a bare single-core RDKit loop\n\n" + table)
    notes += extra
    write_report("Molecule featurisation speed", "\n\n".join(parts), notes, "featurize_speed")


if __name__ == "__main__":
    main()

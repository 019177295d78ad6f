"""Greedy decodes held to the data's size range (issue 18): the size guard's first stage alone against all its stages.

For each fitted deepaa molecule model: greedy decodes at the archetypes, along ``interpolate`` between every pair of
archetypes (10 steps each) and over ``interpolate --grid 3``; how many are distinct and how many have a heavy-atom
count inside the training molecules' 5-95 % range (the range the model stores), with the guard's first stage only
(32 samples at temperature 0.5, round 7) and with every stage of ``SIZE_GUARD_STAGES`` (the default), in the same run.

Usage (from the repository root; MODEL a deepaa model fitted by ``molecule_generation.py --dataset moses|nci``):
  python benchmarks/molecule_size_guard.py MODEL [MODEL ...] [--name molecule_size_guard_stages]
Writes benchmarks/results/NAME.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import load_average, machine, markdown  # noqa: E402
from molecule_generation import archetype_lines, rdkit_props  # noqa: E402


def greedy_paths(model, size_range) -> dict:
    """Distinct and in-range counts of the archetypes, every archetype pair's line and the 3-grid, and how many
    times the guard drew a stage after its first."""
    from archetool.analysis import generation

    lo, hi = size_range
    later = []
    stage = generation.RankedSamples.stage

    def counted(self, condition, index):
        if index > 0 and len(self._cache.get(condition.cpu().numpy().tobytes(), [])) <= index:
            later.append(index)
        return stage(self, condition, index)

    generation.RankedSamples.stage = counted
    tic = time.perf_counter()
    try:
        arch = rdkit_props(model.archetypes()["smiles"].tolist())[1]
        lines = archetype_lines(model, size_range)
        grid = model.interpolate(grid=3)
    finally:
        generation.RankedSamples.stage = stage
    seconds = time.perf_counter() - tic
    grid_heavy = rdkit_props(grid["smiles"].tolist())[1]
    inside = lambda heavy: int(((np.asarray(heavy) >= lo) & (np.asarray(heavy) <= hi)).sum())  # noqa: E731
    return {"archetypes in range": f"{inside(arch)} of {len(arch)}",
            "lines in range": f"{sum(p[2] for p in lines)} of {sum(len(p[3]) for p in lines)}",
            "lines distinct": f"{sum(p[1] for p in lines)} of {sum(len(p[3]) for p in lines)}",
            "grid in range": f"{inside(grid_heavy)} of {len(grid)}",
            "grid distinct": f"{grid['smiles'].nunique()} of {len(grid)}",
            "smallest decode (heavy atoms)": int(np.nanmin(np.concatenate([arch, grid_heavy] + [p[3] for p in lines]))),
            "later stages drawn": len(later), "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--name", default="molecule_size_guard_stages")
    args = parser.parse_args()

    import archetool
    from archetool.analysis import generation

    load = load_average()
    stages = generation.SIZE_GUARD_STAGES
    rows = []
    for path in args.models:
        model = archetool.load(path)
        size_range = model.prep.sequence["heavy_atoms"]
        model.archetypes()  # warm-up: the first call's one-off costs would go to whichever setting runs first
        for label, used in (("first stage only (round 7)", stages[:1]), ("all stages (default)", stages)):
            generation.SIZE_GUARD_STAGES = used
            rows.append({"model": path, "size range": f"{size_range[0]}-{size_range[1]}", "guard": label}
                        | greedy_paths(model, size_range))
        generation.SIZE_GUARD_STAGES = stages
    text = "\n".join([
        f"# Greedy decodes and the size guard's stages (issue 18)\n",
        f"Machine: {machine()}; load before: {load}. Command: `python benchmarks/molecule_size_guard.py "
        f"{' '.join(sys.argv[1:])}`\n",
        f"Stages (samples, temperature): {stages}; a later stage is drawn only at a point where no earlier one has a "
        "molecule inside the range (or, for a repeat, a new one inside it). seconds: archetypes, the six lines and the "
        "grid together, after a warm-up call.\n",
        markdown(rows), ""])
    out = Path(__file__).parent / "results" / f"{args.name}.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

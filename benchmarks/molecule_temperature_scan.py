"""Sampling temperature of a fitted molecule model (issue 18, round 7): first-draw validity against FCD.

For each temperature: ``sample`` 5,000 molecules from the default (posterior) prior, then report the share of
first draws that are molecules (before ``sample`` draws the others again), the output's validity and uniqueness,
FCD to MOSES test and scaffold test, and Pearson(pred_logp at the latent point, RDKit logP of the molecule).

Usage (from the repository root; MODEL a deepaa model fitted by ``molecule_generation.py --dataset moses``):
  python benchmarks/molecule_temperature_scan.py MODEL [--temperatures 1,0.9,0.8,0.7] [--samples 5000]
         [--name molecule_temperature_scan]
Writes benchmarks/results/NAME.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr

sys.path.insert(0, str(Path(__file__).parent))
from _common import load_average, machine, markdown  # noqa: E402
from molecule_generation import FCD, MOSES_DIR, first_draw_validity, rdkit_props  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--temperatures", default="1,0.9,0.8,0.7")
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--moses-dir", default=str(MOSES_DIR))
    parser.add_argument("--name", default="molecule_temperature_scan")
    args = parser.parse_args()

    import archetool

    load = load_average()
    model = archetool.load(args.model)
    fcd = FCD(Path(args.moses_dir))
    k = model.module.n_archetypes
    rows = []
    for temperature in [float(t) for t in args.temperatures.split(",")]:
        t0 = time.perf_counter()
        sampled = model.sample(args.samples, seed=1, prior="posterior", temperature=temperature)
        smiles = sampled["smiles"].tolist()
        valid = [s for s in smiles if isinstance(s, str) and s]
        logp, heavy = rdkit_props(smiles)
        ok = ~np.isnan(logp)
        scores = fcd(valid)
        rows.append({"temperature": temperature,
                     "first-draw validity": first_draw_validity(model, sampled[[f"a{j}" for j in range(k)]].to_numpy(), temperature),
                     "validity": len(valid) / len(smiles), "uniqueness": len(set(valid)) / max(1, len(valid)),
                     "FCD test": scores["test"], "FCD scaffold test": scores["test_scaffolds"],
                     "Pearson(pred_logp, RDKit logP)": float(pearsonr(sampled["pred_logp"].to_numpy()[ok], logp[ok])[0]),
                     "mean heavy atoms": float(np.nanmean(heavy)), "seconds": round(time.perf_counter() - t0)})
        print(rows[-1], flush=True)
    command = "python benchmarks/molecule_temperature_scan.py " + " ".join(sys.argv[1:])
    text = "\n".join([f"# Sampling temperature: first-draw validity against FCD (issue 18)\n", f"Machine: {machine()}; load before: {load}.",
                      f"\nModel: `{args.model}`. Command: `{command}`\n", markdown(rows), "",
                      f"{args.samples} samples from the posterior prior per temperature (seed 1); first-draw validity: the "
                      "share of the first token strings that are molecules, before `sample` draws the others again.\n"])
    out = Path(__file__).parent / "results" / f"{args.name}.md"
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""De novo molecules from the SELFIES sequence decoder (issue 11): quality, steering, interpolation, classes, time.

Data: a seeded QM9 subsample from ``qm9pack`` that leaves out every molecule of sample_data/molecules.smi
(install it for the benchmark only: ``pip install --no-deps qm9pack``), with side information RDKit computes
for any molecule, so generated molecules are scored honestly: TPSA (deepaa side) and a heteroatom class
(nvae label: which of N and O a molecule contains). 10 % of the molecules are held out as the reference for
FCD (reported only when the optional ``fcd`` package is installed).

1. Generation quality from the prior (deepaa, side = TPSA, k = 4; 1,000 samples): validity, uniqueness,
   novelty, internal diversity, mean heavy-atom count against the data's. Baseline: MOSES's VAE
   (validity 0.977, unique@10k 0.998, novelty 0.695; published figures).
2. Property steering: 200 samples near each archetype (``--archetype aI``); their real (RDKit) TPSA means
   ranked against the model's pred_tpsa at the archetypes (Spearman), and their span against the span of the
   predictions. Baseline: 200 samples from the prior, same run.
3. Interpolation: greedy molecules along the line from the lowest- to the highest-pred_tpsa archetype (20
   steps): Spearman of real TPSA with the step, distinct molecules.
4. Class-conditioned molecules (nvae, label = heteroatom class): 200 samples per class; fraction whose real
   heteroatom class is the one asked for. Baseline: the class frequencies of the data (a sampler that ignores
   the class).
5. Time: ``archetool fit sample_data/molecules.smi --side heat_capacity`` with and without the decoder,
   alternately, OMP_NUM_THREADS=2.

Run from the repository root:  nice -n 10 .venv/bin/python benchmarks/molecule_generation.py [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, archetool_cmd, load_average, machine, markdown, run_timed, write_result  # noqa: E402


def hetero_class(mol) -> str:
    symbols = {a.GetSymbol() for a in mol.GetAtoms()}
    return {(True, True): "N+O", (True, False): "N", (False, True): "O", (False, False): "CH"}[("N" in symbols, "O" in symbols)]


def load_data(n: int, seed: int) -> pd.DataFrame:
    from rdkit import Chem, RDLogger
    from rdkit.Chem import Descriptors

    RDLogger.DisableLog("rdApp.*")
    spec = importlib.util.find_spec("qm9pack")
    if spec is None:
        sys.exit("qm9pack is not installed: .venv/bin/pip install --no-deps qm9pack")
    data_dir = Path(list(spec.submodule_search_locations)[0]) / "data"
    df = pd.concat([pd.read_csv(data_dir / f"qm9_part{i}.csv", usecols=["Index", "SMILES"]) for i in (1, 2, 3)],
                   ignore_index=True)
    shipped = set(pd.read_csv(REPO / "sample_data" / "molecules.smi", sep=" ")["id"])
    rng = np.random.default_rng(seed)
    rows = []
    for i in rng.permutation(len(df)):
        ident = f"qm9_{int(df.at[i, 'Index']):06d}"
        mol = Chem.MolFromSmiles(df.at[i, "SMILES"])
        if ident in shipped or mol is None:
            continue
        rows.append({"id": ident, "smiles": Chem.MolToSmiles(mol), "tpsa": Descriptors.TPSA(mol),
                     "hetero": hetero_class(mol), "heavy_atoms": mol.GetNumHeavyAtoms()})
        if len(rows) == n:
            break
    return pd.DataFrame(rows)


def tpsa_of(smiles: list[str]) -> np.ndarray:
    from rdkit import Chem
    from rdkit.Chem import Descriptors

    out = []
    for s in smiles:
        mol = Chem.MolFromSmiles(s) if isinstance(s, str) and s else None
        out.append(Descriptors.TPSA(mol) if mol is not None else np.nan)
    return np.asarray(out)


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def fit(table: Path, out: Path, **options):
    from archetool.fitting import FitOptions
    from archetool.fitting import fit as run_fit

    return run_fit(FitOptions(data=str(table), out=str(out), progress_bar=False, **options))


def fcd_score(generated: list[str], reference: list[str]) -> float | None:
    try:
        from fcd import get_fcd  # optional extra
    except ImportError:
        return None
    return float(get_fcd([s for s in generated if s], reference))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--molecules", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--per-archetype", type=int, default=200)
    parser.add_argument("--time-pairs", type=int, default=1, help="with/without-decoder timing pairs (0: skip)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=100, help="fit epochs (early stopping may end sooner)")
    parser.add_argument("--quick", action="store_true", help="500 molecules, 300 samples, 50 per archetype, no timing")
    args = parser.parse_args()
    if args.quick:
        quick = {"molecules": 500, "samples": 300, "per_archetype": 50, "time_pairs": 0}
        for key, value in quick.items():  # options given explicitly win
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    import logging


    from archetool.analysis import adapter

    logging.basicConfig(level=logging.WARNING)
    tic = time.perf_counter()
    data = load_data(args.molecules, args.seed)
    rng = np.random.default_rng(args.seed)
    held = rng.random(len(data)) < 0.1
    train, heldout = data[~held].reset_index(drop=True), data[held].reset_index(drop=True)
    work = Path(tempfile.mkdtemp(prefix="molgen-"))
    table = work / "train.csv"
    train.to_csv(table, index=False)
    lines = ["# Molecule generation benchmark (issue 11)\n",
             f"Machine: {machine()}; load before: {load_average()}. Data: {len(train)} QM9 molecules from qm9pack "
             f"(seed {args.seed}, none of sample_data/molecules.smi), {len(heldout)} held out. "
             f"Command: `nice -n 10 .venv/bin/python benchmarks/molecule_generation.py {' '.join(sys.argv[1:])}`\n"]
    print(f"models in {work}", file=sys.stderr)

    # 1. quality from the prior ------------------------------------------------------------------
    t0 = time.perf_counter()
    model = fit(table, work / "deepaa", side=["tpsa"], k=4, seed=0, epochs=args.epochs)
    fit_s = time.perf_counter() - t0
    summary = model.config["summary"]
    prior = model.sample(args.samples, seed=1)
    metrics = prior.attrs["generation"]
    fcd = fcd_score(prior["smiles"].tolist(), heldout["smiles"].tolist())
    rows = [
        {"metric": "validity", "archetool deepaa": metrics["validity"], "MOSES VAE (published)": 0.977, "target": ">= 0.99"},
        {"metric": "uniqueness", "archetool deepaa": metrics["uniqueness"], "MOSES VAE (published)": 0.998, "target": ">= 0.95"},
        {"metric": "novelty", "archetool deepaa": metrics["novelty"], "MOSES VAE (published)": 0.695, "target": ">= 0.7"},
        {"metric": "internal diversity", "archetool deepaa": metrics["internal_diversity"], "MOSES VAE (published)": 0.856, "target": ""},
        {"metric": "mean heavy atoms", "archetool deepaa": metrics["mean_heavy_atoms"],
         "MOSES VAE (published)": float("nan"), "target": f"data {train['heavy_atoms'].mean():.2f} ± 1"},
        {"metric": "FCD vs held-out", "archetool deepaa": float("nan") if fcd is None else fcd,
         "MOSES VAE (published)": 0.099, "target": "(fcd not installed)" if fcd is None else ""},
    ]
    lines += [f"## 1. Generation quality from the prior ({args.samples} samples, deepaa side=tpsa k=4)\n",
              markdown(rows), "",
              f"deepaa fit: {fit_s:.0f} s, {summary['epochs_run']} epochs, held-out R² of tpsa {summary.get('val_r2_tpsa', float('nan')):.3f}. "
              "MOSES figures are from its paper (different data: ZINC drug-like molecules), quoted for scale.\n"]

    # 2. steering --------------------------------------------------------------------------------
    analysis = adapter("deepaa")
    arch = analysis.decode_table(model, analysis.codes(model))
    preds = arch["pred_tpsa"].to_numpy()
    steer, means = [], []
    for j in range(4):
        t = model.sample(args.per_archetype, archetype=f"a{j}", seed=10 + j)
        tp = tpsa_of(t["smiles"].tolist())
        means.append(np.nanmean(tp))
        steer.append({"archetype": f"a{j}", "pred_tpsa at archetype": preds[j], "generated mean TPSA (RDKit)": means[-1],
                      "sd": np.nanstd(tp), "validity": t.attrs["generation"]["validity"],
                      "uniqueness": t.attrs["generation"]["uniqueness"], "novelty": t.attrs["generation"]["novelty"]})
    base = model.sample(args.per_archetype, seed=99)
    base_tp = tpsa_of(base["smiles"].tolist())
    steer.append({"archetype": "prior (baseline)", "pred_tpsa at archetype": float("nan"),
                  "generated mean TPSA (RDKit)": np.nanmean(base_tp), "sd": np.nanstd(base_tp),
                  "validity": base.attrs["generation"]["validity"], "uniqueness": base.attrs["generation"]["uniqueness"],
                  "novelty": base.attrs["generation"]["novelty"]})
    rho = spearman(means, preds)
    span = (max(means) - min(means)) / (preds.max() - preds.min())
    lines += [f"## 2. Property steering ({args.per_archetype} samples near each archetype, --spread 0.2)\n", markdown(steer), "",
              f"Spearman(generated mean TPSA, pred_tpsa) = {rho:.2f} (target >= 0.8); span of the means / span of the "
              f"predictions = {span:.2f} (target >= 0.5). Data TPSA: mean {train['tpsa'].mean():.1f}, sd {train['tpsa'].std():.1f}.\n"]

    # 3. interpolation ---------------------------------------------------------------------------
    lo, hi = int(np.argmin(preds)), int(np.argmax(preds))
    path = analysis.interpolate(model, f"a{lo}", f"a{hi}", 20, model.training_rows)
    tp = tpsa_of(path["smiles"].tolist())
    rho_path = spearman(np.arange(len(tp)), tp)
    distinct = path["smiles"].nunique()
    lines += [f"## 3. Interpolation a{lo} (lowest pred_tpsa) -> a{hi} (highest), 20 steps, greedy\n",
              markdown([{"step": int(r.step), "smiles": r.smiles, "TPSA": v, "pred_tpsa": r.pred_tpsa}
                        for r, v in zip(path.itertuples(), tp)]), "",
              f"Spearman(step, TPSA) = {rho_path:.2f} (target >= 0.6); {distinct} distinct molecules in 20 steps.\n"]

    # 4. nvae classes ----------------------------------------------------------------------------
    from rdkit import Chem

    nvae = fit(table, work / "nvae", model="nvae", label="hetero", seed=0, epochs=args.epochs)
    cls_rows = []
    freq = train["hetero"].value_counts(normalize=True)
    for c in sorted(train["hetero"].unique()):
        t = nvae.sample(args.per_archetype, label=c, seed=20)
        got = [hetero_class(Chem.MolFromSmiles(s)) for s in t["smiles"] if isinstance(s, str)]
        cls_rows.append({"class": c, "training rows": int((train["hetero"] == c).sum()),
                         "sampled in class": float(np.mean([g == c for g in got])),
                         "baseline (class frequency)": float(freq[c]),
                         "validity": t.attrs["generation"]["validity"], "uniqueness": t.attrs["generation"]["uniqueness"],
                         "novelty": t.attrs["generation"]["novelty"]})
    overall = float(np.average([r["sampled in class"] for r in cls_rows], weights=[1] * len(cls_rows)))
    lines += [f"## 4. Class-conditioned molecules (nvae, label = heteroatoms N/O, {args.per_archetype} per class)\n",
              markdown(cls_rows), "", f"Mean fraction in the class asked for: {overall:.3f} (target >= 0.8).\n"]

    # 5. time ------------------------------------------------------------------------------------
    if args.time_pairs:
        times = {"selfies": [], "none": []}
        for _ in range(args.time_pairs):
            for decoder in ("selfies", "none"):
                out = work / f"time-{decoder}"
                r = run_timed([*archetool_cmd(), "fit", str(REPO / "sample_data" / "molecules.smi"), "--side", "heat_capacity",
                               "--decoder", decoder, "--out", str(out), "--no-progress"],
                              env={"OMP_NUM_THREADS": "2", "PYTHONPATH": str(REPO)})
                import json

                summ = json.loads((out / "config.json").read_text())["summary"]
                times[decoder].append((r["wall_s"], r["cpu_s"], r["load_before"], summ["epochs_run"],
                                       summ.get("val_r2_heat_capacity", float("nan"))))
        trows = [{"decoder": d, "wall s": w, "CPU s": c, "epochs": e, "val R² heat_capacity": r2, "load before": ld}
                 for d, runs in times.items() for (w, c, ld, e, r2) in runs]
        lines += ["## 5. Time: `archetool fit sample_data/molecules.smi --side heat_capacity` (OMP_NUM_THREADS=2, alternately)\n",
                  markdown(trows), ""]
    lines.append(f"Total benchmark time {time.perf_counter() - tic:.0f} s.")
    text = "\n".join(lines) + "\n"
    print(text)
    out = write_result("molecule_generation_quick" if args.quick else "molecule_generation", text)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

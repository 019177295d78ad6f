"""De novo molecules from the sequence decoder (issue 11; SMILES or SELFIES tokens): quality, steering, interpolation, classes, time.

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

With ``--dataset moses`` (or ``nci``), drug-like molecules (issue 18): deepaa (k = 4, side = RDKit logP) on a random
subset of MOSES train (``--molecules``); 5,000 samples from the prior (the aggregate posterior, and Dir(1) beside
it): validity, uniqueness, novelty against all of MOSES train, internal diversity, heavy atoms, FCD to MOSES test
and scaffold test (``fcd`` package, MOSES's precomputed test statistics), with an FCD floor (as many real training
molecules) and ceiling (random valid SELFIES) in the same run and MOSES's published CharRNN / VAE beside;
conditioning (greedy decodes, archetypes, Pearson of pred_logp and real logP, near-archetype steering); targeted
design at the data's 10/50/90th logP percentiles against prior sampling. NCI: RDKit's first_5K.smi, <= 20 heavy
atoms, no FCD (no test set).

Run from the repository root:  nice -n 10 .venv/bin/python benchmarks/molecule_generation.py [--quick]
                                [--dataset moses --molecules 20000 --samples 5000 --epochs 10]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
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
    parser.add_argument("--dataset", choices=("qm9", "moses", "nci"), default="qm9",
                        help="qm9: the issue-11 benchmark; moses / nci: drug-like molecules (issue 18), side RDKit logP")
    parser.add_argument("--moses-dir", default=str(MOSES_DIR), help="folder with MOSES's train/test CSVs and *_stats.npz")
    parser.add_argument("--temperature", type=float, default=None, help="moses/nci: sampling temperature (default: the model's, 0.7)")
    parser.add_argument("--decoder-options", default="{}", help="JSON of SequenceDecoder settings for the fits, e.g. '{\"hidden_dim\": 128}'")
    parser.add_argument("--target-n", type=int, default=500, help="moses/nci: molecules per design target")
    parser.add_argument("--model", default=None, help="moses/nci: a model directory fitted by an earlier run of this benchmark (same data options): evaluate it, do not fit")
    parser.add_argument("--decoder-epochs", type=int, default=None, help="moses/nci: epochs of the decoder stage (default: --epochs)")
    parser.add_argument("--molecules", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--per-archetype", type=int, default=200)
    parser.add_argument("--time-pairs", type=int, default=1, help="with/without-decoder timing pairs (0: skip)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=None, help="fit epochs (default: fit's, 100 or fewer for large data; early stopping may end sooner)")
    parser.add_argument("--quick", action="store_true", help="500 molecules, 300 samples, 50 per archetype, no timing")
    args = parser.parse_args()
    if args.quick:
        quick = {"molecules": 500, "samples": 300, "per_archetype": 50, "time_pairs": 0}
        for key, value in quick.items():  # options given explicitly win
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    if args.dataset != "qm9":
        return main_druglike(args)
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
    model = fit(table, work / "deepaa", side=["tpsa"], k=4, seed=0, epochs=args.epochs,
                decoder_options=json.loads(args.decoder_options))
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

    nvae = fit(table, work / "nvae", model="nvae", label="hetero", seed=0, epochs=args.epochs,
               decoder_options=json.loads(args.decoder_options))
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


# --- drug-like sets: MOSES and NCI (issue 18) ---------------------------------------------------------
MOSES_DIR = Path("/work/moses/moses/dataset/data")
PUBLISHED = {"CharRNN": {"validity": 0.975, "uniqueness": 0.999, "novelty vs all train": 0.842, "FCD test": 0.073, "FCD scaffold test": 0.520,
                         "internal diversity": 0.856},
             "VAE": {"validity": 0.977, "uniqueness": 0.998, "novelty vs all train": 0.695, "FCD test": 0.099, "FCD scaffold test": 0.567,
                     "internal diversity": 0.856}}


def rdkit_props(smiles: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(RDKit Crippen logP, heavy atoms) of each SMILES; NaN where it does not parse."""
    from rdkit import Chem
    from rdkit.Chem import Crippen

    logp, heavy = [], []
    for s in smiles:
        mol = Chem.MolFromSmiles(s) if isinstance(s, str) and s else None
        logp.append(Crippen.MolLogP(mol) if mol is not None else np.nan)
        heavy.append(mol.GetNumHeavyAtoms() if mol is not None else np.nan)
    return np.asarray(logp), np.asarray(heavy, float)


def load_druglike(dataset: str, n: int, seed: int, moses_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """(training table id, smiles, logp, heavy_atoms; the molecules novelty is judged against)."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    rng = np.random.default_rng(seed)
    if dataset == "moses":
        train = pd.read_csv(moses_dir / "train.csv.gz")["SMILES"].tolist()
        pick = rng.choice(len(train), n, replace=False)
        smiles = [train[i] for i in pick]
        ids = [f"moses_{i}" for i in pick]
        known = train
    else:
        import rdkit

        path = Path(rdkit.__file__).parent / "Data" / "NCI" / "first_5K.smi"
        smiles, ids = [], []
        for line in path.read_text().splitlines():
            parts = line.split()
            mol = Chem.MolFromSmiles(parts[0]) if parts else None
            if mol is None or mol.GetNumHeavyAtoms() > 20:
                continue
            smiles.append(Chem.MolToSmiles(mol))
            ids.append(parts[1] if len(parts) > 1 else f"nci_{len(ids)}")
            if len(smiles) == n:
                break
        known = smiles
    logp, heavy = rdkit_props(smiles)
    return pd.DataFrame({"id": ids, "smiles": smiles, "logp": logp, "heavy_atoms": heavy}), known


class FCD:
    """Fréchet ChemNet distance (``fcd`` package) of SMILES sets against precomputed MOSES statistics."""

    def __init__(self, moses_dir: Path):
        from fcd import load_ref_model

        self.model = load_ref_model()
        self.stats = {name: np.load(moses_dir / f"{name}_stats.npz", allow_pickle=True)["stats"].item()["FCD"]
                      for name in ("test", "test_scaffolds")}

    def __call__(self, smiles: list[str]) -> dict[str, float]:
        from fcd import calculate_frechet_distance, get_predictions

        acts = get_predictions(self.model, [s for s in smiles if isinstance(s, str) and s])
        mu, sigma = acts.mean(0), np.cov(acts.T)
        return {name: float(calculate_frechet_distance(mu, sigma, st["mu"], st["sigma"])) for name, st in self.stats.items()}


def archetype_lines(model, size_range, steps: int = 10) -> list[tuple[str, int, int, list]]:
    """``interpolate`` between every pair of archetypes: (pair, distinct molecules, decodes inside ``size_range``
    (lo, hi heavy atoms), heavy atoms per step) per pair."""
    lo, hi = size_range
    k = model.module.n_archetypes
    pairs = []
    for a in range(k):
        for b in range(a + 1, k):
            path = model.interpolate(start=f"a{a}", end=f"a{b}", steps=steps)
            heavy = rdkit_props(path["smiles"].tolist())[1]
            pairs.append((f"a{a}-a{b}", path["smiles"].nunique(), int(((heavy >= lo) & (heavy <= hi)).sum()), heavy.tolist()))
    return pairs


def random_selfies(smiles: list[str], n: int, seed: int) -> list[str]:
    """n random token sequences of the SELFIES vocabulary of ``smiles`` (the training molecules; lengths up to
    their 99.5th percentile), decoded: the FCD ceiling of a generator that knows only the alphabet."""
    from archetool.data.selfies_tokens import SelfiesVocabulary, encode_molecules

    vocabulary = SelfiesVocabulary.build([s for s in encode_molecules(smiles)[0] if s])
    rng = np.random.default_rng(seed)
    atoms = np.flatnonzero(vocabulary.atom_mask())
    lengths = rng.integers(8, vocabulary.max_length + 1, n)
    tokens = np.zeros((n, vocabulary.max_length + 1), np.int64)
    for i, length in enumerate(lengths):
        tokens[i, 0] = rng.choice(atoms)
        tokens[i, 1:length] = rng.integers(3, vocabulary.size, length - 1)
        tokens[i, length] = 2
    return [s for s in vocabulary.decode(tokens) if s]


def first_draw_validity(model, weights: np.ndarray, temperature: float, seed: int = 5) -> float:
    """Fraction of one draw of token strings at the simplex points ``weights`` (n, k) that are molecules, before
    ``sample`` draws the others again (SMILES decoders; SELFIES ones: 1 by construction)."""
    import torch

    from archetool.analysis import adapter
    from archetool.data.tokens import vocabulary_from_state

    vocabulary = vocabulary_from_state(model.prep.sequence)
    latent = torch.from_numpy((weights @ adapter(model.kind).codes(model)).astype(np.float32))
    torch.manual_seed(seed)
    with torch.no_grad():
        condition = model.module.sequence_condition(latent, None)
        tokens = model.module.sequence_decoder.generate(condition, temperature=temperature,
                                                        first_allowed=torch.from_numpy(vocabulary.atom_mask()))
    return float(np.mean([s is not None for s in vocabulary.decode(tokens.numpy())]))


def main_druglike(args) -> None:
    import logging

    import torch
    from scipy.stats import pearsonr

    from archetool.analysis import adapter
    from archetool.analysis.generation import generate_smiles, generation_metrics

    logging.basicConfig(level=logging.WARNING)
    tic = time.perf_counter()
    data, known = load_druglike(args.dataset, args.molecules, args.seed, Path(args.moses_dir))
    work = Path(tempfile.mkdtemp(prefix=f"molgen-{args.dataset}-"))
    table = work / "train.csv"
    data.to_csv(table, index=False)
    print(f"models in {work}", file=sys.stderr)
    lo95 = np.nanpercentile(data["heavy_atoms"], [5, 95])
    described = (f"{len(data)} random MOSES training molecules (seed {args.seed})" if args.dataset == "moses" else
                 f"the first {len(data)} molecules of RDKit's NCI first_5K.smi with at most 20 heavy atoms")
    lines = [f"# Molecule generation on {args.dataset.upper()} (issue 18)\n",
             f"Machine: {machine()}; load before: {load_average()} (machine shared with other jobs). "
             f"Data: {described}, side = RDKit Crippen logP. Command: `nice -n 10 python benchmarks/molecule_generation.py {' '.join(sys.argv[1:])}`\n"]
    t0 = time.perf_counter()
    if args.model:
        import archetool

        model = archetool.load(args.model)
        fit_s = model.config["summary"]["seconds"]
        lines.append(f"Model fitted by an earlier run of this benchmark ({args.model}), evaluated again by this run.\n")
    else:

        model = fit(table, work / "deepaa", side=["logp"], k=4, seed=0, epochs=args.epochs, jobs=1, decoder_epochs=args.decoder_epochs,
                    decoder_options=json.loads(args.decoder_options))
        fit_s = time.perf_counter() - t0
    summary = model.config["summary"]
    lines.append(f"deepaa k=4 fit: {fit_s:.0f} s, {summary['epochs_run']} epochs (asked {args.epochs}), best epoch "
                 f"{summary['best_epoch']}, held-out R² of logp {summary.get('val_r2_logp', float('nan')):.3f}; decoder stage "
                 f"{summary.get('decoder_epochs_run')} epochs (asked {args.decoder_epochs or args.epochs}), best "
                 f"{summary.get('decoder_best_epoch')}, validation token loss {summary.get('decoder_val_tokens')}.\n")
    if args.temperature is None:
        args.temperature = adapter("deepaa").default_temperature(model)
    dec = model.module.sequence_decoder
    lines.append(f"Decoder: {model.prep.sequence.get('kind', 'selfies')} tokens, GRU hidden {dec.hidden_dim}, reads {dec.read!r}, word dropout {dec.word_dropout}, free latent "
                 f"{dec.free_dim}; sampling temperature {args.temperature}; greedy size guard "
                 f"{'on, heavy atoms ' + str(model.prep.sequence.get('heavy_atoms')) if model.prep.sequence.get('heavy_atoms') else 'off (model saved before it)'}.\n")
    train_set = set(known)  # MOSES convention: canonical generated SMILES against the training SMILES as given
    fcd = FCD(Path(args.moses_dir)) if args.dataset == "moses" else None

    def novelty(smiles):
        unique = {s for s in smiles if s}
        return sum(s not in train_set for s in unique) / max(1, len(unique))

    def measures(smiles, label):
        m = generation_metrics(smiles, None)
        logp, heavy = rdkit_props(smiles)
        row = {"set": label, "validity": m["validity"], "uniqueness": m["uniqueness"], "novelty vs all train": novelty(smiles),
               "internal diversity": m["internal_diversity"], "mean heavy atoms": m["mean_heavy_atoms"],
               "mean logP": float(np.nanmean(logp))}
        if fcd is not None:
            f = fcd(smiles)
            row["FCD test"], row["FCD scaffold test"] = f["test"], f["test_scaffolds"]
        return row

    # 1. prior samples, floor and ceiling -----------------------------------------------------------------
    rows = []
    for prior in ("posterior", "dirichlet"):
        t0 = time.perf_counter()
        sampled = model.sample(args.samples, seed=1, prior=prior, temperature=args.temperature)
        gen_s = time.perf_counter() - t0
        smiles = sampled["smiles"].tolist()
        row = measures(smiles, f"archetool deepaa, prior={prior} (T={args.temperature}, {gen_s:.0f} s)")
        real, _ = rdkit_props(smiles)
        ok = ~np.isnan(real)
        row["Pearson(pred_logp, RDKit logP)"] = float(pearsonr(sampled["pred_logp"].to_numpy()[ok], real[ok])[0])
        row["Pearson(repred_logp, RDKit logP)"] = float(pearsonr(sampled["repred_logp"].to_numpy()[ok], real[ok])[0])
        row["first-draw validity"] = first_draw_validity(model, sampled[[f"a{j}" for j in range(4)]].to_numpy(), args.temperature)
        rows.append(row)
        if prior == "posterior":
            prior_logp = real
    if args.dataset == "moses":
        pool = pd.read_csv(Path(args.moses_dir) / "train.csv.gz")["SMILES"]
        floor = pool.sample(args.samples, random_state=args.seed + 1).tolist()
        rows.append(measures(floor, f"floor: {args.samples} real MOSES train molecules"))
    rows.append(measures(random_selfies(data["smiles"].tolist(), args.samples, args.seed), f"ceiling: {args.samples} random valid SELFIES"))
    for name, pub in PUBLISHED.items():
        rows.append({"set": f"MOSES {name} (published, 1.6M train, 30k samples)"} | {k: v for k, v in pub.items()})
    data_row = {"set": "data (training molecules)", "mean heavy atoms": float(data["heavy_atoms"].mean()),
                "mean logP": float(data["logp"].mean())}
    rows.append(data_row)
    lines += [f"## 1. {args.samples} samples from the prior; FCD floor and ceiling in the same run\n", markdown(rows), "",
              "novelty: distinct valid generated molecules (RDKit canonical) not among the training set's SMILES "
              f"({'all 1.58M of MOSES train, as MOSES does' if args.dataset == 'moses' else 'the NCI molecules used'}). "
              "prior=posterior draws the training rows' mixture weights (the default); prior=dirichlet Dir(1). "
              "Published figures are MOSES's (1.6M training molecules, GPU); they are there for scale.\n"]

    # 2. conditioning: greedy decodes, archetypes, near-archetype samples ----------------------------------
    analysis = adapter("deepaa")
    train_rows = model.training_rows
    latent = train_rows[[f"z{j}" for j in range(3)]].to_numpy(np.float32)[:500]
    greedy = generate_smiles(model, latent, temperature=0.0)
    arch = model.archetypes()
    arch_logp, arch_heavy = rdkit_props(arch["smiles"].tolist())
    grid = model.interpolate(grid=3)
    _, grid_heavy = rdkit_props(grid["smiles"].tolist())
    preds = arch["pred_logp"].to_numpy()
    line = model.interpolate(start=f"a{int(np.argmin(preds))}", end=f"a{int(np.argmax(preds))}", steps=10)
    line_logp, line_heavy = rdkit_props(line["smiles"].tolist())
    pairs = archetype_lines(model, lo95)
    steer, means = [], []
    for j in range(4):
        s = model.sample(args.per_archetype, archetype=f"a{j}", seed=10 + j, temperature=args.temperature)
        lp, _ = rdkit_props(s["smiles"].tolist())
        means.append(float(np.nanmean(lp)))
        steer.append({"archetype": f"a{j}", "greedy SMILES": arch["smiles"][j], "pred_logp (predicted at vertex)": preds[j],
                      "repred_logp (greedy molecule)": arch["repred_logp"][j], "RDKit logP (greedy)": arch_logp[j],
                      "heavy atoms (greedy)": arch_heavy[j], f"mean RDKit logP of {args.per_archetype} samples": means[-1],
                      "sd": float(np.nanstd(lp))})
    rho = spearman(means, preds)
    span = (max(means) - min(means)) / (preds.max() - preds.min())
    lines += ["## 2. Conditioning (no collapse)\n", markdown(steer), "",
              f"- greedy decodes of 500 training molecules' latent points: {len(set(greedy))} distinct "
              f"(mean heavy atoms {np.nanmean(rdkit_props(greedy)[1]):.1f}).",
              f"- archetype greedy decodes: {len(set(arch['smiles']))} distinct of 4; heavy atoms {arch_heavy.astype(int).tolist()}, "
              f"data 5-95 % range {lo95[0]:.0f}-{lo95[1]:.0f}; grid 3: {grid['smiles'].nunique()} distinct of {len(grid)}, "
              f"{int(((grid_heavy >= lo95[0]) & (grid_heavy <= lo95[1])).sum())} inside the range; interpolate "
              f"a{int(np.argmin(preds))} -> a{int(np.argmax(preds))} (10 steps): {line['smiles'].nunique()} distinct, "
              f"{int(((line_heavy >= lo95[0]) & (line_heavy <= lo95[1])).sum())} inside the range, Spearman(step, RDKit logP) "
              f"{spearman(np.arange(len(line_logp)), line_logp):.2f}.",
              f"- interpolate between every pair of archetypes (10 steps each): {sum(p[2] for p in pairs)} of "
              f"{10 * len(pairs)} greedy decodes inside the size range, {sum(p[1] for p in pairs)} distinct within their lines "
              f"(per pair, distinct / inside: {', '.join(f'{p[0]} {p[1]}/{p[2]}' for p in pairs)}).",
              f"- near-archetype samples (--spread 0.2): Spearman(mean RDKit logP, pred_logp) = {rho:.2f} (target >= 0.8); "
              f"span of the means / span of the predictions = {span:.2f} (target >= 0.5).\n"]

    # 3. targeted design -------------------------------------------------------------------------------
    tgt_rows = []
    for q in (10, 50, 90):
        goal = float(np.percentile(data["logp"], q))
        try:
            t = model.sample(args.target_n, target={"logp": goal}, seed=30 + q, temperature=args.temperature)
        except Exception as err:  # an unreachable target: say so in the table
            tgt_rows.append({"target": f"p{q} logP = {goal:.2f}", "note": str(err)})
            continue
        real, _ = rdkit_props(t["smiles"].tolist())
        prior_within = float(np.nanmean(np.abs(prior_logp - goal) <= 0.5))
        within = float(np.nanmean(np.abs(real - goal) <= 0.5))
        top = real[: max(1, len(real) // 5)]
        m = t.attrs["generation"]
        tgt_rows.append({"target": f"p{q} logP = {goal:.2f}", "mean RDKit logP": float(np.nanmean(real)), "sd": float(np.nanstd(real)),
                         "within ±0.5": within, "prior within ±0.5": prior_within,
                         "ratio": within / prior_within if prior_within else float("nan"),
                         "best-ranked 20 %: within ±0.5": float(np.nanmean(np.abs(top - goal) <= 0.5)),
                         "mean pred_logp": float(t["pred_logp"].mean()), "mean repred_logp": float(t["repred_logp"].mean()),
                         "validity": m["validity"], "uniqueness": m["uniqueness"], "novelty vs all train": novelty(t["smiles"].tolist())})
    lines += [f"## 3. Targeted design: `sample --target logp=P --n {args.target_n}` at the data's 10/50/90th percentiles\n",
              markdown(tgt_rows, list(dict.fromkeys(k for r in tgt_rows for k in r))), "",
              "within ±0.5: fraction of the returned molecules (the n of 4n decoded candidates whose re-predicted logP is "
              "nearest the target) whose RDKit logP is within 0.5 of the target; prior: the same "
              f"fraction among the {args.samples} prior samples of section 1 (target: ratio >= 2 at p10 and p90). "
              "best-ranked 20 %: the first fifth of the returned rows (ranked by |repred_logp - target|).\n"]
    lines.append(f"Total benchmark time {time.perf_counter() - tic:.0f} s.")
    text = "\n".join(lines) + "\n"
    print(text)
    out = write_result(f"molecule_generation_{args.dataset}" + ("_quick" if args.quick else ""), text)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""New molecules from latent points: SELFIES decoding, novelty, nearest training molecule, set metrics (DESIGN §1.4).

Used by every adapter's ``sample``, ``interpolate`` and ``archetypes`` when the model has a sequence decoder.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from archetool.analysis.base import id_column

log = logging.getLogger("archetool")

#: Morgan fingerprints used for similarity and internal diversity (the usual ECFP4-like setting)
FP_RADIUS, FP_BITS = 2, 2048


def is_molecule_model(model) -> bool:
    return model.prep.featurizer.get("name") == "morgan"


def has_decoder(model) -> bool:
    return getattr(model.module, "sequence_decoder", None) is not None and bool(model.prep.sequence)


def no_decoder_reason(model) -> str:
    where = model.directory or "this model"
    return (f"{where}: no new molecules were generated: the model was fitted with --decoder none, so it has no "
            "sequence decoder; the table holds decoded features and the nearest real molecules (refit with "
            "--decoder smiles or selfies to generate molecules)")


#: greedy decodes outside the data's size range, or repeats: the most likely fitting sample of the first of these
#: (samples, temperature) stages that has one; a later stage is drawn only where no earlier one fits.
#: 32 at 0.5 first (was 16): on 50k MOSES the 3-grid's centre of one face found no in-range molecule among 16 samples
#: and did among 32 (benchmarks/results/molecule_generation_moses_50k_mix05.md); 0.7 found one too, but on QM9's
#: narrow size range (8-9 heavy atoms) gave less typical molecules (N=NC=NC=NC=O) where 0.5 gives ring systems like
#: the data's. Then 64 and 256 at 1.0: on the second 50k MOSES fit, two line points and one grid point had no
#: in-range molecule among the 32 at 0.5 and one among 64 at 1.0 each (benchmarks/results/molecule_size_guard_stages.md).
SIZE_GUARD_STAGES: tuple[tuple[int, float], ...] = ((32, 0.5), (64, 1.0), (256, 1.0))


def generate_smiles(model, latent: np.ndarray, labels: np.ndarray | None = None, temperature: float = 0.0,
                    batch_size: int = 2048, distinct: bool = False) -> list[str | None]:
    """Latent points (m, d) [+ class ids (m,)] -> RDKit canonical SMILES (m) of decoded molecules.

    ``temperature`` > 0: tokens sampled at that temperature (torch's global RNG); with a SMILES decoder, a string
    that is no molecule is drawn again at the same latent point, up to ``REDRAW_ROUNDS`` times (logged; a row
    still without one is None). 0: greedy decoding (the most likely token at each step), held to the data's size
    range: where the greedy molecule's heavy atoms fall outside the training molecules' 5-95 % range (a language
    model's greedy decode can run on into a long carbon chain) or it is no molecule, it is replaced by the most
    likely (total log-probability under the decoder) of the samples that lie inside it, drawn in the stages of
    ``SIZE_GUARD_STAGES`` until one has such a sample (else the most likely that is a molecule), each with a
    fixed seed (greedy decodes stay reproducible); if none is, the greedy decode stays. ``distinct`` (greedy only: the
    points of an ``interpolate`` line, a grid, the archetypes): a molecule that an earlier point already has is
    replaced, the same way, by the most likely of those samples that is new to the set and inside the range; if
    none is, the repeat stays. Both logged.
    """
    import torch

    from archetool.data.tokens import vocabulary_from_state

    module = model.module
    vocabulary = vocabulary_from_state(model.prep.sequence)
    out: list[str | None] = []
    latent = np.asarray(latent, np.float32)
    first = torch.from_numpy(vocabulary.atom_mask())
    guarded, redrawn, repeats = [0, 0], [0, 0], [0, 0]
    replaced: set[int] = set()  # rows whose greedy decode the size guard replaced
    ranked = RankedSamples(module.sequence_decoder, vocabulary, first)

    def conditions(start: int, stop: int):
        z = torch.from_numpy(latent[start:stop]).to(model.device)
        lab = None if labels is None else torch.from_numpy(np.asarray(labels[start:stop], np.int64)).to(model.device)
        return module.sequence_condition(z, lab)

    with torch.no_grad():
        for start in range(0, len(latent), batch_size):
            condition = conditions(start, start + batch_size)
            tokens = module.sequence_decoder.generate(condition, temperature=float(temperature), first_allowed=first)
            smiles = vocabulary.decode(tokens.cpu().numpy())
            if temperature <= 0 and vocabulary.heavy_atoms is not None:
                smiles = _hold_to_size_range(ranked, condition, smiles, guarded, replaced, offset=start)
            elif temperature > 0 and vocabulary.may_be_invalid:
                smiles = _redraw_invalid(module.sequence_decoder, condition, smiles, vocabulary, first, float(temperature), redrawn)
            out.extend(smiles)
        if distinct and temperature <= 0:
            out = _make_distinct(ranked, lambda i: conditions(i, i + 1)[0], out, repeats, replaced)
    if guarded[0]:
        lo, hi = vocabulary.heavy_atoms
        log.info("%d of %d greedy decodes were no molecule or had a heavy-atom count outside the training molecules' "
                 "5-95 %% range (%d-%d); %d replaced by the most likely sample inside it (drawn: %s, until one fits)",
                 guarded[0], len(latent), lo, hi, guarded[1], _stage_words())
    if repeats[0]:
        log.info("%d of %d greedy decodes repeated an earlier point's molecule; %d replaced by the most likely new "
                 "molecule at their point (drawn: %s, until one fits); interpolate --allow-repeats keeps the greedy "
                 "ones", repeats[0], len(latent), repeats[1], _stage_words())
    if redrawn[0]:
        log.info("%d of %d sampled SMILES strings were no molecule and were drawn again at the same latent points",
                 redrawn[0], len(latent))
    if redrawn[1]:
        log.warning("%d of %d rows have no molecule after %d draws at their latent point (their smiles column is empty): "
                    "points far from the training molecules; sample nearer them (the default --prior posterior) or "
                    "at a lower --temperature", redrawn[1], len(latent), REDRAW_ROUNDS + 1)
    return out


def _stage_words() -> str:
    """The guard's sampling stages in words: '32 samples at temperature 0.5, then 64 at 1, then 256 at 1'."""
    (n, t), rest = SIZE_GUARD_STAGES[0], SIZE_GUARD_STAGES[1:]
    return ", then ".join([f"{n} samples at temperature {t:g}"] + [f"{m} at {u:g}" for m, u in rest])


class RankedSamples:
    """Samples at one condition (C,), in the stages of ``SIZE_GUARD_STAGES``: each stage's molecules most likely
    first (total log-probability under the decoder), no repeats; every stage drawn with its own fixed seed and at
    most once per distinct point, so a result depends on the point alone."""

    def __init__(self, decoder, vocabulary, first):
        self.decoder, self.vocabulary, self.first = decoder, vocabulary, first
        self._cache: dict[bytes, list[list[str]]] = {}

    def stage(self, condition, index: int) -> list[str]:
        """Stage ``index``'s molecules at ``condition`` (C,), most likely first."""
        import torch

        drawn_stages = self._cache.setdefault(condition.cpu().numpy().tobytes(), [])
        while len(drawn_stages) <= index:
            tries, temperature = SIZE_GUARD_STAGES[len(drawn_stages)]
            cond = condition.unsqueeze(0).repeat(tries, 1)
            generator = torch.Generator(device=cond.device).manual_seed(len(drawn_stages))
            tokens = self.decoder.generate(cond, temperature=temperature, generator=generator, first_allowed=self.first)
            logp = self.decoder.sequence_log_prob(cond, tokens).cpu().numpy()
            drawn = self.vocabulary.decode(tokens.cpu().numpy())
            order = sorted((j for j in range(len(drawn)) if drawn[j] is not None), key=lambda j: -logp[j])
            drawn_stages.append(list(dict.fromkeys(drawn[j] for j in order)))
        return drawn_stages[index]

    def best(self, condition, accept) -> str | None:
        """The most likely molecule that ``accept`` takes, of the first stage at ``condition`` (C,) that has one
        (later stages drawn only as needed); None if no stage has."""
        for index in range(len(SIZE_GUARD_STAGES)):
            found = next((s for s in self.stage(condition, index) if accept(s)), None)
            if found is not None:
                return found
        return None

    def in_range(self, smiles: str | None) -> bool:
        """A molecule whose heavy atoms lie in the vocabulary's 5-95 % range (any molecule where it has none)."""
        if self.vocabulary.heavy_atoms is None:
            return smiles is not None
        lo, hi = self.vocabulary.heavy_atoms
        n = heavy_atoms(smiles)
        return n is not None and lo <= n <= hi


#: a sampled SMILES string that is no molecule is drawn again at its latent point up to this many times
REDRAW_ROUNDS = 10


def _redraw_invalid(decoder, condition, smiles: list[str | None], vocabulary, first, temperature: float,
                    counts: list[int]) -> list[str | None]:
    """Sampled ``smiles`` (m) at ``condition`` (m, C): the rows that are no molecule drawn again (same temperature)
    until each is one or ``REDRAW_ROUNDS`` draws are spent; ``counts`` gets [first-draw failures, rows left]."""
    smiles = list(smiles)
    missing = [i for i, s in enumerate(smiles) if s is None]
    counts[0] += len(missing)
    for _ in range(REDRAW_ROUNDS):
        if not missing:
            break
        tokens = decoder.generate(condition[missing], temperature=temperature, first_allowed=first)
        for i, s in zip(missing, vocabulary.decode(tokens.cpu().numpy())):
            smiles[i] = s
        missing = [i for i in missing if smiles[i] is None]
    counts[1] += len(missing)
    return smiles


def heavy_atoms(smiles: str | None) -> int | None:
    """RDKit heavy-atom count of a SMILES (None where it does not parse)."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles) if smiles else None
    return mol.GetNumHeavyAtoms() if mol is not None else None


def _hold_to_size_range(ranked: RankedSamples, condition, smiles: list[str | None], counts: list[int],
                        replaced: set[int] | None = None, offset: int = 0) -> list[str | None]:
    """Greedy decodes ``smiles`` (m) at ``condition`` (m, C): those outside the size range replaced as
    :func:`generate_smiles` says; ``counts`` gets [outside, replaced] added, ``replaced`` the replaced rows
    (their index + ``offset``)."""
    outside = [i for i, s in enumerate(smiles) if not ranked.in_range(s)]
    smiles = list(smiles)
    counts[0] += len(outside)
    for i in outside:
        fit = ranked.best(condition[i], ranked.in_range)
        if fit is None and smiles[i] is None:  # no molecule at all: the most likely sample that is one
            fit = ranked.best(condition[i], lambda s: True)
        if fit is not None:
            smiles[i] = fit
            counts[1] += 1
            if replaced is not None:
                replaced.add(i + offset)
    return smiles


def _make_distinct(ranked: RankedSamples, condition_of, smiles: list[str | None], counts: list[int],
                   replaced: set[int] = frozenset()) -> list[str | None]:
    """Greedy decodes ``smiles`` (m), in order, the rows still holding their own greedy decode first (``replaced``:
    those the size guard replaced by a sample): a molecule an earlier row already has replaced by the most likely
    sample at its own point (``condition_of(i)``, (C,)) that is new to the set and inside the size range (else
    the repeat stays); ``counts`` gets [repeats, replaced] added."""
    smiles, seen = list(smiles), set()
    for i in sorted(range(len(smiles)), key=lambda i: (i in replaced, i)):
        s = smiles[i]
        if s is not None and s in seen:
            counts[0] += 1
            new = ranked.best(condition_of(i), lambda c: c not in seen and ranked.in_range(c))
            if new is not None:
                smiles[i] = new
                counts[1] += 1
        if smiles[i] is not None:
            seen.add(smiles[i])
    return smiles


def repredict(model, smiles: list[str | None]) -> pd.DataFrame:
    """Each decoded molecule embedded again and its side values predicted: columns ``repred_<side>`` (m rows; NaN
    where no molecule was decoded or the featuriser rejects it). Empty columns for a model without side values."""
    names = model.prep.side_names
    out = pd.DataFrame({f"repred_{n}": np.full(len(smiles), np.nan) for n in names})
    keep = [i for i, s in enumerate(smiles) if isinstance(s, str) and s]
    if not names or not keep:
        return out
    # no distribution-shift warning: new molecules may well lie off the training data, and the re-prediction
    # says what the model makes of them
    table = model.embed(pd.DataFrame({"id": [str(i) for i in keep], "smiles": [smiles[i] for i in keep]}),
                        shift_check=False)
    where = table[table.columns[0]].astype(int).to_numpy()
    for n in names:
        out.loc[where, f"repred_{n}"] = table[f"pred_{n}"].to_numpy()
    return out


def parse_targets(model, target) -> dict[str, float]:
    """``--target SIDE=VALUE`` strings (or a dict) -> {side: value}, checked against the model's side columns."""
    from archetool.errors import ArchetoolError

    items = target.items() if isinstance(target, dict) else [t.split("=", 1) if "=" in t else (t, None) for t in target]
    names = model.prep.side_names
    out = {}
    for key, value in items:
        key = str(key).strip()
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ArchetoolError(f"--target {key}={value if value is not None else ''}: give SIDE=NUMBER, e.g. "
                                 f"{names[0] if names else 'logp'}=3.5") from None
        if not np.isfinite(number):
            raise ArchetoolError(f"--target {key}={value}: the value must be a finite number")
        if key not in names:
            have = ", ".join(names) if names else "none: it was fitted without --side"
            raise ArchetoolError(f"--target {key}: not a side variable of this model (its side variables: {have})")
        out[key] = number
    if not out:
        raise ArchetoolError("--target: give at least one SIDE=VALUE")
    return out


def target_distance(model, values: np.ndarray, target: dict[str, float]) -> np.ndarray:
    """Distance of predicted side values (m, s) in original units (columns: model.prep.side_names) to the target:
    |value - target| in the side's units for one target; for several, the Euclidean distance in standard
    deviations of the training values. NaN rows stay NaN."""
    names = model.prep.side_names
    cols = [names.index(k) for k in target]
    goal = np.asarray(list(target.values()))
    diff = values[:, cols] - goal
    if len(cols) == 1:
        return np.abs(diff[:, 0])
    return np.sqrt(((diff / np.asarray(model.prep.side_std)[cols]) ** 2).sum(1))


def check_reachable(model, pred: np.ndarray, target: dict[str, float], where: str) -> None:
    """One clear line when a target lies outside the range of side values the model predicts over ``pred`` (m, s)."""
    from archetool.errors import ArchetoolError

    names = model.prep.side_names
    for key, value in target.items():
        col = pred[:, names.index(key)]
        lo, hi = float(np.nanmin(col)), float(np.nanmax(col))
        if not lo <= value <= hi:
            raise ArchetoolError(f"--target {key}={value:g} is out of reach: the model predicts {key} between {lo:.4g} "
                                 f"and {hi:.4g} over {where}; choose a target in that range")


def _fingerprints(smiles: list[str | None]) -> list:
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdFingerprintGenerator

    RDLogger.DisableLog("rdApp.*")
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=FP_RADIUS, fpSize=FP_BITS)
    fps = []
    for s in smiles:
        mol = Chem.MolFromSmiles(s) if s else None
        fps.append(generator.GetFingerprint(mol) if mol is not None else None)
    return fps


class Reference:
    """The molecules generated ones are compared with: ids (n,), canonical SMILES (n), fingerprints.

    By default the model's training molecules (the rows ``fit`` kept: without the rows it rejected, with its
    validation rows); ``--reference FILE`` (:meth:`read`) names a larger set, e.g. a whole database, so that
    ``novel`` means new to that set.
    """

    def __init__(self, ids: np.ndarray, smiles: list[str]):
        from archetool.data.tokens import canonical_smiles

        canonical = [canonical_smiles(str(s)) for s in smiles]
        keep = [i for i, c in enumerate(canonical) if c is not None]
        self.ids = np.asarray(ids, dtype=object)[keep]
        self.smiles = [canonical[i] for i in keep]
        self.known = set(self.smiles)
        self.fps = _fingerprints(self.smiles)

    @classmethod
    def of(cls, model, rows: pd.DataFrame | None) -> "Reference | None":
        """The set ``model.sample(reference=...)`` names, else the model's training molecules (else ``rows``'),
        or None when neither holds SMILES."""
        if getattr(model, "reference_set", None) is not None:
            return model.reference_set
        table = model.training_rows
        if table is not None and "smiles" in table.columns:
            cached = getattr(model, "_generation_reference", None)
            if cached is None or cached[0] is not table:  # built once per model
                cached = (table, cls(table[id_column(model)].astype(str).to_numpy(), table["smiles"].astype(str).tolist()))
                model._generation_reference = cached
            return cached[1]
        if rows is not None and "smiles" in rows.columns:
            return cls(rows[id_column(model)].astype(str).to_numpy(), rows["smiles"].astype(str).tolist())
        return None

    @classmethod
    def read(cls, path) -> "Reference":
        """A reference set from a file: SMILES one a line (``.smi``, an optional second field is the id, a first
        line naming a smiles column is a header) or a CSV/TSV with a column named smiles/SMILES/canonical_smiles."""
        import os

        from archetool.data.readers.table import SMILES_COLUMNS, pick_column
        from archetool.errors import InputError

        path = Path(path)
        if not path.is_file():
            raise InputError(f"--reference {path}: no such file; give a SMILES file (.smi) or a CSV with a smiles column")
        suffixes = "".join(path.suffixes).lower()
        try:
            if ".csv" in suffixes or ".tsv" in suffixes:
                frame = pd.read_csv(path, sep="\t" if ".tsv" in suffixes else ",", dtype=str)
                column = pick_column(list(frame.columns), None, SMILES_COLUMNS, path, "SMILES")
                if column is None:
                    raise InputError(f"--reference {path}: no SMILES column (looked for {', '.join(SMILES_COLUMNS)}); "
                                     "name it smiles")
                smiles = frame[column].fillna("").tolist()
            else:
                lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
                if lines and lines[0][0].lower() in {c.lower() for c in SMILES_COLUMNS}:
                    lines = lines[1:]
                smiles = [ln[0] for ln in lines]
        except (UnicodeDecodeError, pd.errors.ParserError) as err:
            raise InputError(f"--reference {path}: cannot be read as SMILES ({str(err).splitlines()[0]}); give a "
                             "SMILES file (.smi) or a CSV with a smiles column") from None
        if not smiles:
            raise InputError(f"--reference {path}: holds no molecules")
        reference = cls(np.asarray([f"{os.path.basename(path)}:{i + 1}" for i in range(len(smiles))]), smiles)
        if not reference.smiles:
            raise InputError(f"--reference {path}: none of its {len(smiles)} SMILES could be parsed by RDKit")
        return reference

    def nearest(self, smiles: list[str | None]) -> tuple[list, list, np.ndarray]:
        """For each molecule: (id, SMILES, Tanimoto similarity) of the most similar reference molecule."""
        from rdkit import DataStructs

        ids, best_smiles, sims = [], [], np.full(len(smiles), np.nan)
        for i, fp in enumerate(_fingerprints(smiles)):
            if fp is None or not self.fps:
                ids.append(None)
                best_smiles.append(None)
                continue
            values = np.asarray(DataStructs.BulkTanimotoSimilarity(fp, self.fps))
            j = int(values.argmax())
            ids.append(self.ids[j])
            best_smiles.append(self.smiles[j])
            sims[i] = values[j]
        return ids, best_smiles, sims


def molecule_columns(smiles: list[str | None], reference: Reference | None, full: bool) -> pd.DataFrame:
    """``smiles`` (m) -> columns smiles, novel (and with ``full``: most_similar_id, most_similar_smiles, tanimoto).

    ``novel``: the canonical SMILES is not among the reference set's (the training molecules unless
    ``--reference`` names another set); empty where no molecule was decoded."""
    cols: dict = {"smiles": smiles}
    if reference is not None:
        cols["novel"] = [None if s is None else s not in reference.known for s in smiles]
        if full:
            ids, near, sims = reference.nearest(smiles)
            cols.update({"most_similar_id": ids, "most_similar_smiles": near, "tanimoto": sims})
    return pd.DataFrame(cols)


def internal_diversity(smiles: list[str]) -> float:
    """Mean pairwise Tanimoto distance (1 - similarity) of Morgan fingerprints over distinct pairs; NaN below 2."""
    from rdkit import DataStructs

    fps = [f for f in _fingerprints(smiles) if f is not None]
    if len(fps) < 2:
        return float("nan")
    total, pairs = 0.0, 0
    for i in range(1, len(fps)):
        sims = DataStructs.BulkTanimotoSimilarity(fps[i], fps[:i])
        total += float(np.sum(sims))
        pairs += i
    return 1.0 - total / pairs


def generation_metrics(smiles: list[str | None], reference: Reference | None) -> dict:
    """Standard metrics of a generated set (MOSES conventions):

    validity = valid / generated; uniqueness = distinct valid / valid; novelty = distinct valid not among the
    reference molecules (the training molecules unless ``--reference`` names a set) / distinct valid; internal_diversity over the distinct valid molecules; mean heavy atoms.
    """
    valid = [s for s in smiles if s]
    unique = sorted(set(valid))
    heavy = [heavy_atoms(s) for s in unique]
    out = {
        "generated": len(smiles),
        "valid": len(valid),
        "validity": len(valid) / len(smiles) if smiles else float("nan"),
        "uniqueness": len(unique) / len(valid) if valid else float("nan"),
        "novelty": (sum(s not in reference.known for s in unique) / len(unique)) if (unique and reference) else float("nan"),
        "internal_diversity": internal_diversity(unique),
        "mean_heavy_atoms": float(np.mean(heavy)) if heavy else float("nan"),
    }
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def metrics_line(metrics: dict) -> str:
    return ("generated %d molecules: validity %.3f, uniqueness %.3f, novelty %.3f, internal diversity %.3f, "
            "mean heavy atoms %.1f" % (metrics["generated"], metrics["validity"], metrics["uniqueness"],
                                       metrics["novelty"], metrics["internal_diversity"], metrics["mean_heavy_atoms"]))


def write_generated_picture(model, analysis, names: list[str], greedy: list[str | None], path: Path,
                            per_code: int = 5, seed: int = 0) -> Path:
    """``generated.png``: one row per archetype or class: the greedy molecule at its code, then ``per_code``
    distinct molecules sampled near it (deepaa: ``--archetype``; classes: ``--label``), each captioned with
    the side value predicted at its latent point ("pred") and the generated molecule's own re-predicted
    value ("repred": the molecule embedded again) (deepaa), or its class."""
    import torch

    from archetool.analysis import plots

    side = model.prep.side_names[0] if model.prep.side_names else None
    table_side = analysis.decode_table if side else None
    smiles, legends = [], []
    for j, name in enumerate(names):
        torch.manual_seed(seed + j)
        option = {"archetype": name} if model.kind == "deepaa" else {"label": name}
        drawn = analysis.sample(model, 4 * per_code, rows=model.training_rows, temperature=1.0, molecules="smiles", **option)
        picks, seen = [], {greedy[j]}
        for _, rec in drawn.iterrows():
            if rec["smiles"] and rec["smiles"] not in seen:
                seen.add(rec["smiles"])
                picks.append(rec)
            if len(picks) == per_code:
                break
        row_smiles = [greedy[j]] + [p["smiles"] for p in picks]
        row_legends = [f"{name} greedy"]
        if side and table_side is not None:  # RDKit's legend font has no "≈"
            pred = analysis.decode_table(model, analysis.codes(model)[j : j + 1])[f"pred_{side}"].iloc[0]
            repred = repredict(model, row_smiles)[f"repred_{side}"].to_numpy()
            row_legends[0] += f" pred {side}={pred:.3g} repred {repred[0]:.3g}"
            row_legends += [f"{name} pred {side}={p[f'pred_{side}']:.3g} repred {r:.3g}" for p, r in zip(picks, repred[1:])]
        else:
            row_legends += [f"{name} sample {i + 1}" for i in range(len(picks))]
        pad = per_code + 1 - len(row_smiles)
        smiles += row_smiles + [None] * pad
        legends += row_legends + [""] * pad
    return plots.molecule_grid(smiles, legends, path, per_code + 1)

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
            "--decoder selfies to generate molecules)")


def generate_smiles(model, latent: np.ndarray, labels: np.ndarray | None = None, temperature: float = 0.0,
                    batch_size: int = 2048) -> list[str | None]:
    """Latent points (m, d) [+ class ids (m,)] -> RDKit canonical SMILES (m) of decoded molecules.

    ``temperature`` 0: greedy decoding; > 0: tokens sampled at that temperature (torch's global RNG).
    """
    import torch

    from archetool.data.selfies_tokens import SelfiesVocabulary

    module = model.module
    vocabulary = SelfiesVocabulary.from_state(model.prep.sequence)
    out: list[str | None] = []
    latent = np.asarray(latent, np.float32)
    first = torch.from_numpy(vocabulary.atom_mask())
    with torch.no_grad():
        for start in range(0, len(latent), batch_size):
            z = torch.from_numpy(latent[start : start + batch_size]).to(model.device)
            lab = None if labels is None else torch.from_numpy(np.asarray(labels[start : start + batch_size], np.int64)).to(model.device)
            tokens = module.sequence_decoder.generate(module.condition(z, lab), temperature=float(temperature),
                                                      first_allowed=first)
            out.extend(vocabulary.decode(tokens.cpu().numpy()))
    return out


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
    """The training molecules generated ones are compared with: ids (n,), canonical SMILES (n), fingerprints."""

    def __init__(self, ids: np.ndarray, smiles: list[str]):
        from archetool.data.selfies_tokens import canonical_smiles

        canonical = [canonical_smiles(str(s)) for s in smiles]
        keep = [i for i, c in enumerate(canonical) if c is not None]
        self.ids = np.asarray(ids, dtype=object)[keep]
        self.smiles = [canonical[i] for i in keep]
        self.known = set(self.smiles)
        self.fps = _fingerprints(self.smiles)

    @classmethod
    def of(cls, model, rows: pd.DataFrame | None) -> "Reference | None":
        """The model's training molecules (else ``rows``'), or None when neither holds SMILES."""
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
    """``smiles`` (m) -> columns smiles, novel (and with ``full``: most_similar_id, most_similar_smiles, tanimoto)."""
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
    training molecules / distinct valid; internal_diversity over the distinct valid molecules; mean heavy atoms.
    """
    from rdkit import Chem

    valid = [s for s in smiles if s]
    unique = sorted(set(valid))
    heavy = [Chem.MolFromSmiles(s).GetNumHeavyAtoms() for s in unique]
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
    its predicted side value (deepaa) or class."""
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
            row_legends[0] += f" {side}={pred:.3g}"
            row_legends += [f"{name} {side}={p[f'pred_{side}']:.3g}" for p in picks]
        else:
            row_legends += [f"{name} sample {i + 1}" for i in range(len(picks))]
        pad = per_code + 1 - len(row_smiles)
        smiles += row_smiles + [None] * pad
        legends += row_legends + [""] * pad
    return plots.molecule_grid(smiles, legends, path, per_code + 1)

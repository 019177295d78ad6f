"""Featurisers: RawBatch -> (n, p) float32 matrix with fixed, named features.

Chosen by name from :data:`FEATURIZERS`. ``fit`` fixes the feature list on training data;
``state()`` is JSON-able and ``from_state`` rebuilds the featuriser so ``embed`` reproduces it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from archetool.data.source import RawBatch
from archetool.errors import InputError, preview


@dataclass
class Features:
    """Featurised rows: x (n_valid, p) float32; ``valid`` (n,) bool marks rows kept;
    ``rejects`` lists (row index within the batch, reason/value) of dropped rows."""

    x: np.ndarray
    valid: np.ndarray
    rejects: list[tuple[int, str]] = field(default_factory=list)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def float32_features(x: np.ndarray, path, batch: RawBatch, feature_names: list[str]) -> np.ndarray:
    """x (n, p) as float32; an InputError naming the row and feature of a finite value beyond float32's
    range (|v| > 3.4e38), which would silently become infinite."""
    if x.dtype == np.float32:
        return x
    with np.errstate(over="ignore", invalid="ignore"):
        out = x.astype(np.float32)
        if out.size and not np.isfinite(out.sum()):
            too_big = np.isinf(out) & np.isfinite(x)
            if too_big.any():
                row, col = (int(i[0]) for i in np.nonzero(too_big))
                raise InputError(f"{path}: the row with id {str(batch.ids[row])!r} holds {x[row, col]:.4g} in feature "
                                 f"{feature_names[col]!r}, too large for 32-bit floats (at most {FLOAT32_MAX:.3g} in size); "
                                 "rescale the column (e.g. log or other units) or correct the value")
    return out


class NumericFeaturizer:
    """Numeric table columns (minus id / side / label columns) as features; NaN -> training mean."""

    name = "numeric"
    likelihood = "gaussian"

    def __init__(self, feature_names: list[str] | None = None):
        self.feature_names = list(feature_names or [])

    def fit(self, batch: RawBatch, exclude: set[str], path) -> None:
        numeric = [c for c in batch.obs.columns if c not in exclude and pd.api.types.is_numeric_dtype(batch.obs[c])]
        if not numeric:
            raise InputError(
                f"{path}: no numeric feature columns left after removing id/side/label columns; "
                f"columns are: {preview(batch.obs.columns)}"
            )
        self.feature_names = [str(c) for c in numeric]

    def transform(self, batch: RawBatch, path) -> Features:
        missing = [c for c in self.feature_names if c not in batch.obs.columns]
        if missing:
            raise InputError(
                f"{path}: lacks {len(missing)} of the model's {len(self.feature_names)} feature columns "
                f"(e.g. {preview(missing, 5)}); provide the columns the model was fitted on"
            )
        block = batch.obs[self.feature_names]
        bad = [c for c in self.feature_names if not pd.api.types.is_numeric_dtype(block[c])]
        if bad:
            col = bad[0]
            values = pd.to_numeric(block[col], errors="coerce")
            row = int(np.flatnonzero(values.isna() & block[col].notna())[0]) + batch.row_offset + 1
            raise InputError(f"{path}: feature column {col!r} is not numeric (row {row} holds {block[col].iloc[row - 1 - batch.row_offset]!r})")
        x = float32_features(block.to_numpy(dtype=np.float64, na_value=np.nan), path, batch, self.feature_names)
        return Features(x=x, valid=np.ones(len(batch), bool))

    def state(self) -> dict:
        return {"name": self.name, "feature_names": self.feature_names}


class MorganFeaturizer:
    """Morgan fingerprints (RDKit ``rdFingerprintGenerator``), bits or counts, optionally + RDKit 2D descriptors.

    Invalid SMILES are not silently dropped: they come back in ``Features.rejects``.
    """

    name = "morgan"

    def __init__(self, radius: int = 2, n_bits: int = 2048, counts: bool = False, descriptors: bool = True,
                 feature_names: list[str] | None = None):
        self.radius, self.n_bits, self.counts, self.descriptors = int(radius), int(n_bits), bool(counts), bool(descriptors)
        self.feature_names = list(feature_names or self._names())

    @property
    def likelihood(self) -> str:
        """Bits: Bernoulli; counts: Gaussian; bits + descriptors: Bernoulli bits and Gaussian descriptors."""
        if self.counts:
            return "gaussian"
        return f"mixed:{self.n_bits}" if self.descriptors else "bernoulli"

    def _descriptor_list(self):
        from rdkit.Chem import Descriptors

        return [(n, f) for n, f in Descriptors.descList if not n.startswith(("Ipc", "BCUT", "fr_"))]

    def _names(self) -> list[str]:
        names = [f"morgan_{i}" for i in range(self.n_bits)]
        if self.descriptors:
            names += [f"rdkit_{n}" for n, _ in self._descriptor_list()]
        return names

    def fit(self, batch: RawBatch, exclude: set[str], path) -> None:
        self.feature_names = self._names()

    def transform(self, batch: RawBatch, path, smiles_column: str = "smiles") -> Features:
        from rdkit import Chem, RDLogger
        from rdkit.Chem import rdFingerprintGenerator

        RDLogger.DisableLog("rdApp.*")
        generator = rdFingerprintGenerator.GetMorganGenerator(radius=self.radius, fpSize=self.n_bits)
        descs = self._descriptor_list() if self.descriptors else []
        rows, valid, rejects = [], np.zeros(len(batch), bool), []
        for i, smi in enumerate(batch.obs[smiles_column].astype(str).tolist()):
            mol = Chem.MolFromSmiles(smi) if smi and smi != "nan" else None
            if mol is None:
                rejects.append((i, smi))
                continue
            fp = generator.GetCountFingerprintAsNumPy(mol) if self.counts else generator.GetFingerprintAsNumPy(mol)
            vec = fp.astype(np.float32)
            if self.counts:
                vec = np.log1p(vec)
            if descs:
                d = np.array([_safe(f, mol) for _, f in descs], dtype=np.float32)
                vec = np.concatenate([vec, d])
            rows.append(vec)
            valid[i] = True
        x = np.stack(rows) if rows else np.zeros((0, len(self.feature_names)), np.float32)
        return Features(x=x, valid=valid, rejects=rejects)

    def state(self) -> dict:
        return {"name": self.name, "radius": self.radius, "n_bits": self.n_bits, "counts": self.counts,
                "descriptors": self.descriptors, "feature_names": self.feature_names}


def _safe(fn, mol) -> float:
    try:
        value = float(fn(mol))
    except Exception:
        return np.nan
    return value if np.isfinite(value) and abs(value) < 1e8 else np.nan


class GeneFeaturizer:
    """Expression matrix columns, matched to the model's genes **by name** (any order, extra genes ignored)."""

    name = "genes"
    likelihood = "gaussian"

    def __init__(self, feature_names: list[str] | None = None):
        self.feature_names = list(feature_names or [])
        self._index_cache: tuple[tuple[str, ...], np.ndarray] | None = None

    def fit(self, batch: RawBatch, exclude: set[str], path) -> None:
        names = [str(g) for g in batch.feature_names]
        dupes = pd.Index(names)[pd.Index(names).duplicated()].unique()
        if len(dupes):
            raise InputError(f"{path}: gene names must be unique; duplicated: {preview(dupes, 5)}")
        self.feature_names = names

    def _column_index(self, names: list[str], path) -> np.ndarray:
        key = tuple(names)
        if self._index_cache is not None and self._index_cache[0] == key:
            return self._index_cache[1]
        position = {g: i for i, g in enumerate(names)}
        missing = [g for g in self.feature_names if g not in position]
        if missing:
            raise InputError(
                f"{path}: lacks {len(missing)} of the model's {len(self.feature_names)} genes "
                f"(e.g. {preview(missing, 5)}); genes are matched by name: use data with the same gene ids"
            )
        index = np.array([position[g] for g in self.feature_names], dtype=np.int64)
        self._index_cache = (key, index)
        return index

    def transform(self, batch: RawBatch, path) -> Features:
        import scipy.sparse as sp

        index = self._column_index([str(g) for g in batch.feature_names], path)
        block = batch.matrix[:, index]
        x = block.toarray() if sp.issparse(block) else np.asarray(block)
        return Features(x=float32_features(x, path, batch, self.feature_names), valid=np.ones(len(batch), bool))

    def state(self) -> dict:
        return {"name": self.name, "feature_names": self.feature_names}


FEATURIZERS = {"numeric": NumericFeaturizer, "morgan": MorganFeaturizer, "genes": GeneFeaturizer}


def featurizer_from_state(state: dict):
    state = dict(state)
    name = state.pop("name")
    if name not in FEATURIZERS:
        raise ValueError(f"unknown featuriser {name!r}")
    return FEATURIZERS[name](**state)


def default_featurizer(kind: str, **morgan_options):
    """The featuriser for a source kind: molecules -> morgan, expression -> genes, table -> numeric."""
    if kind == "molecules":
        return MorganFeaturizer(**morgan_options)
    if kind == "expression":
        return GeneFeaturizer()
    return NumericFeaturizer()

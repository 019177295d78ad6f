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


class NamedColumns:
    """Gathers a model's features from a batch **by name**, whatever the file type: the columns of the
    expression matrix (genes of an .h5ad / .gctx / .gct) first, then numeric per-row columns (table
    columns, h5ad obs). So a model fitted on a table of gene columns embeds an .h5ad with those genes,
    and the reverse.

    Features found nowhere are missing: an InputError listing them, unless ``allow_missing`` (set by
    ``embed --allow-missing-features``); then they come back as NaN, which scaling turns into the
    training mean, and :attr:`missing` names them.
    """

    feature_names: list[str]
    allow_missing = False
    #: what the features are called in messages
    noun = "features"

    def _init_lookup(self) -> None:
        self.missing: list[str] = []
        self._plan_cache: tuple[tuple, tuple] | None = None

    def _plan(self, batch: RawBatch, path):
        """(matrix positions, positions in the model, obs columns, positions in the model, missing) for the
        batch's columns; cached while the batch layout stays the same (every chunk of one file)."""
        genes = tuple(str(g) for g in batch.feature_names) if batch.matrix is not None and batch.feature_names is not None else ()
        key = (genes, tuple(str(c) for c in batch.obs.columns))
        if getattr(self, "_plan_cache", None) is not None and self._plan_cache[0] == key:
            return self._plan_cache[1]
        in_matrix = {g: i for i, g in enumerate(genes)}
        in_obs = {str(c): c for c in batch.obs.columns}
        from_matrix, matrix_to, from_obs, obs_to, missing = [], [], [], [], []
        for j, name in enumerate(self.feature_names):
            if name in in_matrix:
                from_matrix.append(in_matrix[name])
                matrix_to.append(j)
            elif name in in_obs:
                from_obs.append(in_obs[name])
                obs_to.append(j)
            else:
                missing.append(name)
        if missing and len(missing) == len(self.feature_names):
            raise InputError(f"{path}: has none of the model's {len(self.feature_names)} {self.noun} "
                             f"({preview(missing, 5)}); features are matched by name (table columns, gene ids of "
                             ".h5ad/.gctx/.gct): use data with the model's features")
        if missing and not self.allow_missing:
            raise InputError(f"{path}: lacks {len(missing)} of the model's {len(self.feature_names)} {self.noun} "
                             f"(missing: {preview(missing, 5)}); features are matched by name; pass "
                             "--allow-missing-features to fill them with the training mean")
        plan = (np.array(from_matrix, np.int64), np.array(matrix_to, np.int64), from_obs, np.array(obs_to, np.int64), missing)
        self._plan_cache = (key, plan)
        self.missing = missing
        return plan

    def gather(self, batch: RawBatch, path) -> np.ndarray:
        """The (n, p) float32 feature matrix of ``batch`` in the model's feature order (NaN where missing)."""
        import scipy.sparse as sp

        from_matrix, matrix_to, from_obs, obs_to, missing = self._plan(batch, path)
        n, p = len(batch), len(self.feature_names)
        if len(from_matrix) == p and np.array_equal(matrix_to, np.arange(p)):  # every feature a matrix column
            block = batch.matrix[:, from_matrix]
            x = block.toarray() if sp.issparse(block) else np.asarray(block)
            return x.astype(np.float32, copy=False)
        x = np.full((n, p), np.nan, np.float32)
        if len(from_matrix):
            block = batch.matrix[:, from_matrix]
            x[:, matrix_to] = block.toarray() if sp.issparse(block) else np.asarray(block)
        if from_obs:
            x[:, obs_to] = self._numeric_obs(batch, from_obs, path)
        return x

    @staticmethod
    def _numeric_obs(batch: RawBatch, columns: list, path) -> np.ndarray:
        block = batch.obs[columns]
        bad = [c for c in columns if not pd.api.types.is_numeric_dtype(block[c]) and not pd.api.types.is_bool_dtype(block[c])]
        if bad:
            col = bad[0]
            values = pd.to_numeric(block[col], errors="coerce")
            wrong = np.flatnonzero(values.isna().to_numpy() & block[col].notna().to_numpy())
            if len(wrong):
                row = int(wrong[0])
                raise InputError(f"{path}: feature column {col!r} is not numeric (row {row + batch.row_offset + 1} "
                                 f"holds {block[col].iloc[row]!r})")
            block = block.assign(**{str(col): values for col in bad})
        return block.to_numpy(dtype=np.float32, na_value=np.nan)


class NumericFeaturizer(NamedColumns):
    """Numeric table columns (minus id / side / label columns) as features; NaN -> training mean."""

    name = "numeric"
    likelihood = "gaussian"

    def __init__(self, feature_names: list[str] | None = None):
        self.feature_names = list(feature_names or [])
        self._init_lookup()

    def fit(self, batch: RawBatch, exclude: set[str], path) -> None:
        numeric = [c for c in batch.obs.columns if c not in exclude and pd.api.types.is_numeric_dtype(batch.obs[c])]
        if not numeric:
            raise InputError(
                f"{path}: no numeric feature columns left after removing id/side/label columns; "
                f"columns are: {preview(batch.obs.columns)}"
            )
        self.feature_names = [str(c) for c in numeric]

    def transform(self, batch: RawBatch, path) -> Features:
        """Columns by name (see :class:`NamedColumns`): table columns, or the genes of an expression file."""
        if batch.matrix is None and not self.allow_missing and all(c in batch.obs.columns for c in self.feature_names):
            x = self._numeric_obs(batch, self.feature_names, path)  # the usual case: a table like the training one
        else:
            x = self.gather(batch, path)
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


class GeneFeaturizer(NamedColumns):
    """Expression matrix columns, matched to the model's genes **by name** (any order, extra genes ignored);
    a table with gene-named columns works too (see :class:`NamedColumns`)."""

    name = "genes"
    likelihood = "gaussian"
    noun = "genes"

    def __init__(self, feature_names: list[str] | None = None):
        self.feature_names = list(feature_names or [])
        self._init_lookup()

    def fit(self, batch: RawBatch, exclude: set[str], path) -> None:
        names = [str(g) for g in batch.feature_names]
        dupes = pd.Index(names)[pd.Index(names).duplicated()].unique()
        if len(dupes):
            raise InputError(f"{path}: gene names must be unique; duplicated: {preview(dupes, 5)}")
        self.feature_names = names

    def transform(self, batch: RawBatch, path) -> Features:
        return Features(x=self.gather(batch, path), valid=np.ones(len(batch), bool))

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

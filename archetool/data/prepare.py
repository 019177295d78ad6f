"""From an input file to model-ready arrays, and the preprocessing state saved with the model.

``load_training_data`` validates side/label columns (clear one-line errors), featurises, fits the
scalers and returns a :class:`Dataset` plus the :class:`Preprocessing` that ``embed`` re-applies.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from archetool.data.featurizers import Features, default_featurizer, featurizer_from_state
from archetool.data.readers import open_source
from archetool.data.source import RawBatch, ReadOptions
from archetool.errors import InputError, preview

log = logging.getLogger("archetool")


@dataclass
class Preprocessing:
    """Everything needed to turn a new file into model inputs exactly as at fit time (JSON-able).

    featurizer: featuriser state (name, feature names, fingerprint settings)
    x_mean, x_std: (p,) standardisation of features (None for Bernoulli fingerprints)
    side_names, side_mean, side_std: side columns and their standardisation (original units)
    label_column, classes: class column and the class names, index = model class id
    x_transform: "log1p" for count data (negative-binomial likelihood): the model reads log1p(counts),
                 not standardised (x_mean None), and the likelihood recovers the counts with expm1
    sequence: the molecule sequence decoder's vocabulary (``SelfiesVocabulary.state()``), or None
    """

    source_kind: str
    featurizer: dict
    likelihood: str
    x_mean: list[float] | None = None
    x_std: list[float] | None = None
    side_names: list[str] = field(default_factory=list)
    side_mean: list[float] = field(default_factory=list)
    side_std: list[float] = field(default_factory=list)
    label_column: str | None = None
    classes: list[str] = field(default_factory=list)
    id_column: str | None = None
    smiles_column: str | None = None
    layer: str | None = None
    x_transform: str | None = None
    sequence: dict | None = None
    #: training reference figures for embed's distribution-shift check (archetool.shift); {} in older models
    reference: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        return cls(**d)

    @property
    def feature_names(self) -> list[str]:
        return list(self.featurizer["feature_names"])

    def make_featurizer(self):
        return featurizer_from_state(self.featurizer)

    def scale_x(self, x: np.ndarray, inplace: bool = False) -> np.ndarray:
        """Original feature units -> model space; NaN becomes the training mean (0 after scaling).

        ``inplace``: overwrite ``x`` when it is a writeable C-ordered float32 array (streaming ``embed``
        reuses the chunk it just read instead of allocating two more of its size); same values either way.
        """
        x = np.asarray(x)
        own = inplace and x.dtype == np.float32 and x.flags.writeable and x.flags.c_contiguous
        if self.x_transform == "log1p":  # counts: log1p(counts) in float32 (check_counts refused negatives)
            x = np.log1p(x, out=x) if own else np.log1p(np.asarray(x, dtype=np.float32))
            own = True
        if self.x_mean is not None:
            out = x if own else np.empty(x.shape, np.result_type(x.dtype, np.float32))
            mean, std = np.asarray(self.x_mean, np.float32), np.asarray(self.x_std, np.float32)
            # row blocks of ~4 MB: both passes run on cache-resident data (same values as whole-array ops)
            step = max(1, (1 << 20) // max(x.shape[-1], 1)) if x.ndim == 2 else max(len(x), 1)
            with np.errstate(over="ignore"):  # a value beyond float32 range after scaling: inf, as in torch
                for start in range(0, len(x), step):
                    block = out[start : start + step]
                    np.subtract(x[start : start + step], mean, out=block)
                    np.divide(block, std, out=block)
            return _nonfinite_to_num(out).astype(np.float32, copy=False)
        if own:
            return _nonfinite_to_num(x)
        return np.nan_to_num(x, nan=0.0).astype(np.float32, copy=False)

    def unscale_x(self, x: np.ndarray) -> np.ndarray:
        """Model space -> original feature units (probabilities for Bernoulli fingerprints, counts for nb)."""
        if self.x_transform == "log1p":
            return np.expm1(x)
        if self.x_mean is None:
            return x
        return x * np.asarray(self.x_std, np.float32) + np.asarray(self.x_mean, np.float32)

    def scale_side(self, y: np.ndarray) -> np.ndarray:
        return ((y - np.asarray(self.side_mean)) / np.asarray(self.side_std)).astype(np.float32)

    def unscale_side(self, y: np.ndarray) -> np.ndarray:
        return y * np.asarray(self.side_std) + np.asarray(self.side_mean)


def _nonfinite_to_num(x: np.ndarray) -> np.ndarray:
    """``np.nan_to_num(x, nan=0.0)`` in place; a single summing pass when every value is finite (the usual case)."""
    with np.errstate(over="ignore", invalid="ignore"):  # a finite sum that overflows just means "check"
        finite = x.size == 0 or bool(np.isfinite(x.sum()))
    if not finite:
        np.nan_to_num(x, nan=0.0, copy=False)
    return x


def infinite_value_error(path, ids: np.ndarray, feature_names: list[str], row: int, col: int) -> InputError:
    """The one-line error for an infinite feature value at (row, col) of a chunk."""
    return InputError(f"{path}: the row with id {str(ids[row])!r} holds an infinite value in feature {feature_names[col]!r}; "
                      "replace it with a number, or leave it empty to have it filled with the column mean")


def check_finite_features(x: np.ndarray, path, ids: np.ndarray, feature_names: list[str]) -> None:
    """Raise :func:`infinite_value_error` for the first +-inf in x (n, p); NaN is allowed (missing).

    One summing pass when every value is finite, the usual case.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if x.size == 0 or np.isfinite(x.sum()):
            return
    bad = np.isinf(x)
    if bad.any():
        row, col = (int(i[0]) for i in np.nonzero(bad))
        raise infinite_value_error(path, ids, feature_names, row, col)


def check_counts(x: np.ndarray, path, ids: np.ndarray, feature_names: list[str], fitting: bool = True) -> None:
    """The negative-binomial likelihood models counts: refuse negative values (one line naming the first)."""
    with np.errstate(invalid="ignore"):
        if x.size == 0 or not np.nanmin(x) < 0:
            return
    row, col = (int(i[0]) for i in np.nonzero(x < 0))
    fix = ("pass raw counts (e.g. layer/--layer counts), or use --likelihood gaussian for normalised or scaled data"
           if fitting else "the model (--likelihood nb) needs raw counts like those it was fitted on")
    raise InputError(f"{path}: --likelihood nb needs non-negative counts, but the row with id {str(ids[row])!r} holds "
                     f"{float(x[row, col]):.4g} in feature {feature_names[col]!r}; {fix}")


def _looks_like_counts(x: np.ndarray) -> bool:
    """Non-negative whole numbers, not all 0/1 (raw counts rather than normalised, scaled or binary data)."""
    sample = x[: min(len(x), 2000)]
    finite = sample[np.isfinite(sample)]
    return bool(finite.size and finite.min() >= 0 and finite.max() > 1 and np.all(finite == np.round(finite)))


#: a value is a gross outlier, left out of the mean and standard deviation used for scaling (it stays in the
#: data), when it lies more than OUTLIER_SDS robust standard deviations from its feature's median AND the
#: feature's values that far out inflate its SD more than SQUEEZE-fold (so they would squeeze all the
#: others together) AND they are few: at most GROSS_COUNT values or a GROSS_FRACTION of the column (more
#: are a part of the data, e.g. a cluster of real values among rounding residues); beyond WARN_SDS
#: robust SDs a warning names the values left out
OUTLIER_SDS, SQUEEZE, GROSS_COUNT, GROSS_FRACTION, WARN_SDS = 1e3, 1e2, 3, 1e-3, 1e6


def robust_spread(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of x (n, p) float: (median, robust standard deviation), NaN ignored.

    The robust SD is IQR / 1.349 (the SD for normal data). Where that is 0 -- most of the column holds one
    value, as in sparse pixels, rare genes or binary columns -- it is the median absolute deviation from
    the median of the values that differ from it, x 1.4826: the rare values themselves set the scale, so
    they are never "far" merely because most of the column is zero. 0 for a constant column.
    """
    x = np.asarray(x, np.float64)
    with warnings.catch_warnings(), np.errstate(all="ignore"):  # all-NaN columns: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        pct = np.nanpercentile if np.isnan(x).any() else np.percentile
        q25, median, q75 = pct(x, [25, 50, 75], axis=0) if len(x) else np.full((3, x.shape[1]), np.nan)
        spread = (q75 - q25) / 1.349
        flat = np.flatnonzero(~(spread > 0) & np.isfinite(median))
        if len(flat):
            dev = np.abs(x[:, flat] - median[flat])
            dev[~(dev > 0)] = np.nan  # the median's own value (and NaN) carry no spread
            spread[flat] = np.nanmedian(dev, axis=0) * 1.4826  # all-NaN (constant column): NaN -> 0
    return median, np.nan_to_num(spread, nan=0.0)


def robust_standardisation(x: np.ndarray, n_binary: int, path, ids: np.ndarray, feature_names: list[str],
                           block_bytes: int = 64 << 20, sample_rows: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per column of x (n, p) for standardising it, robust to gross outliers.

    Columns ``:n_binary`` get (0, 1). Elsewhere the plain mean and SD of each column, NaN ignored, except
    that gross outliers are left out of them: values more than :data:`OUTLIER_SDS` robust SDs
    (:func:`robust_spread`, estimated on at most ``sample_rows`` rows: a threshold this wide needs no
    precision) from the median, few (:data:`GROSS_COUNT`, :data:`GROSS_FRACTION`), that make the SD more
    than :data:`SQUEEZE` times that of the column's other values. So one wild value (1e30, a unit error)
    cannot squeeze all the others of its feature onto one point, while sparse columns (mostly one value,
    rare values of ordinary size) and heavy tails keep the plain mean and SD, and their standardised values
    stay within sqrt(n) of 0. Without gross outliers (the usual case) the result is the plain one, bit for
    bit. Gross values beyond :data:`WARN_SDS` robust SDs are reported in one warning line. An SD of ~0
    (constant column) or an all-NaN column gives (mean or 0, 1).
    """
    n, p = x.shape
    sample = x if n <= sample_rows else x[np.sort(np.random.default_rng(0).choice(n, sample_rows, replace=False))]
    median, spread = np.zeros(p), np.full(p, np.inf)
    step = max(1, block_bytes // (8 * max(len(sample), 1)))
    for start in range(n_binary, p, step):  # column blocks: float64 copies stay small
        median[start : start + step], spread[start : start + step] = robust_spread(sample[:, start : start + step])
    spread = np.where(spread > 0, spread, np.inf)  # no robust spread: nothing is "far"
    with np.errstate(over="ignore", invalid="ignore"):
        hi = (median + OUTLIER_SDS * spread).astype(x.dtype)  # NaN compares False: missing values never count
        lo = (median - OUTLIER_SDS * spread).astype(x.dtype)
    far = np.zeros(p, bool)
    rows = max(1, (8 << 20) // max(4 * p, 1))  # row blocks of ~8 MB, compared in reused buffers
    buf = np.empty((min(rows, n), p), bool)
    for start in range(0, n, rows):
        block, out = x[start : start + rows], buf[: min(rows, n - start)]
        far |= np.greater(block, hi, out=out).any(0)
        far |= np.less(block, lo, out=out).any(0)
    with np.errstate(all="ignore"), warnings.catch_warnings():  # all-NaN columns: mean 0, std 1
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nan_to_num(np.nanmean(x, axis=0)) if len(x) else np.zeros(p)
        std = np.nanstd(x, axis=0)
        examples, n_far = [], 0
        for j in np.flatnonzero(far):  # the few columns with far values, in float64
            column = np.asarray(x[:, j], np.float64)
            sds = np.abs(column - median[j]) / spread[j]
            gross = sds > OUTLIER_SDS
            kept = np.where(gross, np.nan, column)
            rest, whole = np.nanstd(kept), np.nanstd(column)
            few = gross.sum() <= max(GROSS_COUNT, GROSS_FRACTION * np.isfinite(column).sum())
            if not (few and rest > 0 and whole > SQUEEZE * rest):  # part of the data, or they do not dwarf
                if not (np.isfinite(mean[j]) and np.isfinite(std[j])):  # the others (or the others are all
                    mean[j], std[j] = np.nanmean(column), whole  # alike): plain SD, in float64 where float32
                continue  # overflowed
            mean[j], std[j] = np.nanmean(kept), rest
            for row in np.flatnonzero(np.nan_to_num(sds, nan=0.0) > WARN_SDS):
                n_far += 1
                if len(examples) < 3:
                    examples.append(f"feature {feature_names[j]!r} at row {str(ids[row])!r}: {float(x[row, j]):.4g} "
                                    f"({sds[row]:.2g} robust SDs from the median {median[j]:.4g})")
    if n_far:
        log.warning("%s: %d value%s more than %.0e robust standard deviations from %s feature's median, e.g. %s; "
                    "the scaling ignores them, but the model sees them: correct or remove them if they are errors",
                    path, n_far, "s lie" if n_far > 1 else " lies", WARN_SDS, "their" if n_far > 1 else "its", "; ".join(examples))
    std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
    mean[:n_binary], std[:n_binary] = 0.0, 1.0
    return mean, std


@dataclass
class Dataset:
    """Model-ready rows (all aligned, n = rows kept).

    ids (n,) str; x (n, p) float32 in model space; side (n, s) standardised or None;
    label (n,) int64 class ids or None; smiles (n,) str or None; side_raw (n, s) original units;
    rejects: DataFrame(row, id, smiles, reason) of invalid molecules (row is the 1-based data row);
    tokens (n, L) int64: SELFIES token ids (molecules with the sequence decoder) or None;
    left_out: text columns of a table that are not features.
    """

    ids: np.ndarray
    x: np.ndarray
    side: np.ndarray | None = None
    side_raw: np.ndarray | None = None
    label: np.ndarray | None = None
    smiles: np.ndarray | None = None
    obs: pd.DataFrame | None = None
    rejects: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["row", "id", "smiles", "reason"]))
    tokens: np.ndarray | None = None
    #: text columns of a table that are not features (not id, side, label or SMILES)
    left_out: list[str] = field(default_factory=list)


def attach_labels(batch: RawBatch, labels_file: Path, label_column: str | None) -> str:
    """Join a side table (id column + class column) onto ``batch.obs`` by row id; returns the label column name."""
    source = open_source(labels_file)
    table = source.read().obs
    if table.shape[1] < 2:
        raise InputError(f"{labels_file}: a labels table needs an id column and a class column")
    id_col = table.columns[0]
    column = label_column or table.columns[1]
    if column not in table.columns:
        raise InputError(f"{labels_file}: label column {column!r} not found; columns are: {preview(table.columns)}")
    mapping = dict(zip(table[id_col].astype(str), table[column]))
    if not any(i in mapping for i in batch.ids):
        data_ids = preview([repr(str(i)) for i in batch.ids[:3]], 3, total=len(batch.ids))
        label_ids = preview([repr(k) for k in list(mapping)[:3]], 3, total=len(mapping))
        raise InputError(f"{labels_file}: none of its ids (first column {str(id_col)!r}: {label_ids}) matches a row id "
                         f"of the data ({data_ids}); the first column of --labels must hold the data's row ids "
                         "(the id column, else 0-based row numbers)")
    batch.obs[column] = [mapping.get(i, np.nan) for i in batch.ids]
    return column


def _missing_rows(path, what: str, noun: str, missing: np.ndarray, drop_missing: bool) -> np.ndarray:
    """``missing`` (n,) bool, unchanged; an InputError unless ``drop_missing`` (then a warning)."""
    if missing.any():
        count, first = int(missing.sum()), int(np.flatnonzero(missing)[0]) + 1
        if not drop_missing:
            raise InputError(f"{path}: {what} has {count} missing {noun} (first at data row {first}); "
                             "fill them, or pass --drop-missing to drop those rows")
        log.warning("%s: dropping %d rows with missing %s in %s (--drop-missing)", path, count, noun, what)
    return missing


def rejects_table(batch: RawBatch, rejects: list[tuple[int, str]], reasons: list[str] | None = None) -> pd.DataFrame:
    """Invalid molecules of a chunk: 1-based data row, id, SMILES, reason (default: RDKit cannot parse it)."""
    return pd.DataFrame({"row": np.array([batch.row_offset + i + 1 for i, _ in rejects], dtype=np.int64),
                         "id": [batch.ids[i] for i, _ in rejects],
                         "smiles": [smi for _, smi in rejects],
                         "reason": reasons if reasons is not None else ["RDKit cannot parse the SMILES"] * len(rejects)})


def _check_column(path, columns, name: str, what: str, flag: str) -> None:
    if name not in columns:
        raise InputError(f"{path}: {what} column {name!r} not found; columns are: {preview(columns)} (use {flag} with one of them)")


def load_training_data(
    path: str | Path,
    side: list[str] | None = None,
    label: str | None = None,
    labels_file: str | Path | None = None,
    drop_missing: bool = False,
    read_options: ReadOptions | None = None,
    featurizer_options: dict | None = None,
    likelihood: str | None = None,
    min_class_size: int = 2,
    strict_classes: bool = False,
    decoder: str | None = None,
    max_tokens: int | None = None,
) -> tuple[Dataset, Preprocessing]:
    """Read, validate and featurise a training file (or in-memory data, see ``open_source``).
    Raises InputError with one line on bad input.

    ``decoder``: the molecule sequence decoder's alphabet, "smiles" or "selfies" (see
    :mod:`archetool.data.tokens`), or "none"; None: :func:`default_alphabet` for molecule inputs, "none"
    otherwise. ``max_tokens``: the decoder's longest molecule in tokens (None: the 99.5th percentile of the
    data's); longer ones are left out of its loss (logged).
    """
    options = read_options or ReadOptions()
    source = open_source(path, options)
    path = source.path  # in-memory data: a name such as 'AnnData (700 cells x 765 genes)'
    in_memory = not isinstance(path, Path)
    batch = source.read()
    side = list(side or [])
    if labels_file is not None:
        label = attach_labels(batch, Path(labels_file), label)
    columns = list(batch.obs.columns)
    where = " obs" if source.kind == "expression" and in_memory else ""
    for col in side:
        _check_column(path, columns, col, f"side{where}", "side=" if in_memory else "--side")
    if label is not None:
        _check_column(path, columns, label, f"label{where}", "label=" if in_memory else "--label")

    # side columns: numeric, count missing
    keep = np.ones(len(batch), bool)
    for col in side:
        values = batch.obs[col]
        numeric = pd.to_numeric(values, errors="coerce")
        bad = numeric.isna() & values.notna() & (values.astype(str).str.strip() != "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{path}: side column {col!r} is not numeric (data row {row + 1} holds {values.iloc[row]!r}); choose a numeric column")
        infinite = np.isinf(numeric.to_numpy(dtype=np.float64, na_value=np.nan))
        if infinite.any():
            row = int(np.flatnonzero(infinite)[0])
            raise InputError(f"{path}: side column {col!r} holds an infinite value (data row {row + 1}); "
                             "replace it with a number, or leave it empty (--drop-missing skips such rows)")
        keep &= ~_missing_rows(path, f"side column {col!r}", "values", numeric.isna().to_numpy(), drop_missing)
        batch.obs[col] = numeric
    if label is not None:
        labels = batch.obs[label]
        missing = labels.isna().to_numpy() | (labels.astype(str).str.strip() == "").to_numpy()
        keep &= ~_missing_rows(path, f"label column {label!r}", "labels", missing, drop_missing)

    exclude = set(side) | ({label} if label else set())
    id_column = getattr(source, "id_column", None)
    smiles_column = getattr(source, "smiles_column", None)
    exclude |= {c for c in (id_column, smiles_column) if c}
    featurizer = default_featurizer(source.kind, **(featurizer_options or {}))
    if source.kind == "expression":
        featurizer.fit(batch, exclude, path)
        feats = featurizer.transform(batch, path)
    else:
        featurizer.fit(batch, exclude, path)
        feats = _molecule_features(featurizer, batch, path, smiles_column) if smiles_column else featurizer.transform(batch, path)

    rejects = rejects_table(batch, feats.rejects)
    if feats.valid.sum() == 0:
        raise InputError(f"{path}: none of the {len(batch)} SMILES could be parsed by RDKit; check the SMILES column")
    sequences, alphabet = None, decoder or (default_alphabet(int(feats.valid.sum())) if smiles_column else "none")
    if alphabet != "none":
        if not smiles_column:
            raise InputError(f"{path}: --decoder {alphabet} generates molecules and needs molecule data (.smi, .sdf or a "
                             f"table with a SMILES column), but this is {source.kind} data; use --decoder none")
        sequences = np.full(len(batch), None, dtype=object)
        rows = np.flatnonzero(feats.valid)
        smiles_all = batch.obs[smiles_column].astype(str).to_numpy()
        encoded, reasons = _sequences(smiles_all[rows].tolist(), alphabet)
        bad = [(int(i), why) for i, why in zip(rows, reasons) if why is not None]
        sequences[rows] = encoded
        if bad:
            feats_ok = np.ones(len(batch), bool)
            feats_ok[[i for i, _ in bad]] = False
            keep &= feats_ok
            more = rejects_table(batch, [(i, smiles_all[i]) for i, _ in bad], [why for _, why in bad])
            rejects = pd.concat([rejects, more]).sort_values("row", kind="stable").reset_index(drop=True)
            rejects["row"] = rejects["row"].astype(np.int64)
    check_finite_features(feats.x, path, batch.ids[feats.valid], featurizer.feature_names)
    x = feats.x[keep[feats.valid]]
    keep &= feats.valid
    if keep.sum() == 0:
        raise InputError(f"{path}: no rows left after dropping missing values")
    obs = batch.obs.loc[keep].reset_index(drop=True)
    ids = batch.ids[keep]
    _warn_duplicate_ids(path, ids, id_column)

    lik = likelihood or featurizer.likelihood
    prep = Preprocessing(source_kind=source.kind, featurizer=featurizer.state(), likelihood=lik,
                         id_column=id_column, smiles_column=smiles_column, layer=options.layer)
    if lik == "nb":  # counts: the encoder reads log1p(counts), unstandardised (as scVI); see likelihoods.NegativeBinomial
        check_counts(x, path, ids, featurizer.feature_names)
        finite = x[np.isfinite(x)]
        if finite.size and not np.all(finite == np.round(finite)):
            log.warning("%s: --likelihood nb models raw counts, but the data hold non-integer values (e.g. %.4g); "
                        "normalised or log-transformed data need --likelihood gaussian", path,
                        float(finite[finite != np.round(finite)][0]))
        prep.x_transform = "log1p"
    elif likelihood is None and source.kind == "expression" and _looks_like_counts(x):
        log.warning("%s: the expression values look like raw counts (non-negative whole numbers); "
                    "consider --likelihood nb (negative binomial with per-cell library size) instead of the "
                    "Gaussian on standardised counts", path)
    n_binary = {"gaussian": 0, "bernoulli": x.shape[1]}.get(lik, int(lik.split(":")[-1]) if lik.startswith("mixed:") else 0)
    if lik != "nb" and n_binary < x.shape[1]:  # standardise the continuous features; binary ones stay 0/1
        mean, std = robust_standardisation(x, n_binary, path, ids, featurizer.feature_names)
        prep.x_mean, prep.x_std = mean.astype(float).tolist(), std.astype(float).tolist()
    if n_binary and (np.nanmin(x[:, :n_binary]) < 0 or np.nanmax(x[:, :n_binary]) > 1):
        raise InputError(f"{path}: a Bernoulli likelihood needs features in [0, 1]; use --likelihood gaussian")
    data = Dataset(ids=ids, x=prep.scale_x(x), obs=obs, rejects=rejects)
    if smiles_column:
        data.smiles = obs[smiles_column].astype(str).to_numpy()
    if sequences is not None:
        from archetool.data.tokens import vocabulary_class

        kept = sequences[keep].tolist()
        vocabulary = vocabulary_class(alphabet).build(kept, max_length=max_tokens)
        prep.sequence = vocabulary.state()
        data.tokens = vocabulary.encode(kept)
        _log_long_molecules(path, data.tokens, vocabulary, max_tokens)
    if side:
        raw = obs[side].to_numpy(dtype=np.float64)
        prep.side_names = side
        prep.side_mean = raw.mean(0).tolist()
        std = raw.std(0)
        for name, spread, value in zip(side, std, raw[0] if len(raw) else []):
            if not spread > 1e-12 * max(1.0, abs(value)):
                raise InputError(f"{path}: side column {name!r} holds the same value ({value:.6g}) in every row used; "
                                 "a constant carries nothing to predict (its R² is undefined): leave it out of --side")
        prep.side_std = np.where(std > 1e-12, std, 1.0).tolist()
        data.side_raw, data.side = raw, prep.scale_side(raw)
    if label is not None:
        _encode_labels(path, data, prep, obs[label], label, min_class_size, strict_classes)
    data.left_out = list(getattr(featurizer, "left_out", []))
    return data, prep


def warn_left_out(path, data: Dataset) -> None:
    """One warning line naming the text columns that are not features (called once the data passed every check,
    so that an error stays the only line)."""
    if data.left_out:
        log.warning("%s: %d column%s not numeric and left out of the features: %s (use a class column with --label)",
                    path, len(data.left_out), "s are" if len(data.left_out) > 1 else " is",
                    preview([repr(c) for c in data.left_out], 8))


def _molecule_features(featurizer, batch: RawBatch, path, smiles_column: str):
    """``featurizer.transform`` of a molecule batch, through the feature cache (:mod:`archetool.data.feature_cache`)."""
    from archetool.data.feature_cache import cached
    from archetool.data.featurizers import Features

    smiles = batch.obs[smiles_column].astype(str).tolist()

    def compute():
        feats = featurizer.transform(batch, path, smiles_column)
        return {"x": feats.x, "valid": feats.valid}

    out = cached("features", smiles, featurizer.state(), compute)
    valid = out["valid"].astype(bool)
    return Features(x=out["x"].astype(np.float32, copy=False), valid=valid,
                    rejects=[(int(i), smiles[i]) for i in np.flatnonzero(~valid)])


#: the default alphabet is SMILES from this many molecules up, SELFIES below (``fit --decoder`` chooses): see
#: :func:`default_alphabet`
SMILES_FROM_MOLECULES = 5000


def default_alphabet(n_molecules: int) -> str:
    """The sequence decoder's alphabet for a fit of ``n_molecules``: "smiles" from :data:`SMILES_FROM_MOLECULES` up
    (a SMILES language model learns the data's distribution far better: FCD to MOSES test 0.42 against 4.05 with
    SELFIES at 50,000 molecules), "selfies" below, where a SMILES model still writes many strings that are no
    molecule and SELFIES' guarantee that every string is one matters more."""
    return "smiles" if n_molecules >= SMILES_FROM_MOLECULES else "selfies"


def _sequences(smiles: list[str], alphabet: str) -> tuple[list[str | None], list[str | None]]:
    """The molecules as the decoder's strings (canonical SMILES, or their SELFIES), through the feature cache:
    (strings or None (n), reasons or None (n))."""
    from archetool.data.feature_cache import cached
    from archetool.data.tokens import vocabulary_class

    def compute():
        encoded, reasons = vocabulary_class(alphabet).encode_molecules(smiles)
        return {"strings": np.array([e or "" for e in encoded], dtype=str),
                "reasons": np.array([r or "" for r in reasons], dtype=str)}

    out = cached(alphabet, smiles, {"layout": 2}, compute)  # layout 2: the "strings" array
    return [e or None for e in out["strings"].tolist()], [r or None for r in out["reasons"].tolist()]


def _log_long_molecules(path, tokens: np.ndarray, vocabulary, max_tokens: int | None) -> None:
    """Say how many molecules are longer than the decoder's ``max_length`` (their token rows are all padding)."""
    from archetool.data.tokens import LENGTH_PERCENTILE, PAD

    long = int((tokens[:, 0] == PAD).sum())
    if not long:
        return
    why = (f"--max-tokens {max_tokens}" if max_tokens is not None
           else f"the {LENGTH_PERCENTILE:g}th percentile of the data's lengths; --max-tokens N raises it")
    log.warning("%s: %d of %d molecules have more than %d %s (%s): they train the encoder and the "
                "side head but are left out of the sequence decoder's loss, so they do not lengthen every epoch",
                path, long, len(tokens), vocabulary.max_length, vocabulary.unit, why)


def _warn_duplicate_ids(path, ids: np.ndarray, id_column: str | None) -> None:
    """A warning naming how many row ids occur more than once and the first few (the rows are all kept)."""
    counts = pd.Series(ids).value_counts(sort=False)
    dupes = counts[counts > 1]
    if len(dupes):
        where = f"id column {id_column!r}" if id_column else "the row ids"
        count = f"{len(dupes)} ids occur" if len(dupes) > 1 else "1 id occurs"
        log.warning("%s: %s more than once in %s (%d rows in all): %s; the rows are all kept, "
                    "but an id then names several rows in the outputs", path, count, where, int(dupes.sum()),
                    preview([f"{i!r} x{n}" for i, n in dupes.items()], 5))


def _encode_labels(path, data: Dataset, prep: Preprocessing, labels: pd.Series, column: str,
                   min_class_size: int, strict: bool) -> None:
    names = labels.astype(str).to_numpy()
    classes, codes = np.unique(names, return_inverse=True)
    if len(classes) < 2:
        raise InputError(f"{path}: label column {column!r} holds a single class ({classes[0]!r}); a class model needs at least 2 classes")
    counts = np.bincount(codes, minlength=len(classes))
    small = [f"{c!r} ({n})" for c, n in zip(classes, counts) if n < min_class_size]
    if small:
        msg = f"{path}: {len(small)} classes of {column!r} have fewer than {min_class_size} samples: {preview(small, 5)}"
        if strict:
            raise InputError(msg + "; drop --strict-classes to carry on anyway")
        log.warning(msg + "; carrying on (they cannot be held out for validation)")
    prep.label_column, prep.classes = column, [str(c) for c in classes]
    data.label = codes.astype(np.int64)


@dataclass
class InferenceChunk:
    """One chunk of new data ready for a fitted model: ids (n,), x (n, p), smiles, obs.

    x is in model space, or still in the input's units (float32) when ``scaled`` is False: see
    ``iter_inference_chunks(scale=False)``.
    """

    ids: np.ndarray
    x: np.ndarray
    obs: pd.DataFrame
    smiles: np.ndarray | None
    rejects: pd.DataFrame
    scaled: bool = True


def inference_read_options(prep: Preprocessing, read_options: ReadOptions | None = None,
                           obs_columns: tuple[str, ...] | None = None) -> ReadOptions:
    """How ``embed`` opens a new file: the caller's options (``--layer``, ``--sep``), else the model's
    training layer; the per-row columns wanted (``obs_columns``) are the caller's."""
    from dataclasses import replace

    if read_options is None:
        return ReadOptions(layer=prep.layer, obs_columns=obs_columns)
    return replace(read_options, layer=read_options.layer if read_options.layer is not None else prep.layer,
                   obs_columns=obs_columns if read_options.obs_columns is None else read_options.obs_columns)


def iter_inference_chunks(path: str | Path, prep: Preprocessing, batch_rows: int = 65536,
                          read_options: ReadOptions | None = None,
                          obs_columns: tuple[str, ...] | None = None, scale: bool = True,
                          allow_missing_features: bool = False) -> Iterator[InferenceChunk]:
    """Featurise a new file chunk by chunk exactly as at fit time.

    The preprocessing comes from the model, not from the file type: table and expression models match
    their features **by name** in any table or expression file (table columns, .h5ad var names, .gctx /
    .gct gene ids). Missing features are an InputError listing them, unless ``allow_missing_features``:
    then they are filled with the training mean and a warning says how many and which.
    ``read_options``: see :func:`inference_read_options`.
    ``obs_columns``: the per-row columns wanted in ``chunk.obs`` (None: all; see ``ReadOptions``).
    ``scale=False`` leaves float32 standardised features (expression matrices) in the input's units
    (``chunk.scaled`` False) for a consumer that scales each batch itself, right before the model reads
    it (``ArchetoolModel``'s streaming embed: one pass over memory fewer).
    """
    source = open_source(path, inference_read_options(prep, read_options, obs_columns))
    path = source.path  # in-memory data: a description
    featurizer = prep.make_featurizer()
    featurizer.allow_missing = allow_missing_features
    smiles_column = getattr(source, "smiles_column", None)
    morgan = prep.featurizer["name"] == "morgan"
    if morgan and not smiles_column:
        raise InputError(f"{path}: no SMILES column found but the model was fitted on molecules; "
                         "name it with --smiles-column" if source.kind != "expression" else
                         f"{path}: holds expression data but the model was fitted on molecules (SMILES)")
    warned = False
    for batch in source.iter_batches(batch_rows):
        inplace = False
        if morgan:
            feats = featurizer.transform(batch, path, smiles_column)
        elif _genes_in_model_order(batch, featurizer.feature_names):
            # the usual case (same gene list): the dense block is already the feature matrix -- no gather copy
            feats = Features(x=batch.matrix, valid=np.ones(len(batch), bool))
            # readers hand out a fresh array per chunk (a slice of a cached matrix is a view, not owned),
            # so an owned block is scaled in place: one chunk-sized array in memory instead of three
            inplace = batch.matrix.flags.owndata
        else:
            feats = featurizer.transform(batch, path)
            if featurizer.missing and not warned:
                warned = True
                log.warning("%s: %d of the model's %d features are missing and were filled with the training mean "
                            "(--allow-missing-features): %s", path, len(featurizer.missing),
                            len(featurizer.feature_names), preview(featurizer.missing, 8))
        rejects = rejects_table(batch, feats.rejects)
        all_valid = bool(feats.valid.all())
        if all_valid and _plain_index(batch.obs):
            obs, ids = batch.obs, batch.ids
        else:
            obs, ids = batch.obs.loc[feats.valid].reset_index(drop=True), batch.ids[feats.valid]
        smiles = obs[smiles_column].astype(str).to_numpy() if smiles_column else None
        # float64 features (tables, descriptors) are scaled here, in float64 as at fit time: the same bits
        if scale or prep.x_mean is None or np.asarray(feats.x).dtype != np.float32:
            check_finite_features(feats.x, path, ids, featurizer.feature_names)
            if prep.x_transform == "log1p":
                check_counts(feats.x, path, ids, featurizer.feature_names, fitting=False)
            x, scaled = prep.scale_x(feats.x, inplace=inplace), True
        else:  # the consumer checks and scales, batch by batch
            x, scaled = np.asarray(feats.x, dtype=np.float32), False
        chunk = InferenceChunk(ids=ids, x=x, obs=obs, smiles=smiles, rejects=rejects, scaled=scaled)
        del batch, feats, obs, ids  # only the chunk keeps the data while the consumer works on it
        yield chunk
        del chunk  # released before the next chunk is read, so at most one chunk is alive


def _genes_in_model_order(batch: RawBatch, feature_names: list[str]) -> bool:
    """True when ``batch`` is a dense float32 matrix whose genes are exactly the model's, in order."""
    matrix = batch.matrix
    return (isinstance(matrix, np.ndarray) and matrix.dtype == np.float32 and matrix.ndim == 2
            and batch.feature_names is not None and len(batch.feature_names) == len(feature_names)
            and [str(g) for g in batch.feature_names] == feature_names)


def _plain_index(frame: pd.DataFrame) -> bool:
    index = frame.index
    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1

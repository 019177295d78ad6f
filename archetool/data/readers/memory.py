"""In-memory data for the Python API: an AnnData, a pandas DataFrame or a numpy array, as a :class:`Source`.

* AnnData   -> kind "expression": ``X`` (or ``ReadOptions.layer``), genes = ``var_names``, ids = ``obs_names``,
               ``obs`` columns usable as side/label.
* DataFrame -> kind "molecules" when it has a SMILES column (``smiles_column`` or the usual names), else
               "table" (its numeric columns are the features); ids from the id column, else the index.
* ndarray   -> kind "table" with ``ReadOptions.extra["feature_names"]`` as column names (required: a model
               matches features by name when it embeds new data).

Chunks are views or fresh copies, never the caller's own array: nothing the reader hands out is scaled in
place (see ``iter_inference_chunks``), so the caller's object is never modified by reading.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd

from archetool.data.readers.table import ID_COLUMNS, SMILES_COLUMNS, batch_from_frame, pick_column
from archetool.data.source import RawBatch, ReadOptions
from archetool.errors import InputError, preview


def is_anndata(obj) -> bool:
    """True for an ``anndata.AnnData`` (checked without importing anndata)."""
    return any(c.__name__ == "AnnData" and c.__module__.startswith("anndata") for c in type(obj).__mro__)


def describe(obj) -> str:
    """A short name for in-memory data in messages and in config.json, e.g. 'AnnData (700 cells x 765 genes)'."""
    if is_anndata(obj):
        return f"AnnData ({obj.n_obs} cells x {obj.n_vars} genes)"
    if isinstance(obj, pd.DataFrame):
        return f"DataFrame ({obj.shape[0]} rows x {obj.shape[1]} columns)"
    if isinstance(obj, np.ndarray):
        return f"array {'x'.join(str(n) for n in obj.shape)}"
    return type(obj).__name__


class _SlicedSource:
    """Reads rows start:stop of an in-memory object with ``_batch(start, stop)``; ``n_rows`` rows in all."""

    n_rows: int

    def _batch(self, start: int, stop: int) -> RawBatch:
        raise NotImplementedError

    def read(self) -> RawBatch:
        return self._batch(0, self.n_rows)

    def iter_batches(self, batch_rows: int) -> Iterator[RawBatch]:
        for start in range(0, self.n_rows, batch_rows):
            yield self._batch(start, min(self.n_rows, start + batch_rows))


class AnnDataSource(_SlicedSource):
    kind = "expression"

    def __init__(self, adata, options: ReadOptions):
        self.path = describe(adata)
        self.adata = adata
        self.layer = options.layer
        if self.layer is not None:
            if self.layer not in adata.layers.keys():
                raise InputError(f"{self.path}: layer {self.layer!r} not found; layers are: "
                                 f"{preview(list(adata.layers.keys())) or '(none)'}")
            self._x = adata.layers[self.layer]
        else:
            if adata.X is None:
                raise InputError(f"{self.path}: has no X matrix; name a layer with layer=")
            self._x = adata.X
        if adata.n_obs == 0 or adata.n_vars == 0:
            raise InputError(f"{self.path}: the AnnData is empty")
        self.columns = [str(c) for c in adata.obs.columns]
        self.feature_names = [str(g) for g in adata.var_names]
        self.n_rows = int(adata.n_obs)
        wanted = options.obs_columns
        self._obs_columns = list(adata.obs.columns) if wanted is None else [c for c in adata.obs.columns if c in wanted]

    def _batch(self, start: int, stop: int) -> RawBatch:
        import scipy.sparse as sp

        block = self._x[start:stop]
        if hasattr(block, "to_memory"):  # a backed AnnData's sparse dataset
            block = block.to_memory()
        if sp.issparse(block):
            matrix = block.tocsr().astype(np.float32)
        else:  # a view of the caller's array (owndata False), or a float32 copy
            matrix = np.asarray(block, dtype=np.float32)
        obs = self.adata.obs.iloc[start:stop][self._obs_columns].reset_index(drop=True)
        ids = np.asarray(self.adata.obs_names[start:stop]).astype(str).astype(object)
        return RawBatch(ids=ids, obs=obs, matrix=matrix, feature_names=self.feature_names, row_offset=start)



def _check_unique_columns(name: str, columns: list[str]) -> None:
    """An InputError naming the first column name (as text) that occurs twice: features and side or label
    columns are chosen by name, so a repeated name is ambiguous."""
    seen: dict[str, int] = {}
    for j, column in enumerate(columns):
        if column in seen:
            raise InputError(f"{name}: the column name {column!r} occurs more than once (columns {seen[column] + 1} "
                             f"and {j + 1}); column names must be unique: rename one of them")
        seen[column] = j


class FrameSource(_SlicedSource):
    """A DataFrame of numeric features, or of molecules (a SMILES column)."""

    def __init__(self, frame: pd.DataFrame, options: ReadOptions, name: str | None = None):
        self.path = name or describe(frame)
        if frame.shape[0] == 0 or frame.shape[1] == 0:
            raise InputError(f"{self.path}: the DataFrame is empty")
        self.columns = [str(c) for c in frame.columns]
        _check_unique_columns(self.path, self.columns)
        self.frame = frame.set_axis(self.columns, axis=1)
        self.id_column = pick_column(self.columns, options.id_column, ID_COLUMNS, self.path, "id")
        self.smiles_column = pick_column(self.columns, options.smiles_column, SMILES_COLUMNS, self.path, "SMILES")
        self.kind = "molecules" if self.smiles_column else "table"
        if self.smiles_column is None and not any(pd.api.types.is_numeric_dtype(self.frame[c]) for c in self.columns):
            raise InputError(f"{self.path}: no numeric columns and no SMILES column (columns: {preview(self.columns)}); "
                             "pass numeric features, or name the SMILES column with smiles_column=")
        self.n_rows = int(frame.shape[0])
        index = frame.index
        self._index_ids = not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1)

    def _batch(self, start: int, stop: int) -> RawBatch:
        batch = batch_from_frame(self.frame.iloc[start:stop], self.id_column, start)  # ids: id column, else row numbers
        if self.id_column is None and self._index_ids:  # a labelled index (e.g. cell or compound names) names the rows
            batch.ids = np.asarray(self.frame.index[start:stop]).astype(str).astype(object)
        return batch



def open_memory(obj, options: ReadOptions):
    """The Source for an in-memory object; one-line InputErrors for what cannot be used."""
    if is_anndata(obj):
        return AnnDataSource(obj, options)
    if isinstance(obj, pd.DataFrame):
        return FrameSource(obj, options)
    if isinstance(obj, np.ndarray):
        name = describe(obj)
        if obj.ndim != 2:
            raise InputError(f"{name}: expected a 2-D array (rows x features)")
        if obj.dtype.kind not in "biuf":
            raise InputError(f"{name}: expected a numeric array, got dtype {obj.dtype}")
        names = options.extra.get("feature_names")
        if names is None:
            raise InputError(f"{name}: a numpy array needs feature_names= (one name per column), so that "
                             "embed can match the columns of new data by name")
        names = [str(n) for n in names]
        if len(names) != obj.shape[1] or len(set(names)) != len(names):
            raise InputError(f"{name}: feature_names must be {obj.shape[1]} unique names, got {len(names)} "
                             f"({len(set(names))} unique)")
        return FrameSource(pd.DataFrame(obj, columns=names), options, name=name)
    raise InputError(f"cannot read a {type(obj).__name__}: pass a file path, an AnnData, a pandas DataFrame "
                     "or a numpy array with feature_names=")

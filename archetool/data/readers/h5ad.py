"""AnnData ``.h5ad``: X (dense or sparse) or a layer; obs columns for side/label; genes = var_names.

Read with h5py and anndata's element readers, one piece at a time: opening reads only ``var`` and
the shape; a chunk reads its rows of the matrix and of the obs index, plus the obs columns the caller
asked for (each read whole once, then sliced). Opening a 1M-cell file therefore costs milliseconds
instead of the seconds ``anndata.read_h5ad(backed="r")`` spends loading every obs column, and memory
does not grow with the file. Files older than the on-disk format anndata has written since 0.8
(2022; groups tagged ``encoding-type``) are read through anndata's backed mode instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from archetool.data.source import RawBatch, ReadOptions
from archetool.errors import InputError, first_line, preview


def _is_plain_strings(element) -> bool:
    import h5py

    return isinstance(element, h5py.Dataset) and element.dtype.kind in "OS" and element.ndim == 1


def _strings(element, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows start:stop of a 1-D string element (an obs/var index) as an object array of str.

    A plain HDF5 string dataset is sliced and decoded by h5py (no anndata import: 1.3 s of start-up);
    anything else (e.g. a categorical index) goes through anndata's element reader.
    """
    if _is_plain_strings(element):
        return np.asarray(element.asstr()[start:stop], dtype=object)
    from anndata.io import read_elem

    return np.asarray(read_elem(element)[start:stop]).astype(str).astype(object)


class H5adSource:
    kind = "expression"

    def __init__(self, path: Path, options: ReadOptions):
        import h5py

        self.path = path
        self.layer = options.layer
        self.obs_columns = options.obs_columns
        self._obs_cache: dict[str, np.ndarray] = {}
        try:
            self._file = h5py.File(path, "r")
        except Exception as err:  # h5py raises OSError, ValueError... for corrupt files
            raise InputError(f"{path}: not a readable .h5ad file ({first_line(err)})") from None
        try:
            self._open()
        except InputError:
            raise
        except Exception as err:  # a malformed group or dataset inside a valid HDF5 file
            raise InputError(f"{path}: not a readable .h5ad file ({first_line(err)})") from None
        if self.n_rows == 0 or len(self.feature_names) == 0:
            raise InputError(f"{path}: the AnnData is empty ({self.n_rows} cells x {len(self.feature_names)} genes)")

    # --- opening ------------------------------------------------------------------------------
    def _open(self) -> None:
        import h5py

        f = self._file
        obs, var = f.get("obs"), f.get("var")
        if not all(isinstance(g, h5py.Group) and "encoding-type" in g.attrs for g in (obs, var)):
            self._open_with_anndata()
            return
        self._backed = None
        self._obs = obs
        self._index = obs[obs.attrs["_index"]]
        self.columns = [str(c) for c in obs.attrs.get("column-order", [])]
        self.feature_names = [str(g) for g in _strings(var[var.attrs["_index"]])]
        if self.layer is not None:
            layers = f.get("layers")
            names = list(layers.keys()) if layers is not None else []
            if self.layer not in names:
                raise InputError(f"{self.path}: layer {self.layer!r} not found; layers are: {preview(names) or '(none)'}")
            element = layers[self.layer]
        else:
            element = f.get("X")
            if element is None:
                raise InputError(f"{self.path}: has no X matrix; name a layer with --layer")
        self._matrix_element = self._matrix_reader(element)
        self.n_rows = int(self._index.shape[0])
        shape = tuple(int(n) for n in self._matrix_element.shape)
        if shape != (self.n_rows, len(self.feature_names)):
            raise InputError(f"{self.path}: {element.name} is {shape[0]} x {shape[1]} but the file has {self.n_rows} cells "
                             f"and {len(self.feature_names)} genes; the file is corrupt")

    def _matrix_reader(self, element):
        """A dense HDF5 dataset, or anndata's backed sparse matrix (rows sliced without loading the rest)."""
        import h5py

        if isinstance(element, h5py.Dataset):
            if element.ndim != 2:
                raise InputError(f"{self.path}: {element.name} is not a 2-D matrix (shape {element.shape})")
            from archetool.data.readers.hdf5_rows import RowReader

            return RowReader(element, self.path)
        from anndata.io import sparse_dataset

        return sparse_dataset(element)

    def _open_with_anndata(self) -> None:
        import anndata as ad

        self._file.close()
        try:
            self._backed = ad.read_h5ad(self.path, backed="r")
        except Exception as err:
            raise InputError(f"{self.path}: not a readable .h5ad file ({first_line(err)})") from None
        adata = self._backed
        if self.layer is not None and self.layer not in adata.layers.keys():
            raise InputError(f"{self.path}: layer {self.layer!r} not found; layers are: {preview(list(adata.layers.keys())) or '(none)'}")
        self.columns = [str(c) for c in adata.obs.columns]
        self.feature_names = [str(g) for g in adata.var_names]
        self.n_rows = int(adata.n_obs)

    # --- reading ------------------------------------------------------------------------------
    def _matrix(self, start: int, stop: int):
        import scipy.sparse as sp

        if self._backed is not None:
            element = self._backed.X if self.layer is None else self._backed.layers[self.layer]
        else:
            element = self._matrix_element
        block = element.read(start, stop) if hasattr(element, "read") else element[start:stop]
        if hasattr(block, "to_memory"):  # anndata backed sparse view
            block = block.to_memory()
        if sp.issparse(block):
            return block.tocsr().astype(np.float32)
        return np.asarray(block, dtype=np.float32)

    def _wanted(self) -> list[str]:
        return self.columns if self.obs_columns is None else [c for c in self.columns if c in self.obs_columns]

    def _obs_frame(self, start: int, stop: int) -> pd.DataFrame:
        if self._backed is not None:
            obs = self._backed.obs
            return obs.iloc[start:stop][self._wanted()].reset_index(drop=True)
        columns = {}
        for name in self._wanted():
            if name not in self._obs_cache:  # one column of n values, read whole the first time it is needed
                from anndata.io import read_elem

                self._obs_cache[name] = read_elem(self._obs[name])
            columns[name] = self._obs_cache[name][start:stop]
        return pd.DataFrame(columns, index=pd.RangeIndex(stop - start))

    def _ids(self, start: int, stop: int) -> np.ndarray:
        if self._backed is not None:
            return np.asarray(self._backed.obs_names[start:stop]).astype(str)
        if _is_plain_strings(self._index):
            return _strings(self._index, start, stop)
        if "\0index" not in self._obs_cache:  # an unusual index encoding: read whole once
            self._obs_cache["\0index"] = _strings(self._index)
        return self._obs_cache["\0index"][start:stop]

    def iter_batches(self, batch_rows: int) -> Iterator[RawBatch]:
        for start in range(0, self.n_rows, batch_rows):
            yield self._batch(start, min(self.n_rows, start + batch_rows))

    def read(self) -> RawBatch:
        return self._batch(0, self.n_rows)

    def _batch(self, start: int, stop: int) -> RawBatch:
        try:
            return RawBatch(ids=self._ids(start, stop), obs=self._obs_frame(start, stop),
                            matrix=self._matrix(start, stop), feature_names=self.feature_names, row_offset=start)
        except InputError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as err:
            raise InputError(f"{self.path}: cannot read cells {start}-{stop - 1}: {first_line(err)}; "
                             "the file may be truncated or corrupt") from None


def open_h5ad(path: Path, options: ReadOptions) -> H5adSource:
    return H5adSource(path, options)

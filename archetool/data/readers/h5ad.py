"""AnnData ``.h5ad``: X (dense or sparse) or a layer; obs columns for side/label; genes = var_names.

Opened backed (``backed="r"``) so chunks are read from disk and memory does not grow with the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from archetool.data.source import RawBatch, ReadOptions
from archetool.errors import InputError, preview


class H5adSource:
    kind = "expression"

    def __init__(self, path: Path, options: ReadOptions):
        import anndata as ad

        self.path = path
        self.layer = options.layer
        self.obs_columns = options.obs_columns
        try:
            self.adata = ad.read_h5ad(path, backed="r")
        except Exception as err:  # h5py / anndata raise many types for corrupt files
            msg = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
            raise InputError(f"{path}: not a readable .h5ad file ({msg})") from None
        if self.layer is not None and self.layer not in self.adata.layers.keys():
            raise InputError(f"{path}: layer {self.layer!r} not found; layers are: {preview(list(self.adata.layers.keys())) or '(none)'}")
        if self.adata.n_obs == 0 or self.adata.n_vars == 0:
            raise InputError(f"{path}: the AnnData is empty ({self.adata.n_obs} cells x {self.adata.n_vars} genes)")
        self.columns = [str(c) for c in self.adata.obs.columns]
        self.n_rows = int(self.adata.n_obs)
        self.feature_names = [str(g) for g in self.adata.var_names]

    def _matrix(self, start: int, stop: int):
        import scipy.sparse as sp

        if self.layer is None:
            block = self.adata.X[start:stop]
        else:
            block = self.adata.layers[self.layer][start:stop]
        if sp.issparse(block):
            return block.tocsr().astype(np.float32)
        if hasattr(block, "to_memory"):  # anndata backed sparse dataset
            block = block.to_memory()
            return block.tocsr().astype(np.float32) if sp.issparse(block) else np.asarray(block, np.float32)
        return np.asarray(block, dtype=np.float32)

    def _batch(self, start: int, stop: int) -> RawBatch:
        obs = self.adata.obs
        wanted = slice(None) if self.obs_columns is None else [i for i, c in enumerate(obs.columns) if c in self.obs_columns]
        obs = obs.iloc[start:stop, wanted].reset_index(drop=True)  # only the columns the caller needs
        ids = np.asarray(self.adata.obs_names[start:stop]).astype(str)
        return RawBatch(ids=ids, obs=obs, matrix=self._matrix(start, stop), feature_names=self.feature_names, row_offset=start)

    def iter_batches(self, batch_rows: int) -> Iterator[RawBatch]:
        for start in range(0, self.n_rows, batch_rows):
            yield self._batch(start, min(self.n_rows, start + batch_rows))

    def read(self) -> RawBatch:
        return self._batch(0, self.n_rows)


def open_h5ad(path: Path, options: ReadOptions) -> H5adSource:
    return H5adSource(path, options)

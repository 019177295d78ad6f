"""``embed --out cells.h5ad``: the input AnnData with the embedding added, written chunk by chunk.

The input file is copied byte for byte (X, layers, uns... untouched, memory flat), then the new
elements are created with h5py in anndata's on-disk format (0.8+: every element tagged with
``encoding-type``) and filled as the chunks arrive:

    obsm/<key>    float32 (n, d) arrays ("array")
    obs/<column>  float32 columns ("array"), or class labels as "categorical" (codes + categories)

Elements of the same name already in the file (an earlier embedding) are replaced.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from archetool.errors import ArchetoolError

_ARRAY = {"encoding-type": "array", "encoding-version": "0.2.0"}
_STRINGS = {"encoding-type": "string-array", "encoding-version": "0.2.0"}


class H5adAnnotator:
    """Copy ``source`` to ``target`` and add obsm arrays and obs columns to it, rows in order.

    n_rows: the AnnData's number of cells (every element has that many rows). Use as a context
    manager; ``write`` takes the next block of rows of every element.
    """

    def __init__(self, source: str | Path, target: str | Path, n_rows: int):
        self.source, self.target, self.n_rows = Path(source), Path(target), int(n_rows)
        self._file = None
        self._rows = 0
        self._categories: dict[str, dict[str, int]] = {}

    def __enter__(self) -> "H5adAnnotator":
        import h5py

        shutil.copyfile(self.source, self.target)
        self._file = h5py.File(self.target, "r+")
        for group in ("obs", "obsm"):
            if not isinstance(self._file.get(group), h5py.Group) or "encoding-type" not in self._file[group].attrs:
                self._file.close()
                raise ArchetoolError(f"{self.source}: written by an anndata older than 0.8 (no encoded '{group}' group); "
                                     "re-save it with a current anndata, or use --out .parquet")
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._file is not None:
            self._file.close()
            self._file = None
        if exc_type is None and self._rows != self.n_rows:
            raise ArchetoolError(f"{self.target}: wrote {self._rows} rows, expected {self.n_rows}")
        return False

    def write(self, obsm: dict[str, np.ndarray], obs: dict[str, np.ndarray],
              categories: dict[str, list[str]] | None = None) -> None:
        """Rows ``[written, written + m)`` of each obsm array (m, d) and obs column (m,).

        ``categories``: for obs columns of class labels, the classes in order (stored as categorical).
        """
        categories = categories or {}
        m = len(next(iter(obsm.values()))) if obsm else len(next(iter(obs.values())))
        rows = slice(self._rows, self._rows + m)
        if self._rows == 0:
            self._create(obsm, obs, categories)
        for key, values in obsm.items():
            self._file["obsm"][key][rows] = np.asarray(values, np.float32)
        for name, values in obs.items():
            if name in self._categories:
                lookup = self._categories[name]
                codes = np.fromiter((lookup[str(v)] for v in values), dtype=np.int32, count=len(values))
                self._file["obs"][name]["codes"][rows] = codes
            else:
                self._file["obs"][name][rows] = np.asarray(values, np.float32)
        self._rows += m

    def _create(self, obsm: dict, obs: dict, categories: dict) -> None:
        import h5py

        f, n = self._file, self.n_rows
        for key, values in obsm.items():
            if key in f["obsm"]:
                del f["obsm"][key]
            ds = f["obsm"].create_dataset(key, shape=(n, np.shape(values)[1]), dtype=np.float32)
            ds.attrs.update(_ARRAY)
        group = f["obs"]
        order = [str(c) for c in group.attrs.get("column-order", [])]
        for name in obs:
            if name in group:
                del group[name]
            if name in order:
                order.remove(name)
            if name in categories:
                classes = [str(c) for c in categories[name]]
                column = group.create_group(name)
                column.attrs.update({"encoding-type": "categorical", "encoding-version": "0.2.0", "ordered": False})
                column.create_dataset("categories", data=np.array(classes, dtype=object),
                                      dtype=h5py.string_dtype()).attrs.update(_STRINGS)
                column.create_dataset("codes", shape=(n,), dtype=np.int32).attrs.update(_ARRAY)
                self._categories[name] = {c: i for i, c in enumerate(classes)}
            else:
                group.create_dataset(name, shape=(n,), dtype=np.float32).attrs.update(_ARRAY)
            order.append(name)
        group.attrs["column-order"] = np.array(order, dtype=h5py.string_dtype()) if order else np.array([], np.float64)

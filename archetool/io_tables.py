"""Writers for tables and matrices; the output file's extension picks the format.

``.csv`` ``.tsv`` ``.parquet`` ``.npy`` ``.h5ad`` (optionally ``.csv.gz`` / ``.tsv.gz``). Every write is atomic.
:class:`TableWriter` streams chunks (CSV appends, Parquet row groups, ``.npy`` memmap) so memory stays flat.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from archetool.atomic import atomic_path
from archetool.errors import ArchetoolError

TABLE_FORMATS = (".csv", ".tsv", ".parquet", ".npy", ".h5ad")


def output_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    if ext not in TABLE_FORMATS:
        raise ArchetoolError(f"{path}: unknown output extension {ext or '(none)'!r}; use one of {', '.join(TABLE_FORMATS)}")
    return ext


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a whole DataFrame atomically in the format named by the extension (not .h5ad)."""
    path = Path(path)
    ext = output_format(path)
    with atomic_path(path) as tmp:
        if ext == ".csv":
            frame.to_csv(tmp, index=False, compression="gzip" if path.suffix == ".gz" else None)
        elif ext == ".tsv":
            frame.to_csv(tmp, index=False, sep="\t", compression="gzip" if path.suffix == ".gz" else None)
        elif ext == ".parquet":
            frame.to_parquet(tmp, index=False)
        elif ext == ".npy":
            with open(tmp, "wb") as handle:
                np.save(handle, frame.select_dtypes("number").to_numpy(np.float32))
        else:
            raise ArchetoolError(f"{path}: .h5ad output is only available for embeddings of .h5ad input")
    return path


class TableWriter:
    """Append DataFrame chunks to ``path`` and rename into place on :meth:`close`.

    ``.npy`` needs ``n_rows`` up front (a memmap of shape (n_rows, numeric columns)); use
    it as a context manager: on an exception the partial file is removed and the target untouched.
    """

    def __init__(self, path: str | Path, n_rows: int | None = None):
        self.path = Path(path)
        self.ext = output_format(self.path)
        if self.ext == ".h5ad":
            raise ArchetoolError(f"{self.path}: streaming .h5ad output is not supported; use .parquet, .csv or .npy")
        self.n_rows = n_rows
        self._ctx = atomic_path(self.path)
        self._tmp: Path | None = None
        self._writer = None
        self._rows = 0
        self._memmap = None
        self._spool = None
        self._cols = 0

    def __enter__(self) -> "TableWriter":
        self._tmp = self._ctx.__enter__()
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if self.ext in (".csv", ".tsv"):
            frame.to_csv(self._tmp, mode="a", header=self._rows == 0, index=False, sep="\t" if self.ext == ".tsv" else ",",
                         compression="gzip" if self.path.suffix == ".gz" else None)
        elif self.ext == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._writer is None:
                self._writer = pq.ParquetWriter(self._tmp, table.schema)
            self._writer.write_table(table)
        elif self.ext == ".npy":
            values = frame.select_dtypes("number").to_numpy(np.float32)
            if self.n_rows is None:  # row count unknown: spool raw rows, build the .npy on close
                if self._spool is None:
                    self._spool = open(self._tmp.with_suffix(".spool"), "wb")
                    self._cols = values.shape[1]
                self._spool.write(np.ascontiguousarray(values).tobytes())
            elif self._memmap is None:
                self._memmap = np.lib.format.open_memmap(self._tmp, mode="w+", dtype=np.float32, shape=(self.n_rows, values.shape[1]))
            if self._memmap is not None:
                self._memmap[self._rows : self._rows + len(values)] = values
        self._rows += len(frame)

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if self._writer is not None:
                self._writer.close()
            if self._memmap is not None:
                self._memmap.flush()
                self._memmap = None
            if self._spool is not None:
                self._finish_spool(write=exc_type is None)
            if exc_type is None and self.ext == ".npy" and self.n_rows is not None and self._rows != self.n_rows:
                raise ArchetoolError(f"{self.path}: wrote {self._rows} rows, expected {self.n_rows}")
        except BaseException as err:
            self._ctx.__exit__(type(err), err, err.__traceback__)  # removes the partial file
            raise
        return bool(self._ctx.__exit__(exc_type, exc, tb))

    def _finish_spool(self, write: bool, block: int = 1 << 16) -> None:
        spool_path = Path(self._spool.name)
        self._spool.close()
        try:
            if write:
                raw = np.memmap(spool_path, dtype=np.float32, mode="r", shape=(self._rows, self._cols))
                out = np.lib.format.open_memmap(self._tmp, mode="w+", dtype=np.float32, shape=(self._rows, self._cols))
                for start in range(0, self._rows, block):
                    out[start : start + block] = raw[start : start + block]
                out.flush()
                del out, raw
        finally:
            spool_path.unlink(missing_ok=True)

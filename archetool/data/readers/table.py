"""CSV / TSV / TXT / Parquet tables (gzip etc. handled by pandas), read whole or in row chunks."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from archetool.data.source import RawBatch, ReadOptions, concat_batches
from archetool.errors import InputError, first_line, preview

ID_COLUMNS = ("id", "ID", "Id", "name", "Name", "NAME", "sample", "sample_id", "compound_id", "mol_id")
SMILES_COLUMNS = ("smiles", "SMILES", "Smiles", "canonical_smiles", "CANONICAL_SMILES", "isomeric_smiles")


def pick_column(columns, requested: str | None, candidates, path: Path, what: str) -> str | None:
    """The requested column (must exist) or the first candidate present, else None."""
    if requested is not None:
        if requested not in columns:
            raise InputError(f"{path}: {what} column {requested!r} not found; columns are: {preview(columns)}")
        return requested
    return next((c for c in candidates if c in columns), None)


def batch_from_frame(frame: pd.DataFrame, id_column: str | None, row_offset: int) -> RawBatch:
    """Wrap a table chunk: ids from ``id_column`` (else 0-based row numbers)."""
    frame = frame.reset_index(drop=True)
    if id_column is not None:
        ids = frame[id_column].astype(str).to_numpy()
    else:
        ids = np.arange(row_offset, row_offset + len(frame)).astype(str)
    return RawBatch(ids=ids, obs=frame, row_offset=row_offset)


class TableSource:
    """A delimited text or Parquet table; one row per sample.

    kind is "molecules" when a SMILES column is present, else "table".
    """

    def __init__(self, path: Path, options: ReadOptions):
        self.path = path
        self.options = options
        self.is_parquet = path.suffix.lower() in (".parquet", ".pq")
        head = self._read(nrows=50)
        if head.shape[1] == 0 or (len(head) == 0 and not self.is_parquet):
            raise InputError(f"{path}: no rows or columns found; is the file empty or not a table?")
        self.columns = [str(c) for c in head.columns]
        self.id_column = pick_column(self.columns, options.id_column, ID_COLUMNS, path, "id")
        self.smiles_column = pick_column(self.columns, options.smiles_column, SMILES_COLUMNS, path, "SMILES")
        self.kind = "molecules" if self.smiles_column else "table"
        self.n_rows = self._parquet_rows() if self.is_parquet else None

    def _sep(self) -> str | None:
        name = self.path.name.lower()
        return "\t" if (".tsv" in name or ".txt" in name) else ","

    def _read(self, **kwargs) -> pd.DataFrame:
        try:
            if self.is_parquet:
                frame = pd.read_parquet(self.path)
                return frame.head(kwargs["nrows"]) if "nrows" in kwargs else frame
            return pd.read_csv(self.path, sep=self._sep(), **kwargs)
        except pd.errors.EmptyDataError:
            raise InputError(f"{self.path}: the file is empty") from None
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError, EOFError) as err:
            raise InputError(f"{self.path}: cannot be read as a table ({type(err).__name__}: {first_line(err, 160)}); check the format and delimiter") from None
        except Exception as err:  # pyarrow raises its own types
            raise InputError(f"{self.path}: cannot be read as a table ({type(err).__name__}: {first_line(err, 160)})") from None

    def _parquet_rows(self) -> int:
        import pyarrow.parquet as pq

        return pq.ParquetFile(self.path).metadata.num_rows

    def iter_batches(self, batch_rows: int) -> Iterator[RawBatch]:
        offset = 0
        if self.is_parquet:
            import pyarrow.parquet as pq

            for record_batch in pq.ParquetFile(self.path).iter_batches(batch_size=batch_rows):
                frame = record_batch.to_pandas()
                yield batch_from_frame(frame, self.id_column, offset)
                offset += len(frame)
            return
        try:
            reader = pd.read_csv(self.path, sep=self._sep(), chunksize=batch_rows)
            for frame in reader:
                yield batch_from_frame(frame, self.id_column, offset)
                offset += len(frame)
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError, EOFError) as err:
            raise InputError(f"{self.path}: cannot be read near row {offset + 1} ({type(err).__name__}: {first_line(err, 160)})") from None

    def read(self) -> RawBatch:
        frame = self._read()
        if len(frame) == 0:
            raise InputError(f"{self.path}: the table has a header but no rows")
        return batch_from_frame(frame, self.id_column, 0)


def open_table(path: Path, options: ReadOptions) -> TableSource:
    return TableSource(path, options)


__all__ = ["TableSource", "open_table", "concat_batches"]

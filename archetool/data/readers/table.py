"""CSV / TSV / TXT / Parquet tables (gzip etc. handled by pandas), read whole or in row chunks."""

from __future__ import annotations

import csv
import re
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
        self._dialect: tuple[str, bool] | None = None  # (delimiter, decimal comma) of a text table
        head = self._read(nrows=50)
        if head.shape[1] == 0 or (len(head) == 0 and not self.is_parquet):
            raise InputError(f"{path}: no rows or columns found; is the file empty or not a table?")
        self.columns = [str(c) for c in head.columns]
        if not self.is_parquet:
            check_unique_header(path, _split(next(iter(_head_lines(path)), ""), self._csv_options()["sep"]))
        self.id_column = pick_column(self.columns, options.id_column, ID_COLUMNS, path, "id")
        self.smiles_column = pick_column(self.columns, options.smiles_column, SMILES_COLUMNS, path, "SMILES")
        self.kind = "molecules" if self.smiles_column else "table"
        self.n_rows = self._parquet_rows() if self.is_parquet else None

    def _csv_options(self) -> dict:
        """pandas.read_csv options: the delimiter (``ReadOptions.sep``, else sniffed: see
        :func:`sniff_delimiter`), and ``decimal=","`` for European exports ("1,5" in a semicolon- or
        tab-separated file). Worked out once per source."""
        if self._dialect is None:
            if self.options.sep is not None:
                sep = self.options.sep
                self._dialect = (sep, sep != "," and _has_decimal_comma(_head_lines(self.path)[1:50], sep))
            else:
                name = self.path.name.lower()
                self._dialect = sniff_delimiter(self.path, "\t" if (".tsv" in name or ".txt" in name) else ",")
        sep, decimal_comma = self._dialect
        extra = {"na_values": list(self.options.na_values)} if self.options.na_values else {}
        return {"sep": sep, "decimal": "," if decimal_comma else ".", **extra}

    def _read(self, **kwargs) -> pd.DataFrame:
        try:
            if self.is_parquet:
                frame = pd.read_parquet(self.path)
                return frame.head(kwargs["nrows"]) if "nrows" in kwargs else frame
            return pd.read_csv(self.path, **self._csv_options(), **kwargs)
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
            reader = pd.read_csv(self.path, **self._csv_options(), chunksize=batch_rows)
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


def check_unique_header(path, names: list[str]) -> None:
    """An InputError naming a column name that occurs twice in a header line (pandas would silently
    rename the second 'alcohol' to 'alcohol.1')."""
    seen: dict[str, int] = {}
    for j, name in enumerate(names):
        name = name.strip().lstrip("\ufeff")
        if name and name in seen:
            raise InputError(f"{path}: the column name {name!r} occurs more than once in the header (columns "
                             f"{seen[name] + 1} and {j + 1}); rename one of them (it would be read as {name + '.1'!r})")
        seen[name] = j


#: delimiters a text table may use, in order of preference when counts tie
DELIMITERS = (",", ";", "\t", "|")
_DECIMAL_COMMA = re.compile(r"^\s*[-+]?\d+,\d+(?:[eE][-+]?\d+)?\s*$")


def _head_lines(path: Path, n_bytes: int = 1 << 16) -> list[str]:
    """The first complete lines of a (possibly compressed) text file."""
    import bz2
    import gzip
    import lzma

    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix.lower(), open)
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as handle:
            text = handle.read(n_bytes)
    except (OSError, EOFError, lzma.LZMAError):
        return []  # pandas reports unreadable files with its own message
    lines = text.splitlines()
    if len(text) == n_bytes and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    return [line for line in lines if line.strip()]


def sniff_delimiter(path: Path, default: str) -> tuple[str, bool]:
    """(delimiter, decimal comma) of a text table from its first lines.

    The delimiter is the candidate of :data:`DELIMITERS` found in the header line that splits every
    sampled line into the same number of fields (more than one), the most fields winning; ``default``
    when none does (a one-column table). Decimal comma: the delimiter is not a comma and some field
    reads like ``1,5``.
    """
    lines = _head_lines(path)[:50]
    if not lines:
        return default, False
    best, best_fields = default, 1
    for sep in sorted(DELIMITERS, key=lambda d: d != default):
        fields = _split(lines[0], sep)
        if len(fields) > best_fields and all(len(_split(line, sep)) == len(fields) for line in lines[1:]):
            best, best_fields = sep, len(fields)
    return best, best != "," and _has_decimal_comma(lines[1:], best)


def _has_decimal_comma(lines: list[str], sep: str) -> bool:
    """Whether fields of ``sep``-delimited data lines read like ``1,5``."""
    return any(_DECIMAL_COMMA.match(f) for line in lines for f in _split(line, sep))


def _split(line: str, sep: str) -> list[str]:
    """Fields of one delimited line (quotes respected)."""
    return next(csv.reader([line], delimiter=sep), [])


def open_table(path: Path, options: ReadOptions) -> TableSource:
    return TableSource(path, options)


__all__ = ["TableSource", "open_table", "concat_batches"]

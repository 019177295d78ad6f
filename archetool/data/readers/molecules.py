"""Molecule files: ``.smi`` / ``.smiles`` (whitespace-separated, SMILES first) and ``.sdf``.

Readers only extract SMILES strings and property columns; parsing and featurisation (and the
rejects file for invalid SMILES) belong to the Morgan featuriser.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from archetool.data.readers.table import ID_COLUMNS, batch_from_frame
from archetool.data.source import RawBatch, ReadOptions
from archetool.errors import InputError

SMILES_HEADER_NAMES = {"smiles", "smi", "canonical_smiles", "isomeric_smiles", "#smiles"}


def _open_text(path: Path):
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    return opener(path, "rt", encoding="utf-8", errors="strict")


def _coerce_numeric(frame: pd.DataFrame, skip: set[str]) -> pd.DataFrame:
    """Turn columns whose values all parse as numbers (NaN allowed) into floats."""
    for col in frame.columns:
        if col in skip:
            continue
        converted = pd.to_numeric(frame[col], errors="coerce")
        if converted.notna().sum() == frame[col].replace("", np.nan).notna().sum():
            frame[col] = converted
    return frame


class SmilesSource:
    """Whitespace-separated SMILES file. A first line whose first token is 'smiles' (any case) is a header
    naming the columns; otherwise the second column (if any) is the molecule name and the rest ``col2``..."""

    kind = "molecules"

    def __init__(self, path: Path, options: ReadOptions):
        self.path = path
        self.options = options
        self.frame = self._parse()
        self.columns = [c for c in self.frame.columns]
        self.n_rows = len(self.frame)
        if self.n_rows == 0:
            raise InputError(f"{path}: no molecules found (only a header or blank lines)")
        self.smiles_column = "smiles"
        requested = options.id_column
        if requested is not None and requested not in self.columns:
            raise InputError(f"{path}: id column {requested!r} not found; columns are: {', '.join(self.columns)}")
        self.id_column = requested or next((c for c in ID_COLUMNS if c in self.columns), None)

    def _parse(self) -> pd.DataFrame:
        try:
            with _open_text(self.path) as handle:
                lines = [line.split() for line in handle if line.strip() and not line.startswith("//")]
        except UnicodeDecodeError as err:
            raise InputError(f"{self.path}: not UTF-8 text near byte {err.start}; save the file as UTF-8 text") from None
        except (OSError, EOFError) as err:
            raise InputError(f"{self.path}: cannot be read ({err}); is it a (gzipped) text file?") from None
        if not lines:
            raise InputError(f"{self.path}: the file is empty")
        header = lines[0][0].lower() in SMILES_HEADER_NAMES
        if header:
            names = ["smiles"] + lines[0][1:]
            rows = lines[1:]
        else:
            width = max(len(r) for r in lines)
            names = ["smiles", "name"] + [f"col{i}" for i in range(2, width)]
            rows = lines
        width = len(names)
        for i, row in enumerate(rows):
            if len(row) > width:
                line_no = i + (2 if header else 1)
                raise InputError(
                    f"{self.path}: line {line_no} has {len(row)} fields but the header names {width}; "
                    "names must not contain spaces"
                )
        padded = [row + [""] * (width - len(row)) for row in rows]
        frame = pd.DataFrame(padded, columns=names)
        return _coerce_numeric(frame, skip={"smiles", "name", "id"})

    def iter_batches(self, batch_rows: int) -> Iterator[RawBatch]:
        for start in range(0, self.n_rows, batch_rows):
            yield batch_from_frame(self.frame.iloc[start : start + batch_rows], self.id_column, start)

    def read(self) -> RawBatch:
        return batch_from_frame(self.frame, self.id_column, 0)


class SdfSource:
    """SD file via RDKit; molecule properties become columns, the title line becomes ``name``.

    Records RDKit cannot parse keep their row with an empty SMILES (the featuriser rejects them).
    """

    kind = "molecules"

    def __init__(self, path: Path, options: ReadOptions):
        from rdkit import Chem, RDLogger

        RDLogger.DisableLog("rdApp.*")
        self.path = path
        rows = []
        try:
            handle = gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")
            with handle:
                for mol in Chem.ForwardSDMolSupplier(handle, sanitize=True):
                    if mol is None:
                        rows.append({"smiles": "", "name": ""})
                        continue
                    props = mol.GetPropsAsDict(includePrivate=False, includeComputed=False)
                    name = mol.GetProp("_Name") if mol.HasProp("_Name") else ""
                    rows.append({"smiles": Chem.MolToSmiles(mol), "name": name, **props})
        except (OSError, EOFError, UnicodeDecodeError) as err:
            raise InputError(f"{path}: cannot be read as an SD file ({err})") from None
        if not rows:
            raise InputError(f"{path}: no molecule records found; is it an SD file ($$$$-separated)?")
        frame = pd.DataFrame(rows)
        self.frame = _coerce_numeric(frame, skip={"smiles", "name"})
        self.columns = list(self.frame.columns)
        self.n_rows = len(self.frame)
        self.smiles_column = "smiles"
        names_unique = self.frame["name"].astype(str).str.len().gt(0).all() and self.frame["name"].is_unique
        self.id_column = options.id_column or ("name" if names_unique else None)

    def iter_batches(self, batch_rows: int) -> Iterator[RawBatch]:
        for start in range(0, self.n_rows, batch_rows):
            yield batch_from_frame(self.frame.iloc[start : start + batch_rows], self.id_column, start)

    def read(self) -> RawBatch:
        return batch_from_frame(self.frame, self.id_column, 0)


def open_smiles(path: Path, options: ReadOptions) -> SmilesSource:
    return SmilesSource(path, options)


def open_sdf(path: Path, options: ReadOptions) -> SdfSource:
    return SdfSource(path, options)

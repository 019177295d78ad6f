"""Reader registry: file extension -> factory ``(path, ReadOptions) -> Source``.

Add a format by writing a Source class and one line in :data:`READERS`.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from archetool.data.source import ReadOptions, Source
from archetool.errors import InputError

#: extension (lower case, without compression suffix) -> "module:factory"
READERS: dict[str, str] = {
    ".csv": "archetool.data.readers.table:open_table",
    ".tsv": "archetool.data.readers.table:open_table",
    ".txt": "archetool.data.readers.table:open_table",
    ".parquet": "archetool.data.readers.table:open_table",
    ".pq": "archetool.data.readers.table:open_table",
    ".smi": "archetool.data.readers.molecules:open_smiles",
    ".smiles": "archetool.data.readers.molecules:open_smiles",
    ".sdf": "archetool.data.readers.molecules:open_sdf",
    ".h5ad": "archetool.data.readers.h5ad:open_h5ad",
    ".gctx": "archetool.data.readers.gctx:open_gctx",
    ".gct": "archetool.data.readers.gctx:open_gct",
}
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")


def data_extension(path: Path) -> str:
    """'.csv' for 'x.csv.gz'; the lower-case format extension of ``path``."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def open_source(path, options: ReadOptions | None = None) -> Source:
    """Open ``path`` with the reader registered for its extension; errors are one-line InputErrors.

    ``path`` may also be an in-memory AnnData, DataFrame or numpy array (Python API): see
    :mod:`archetool.data.readers.memory`. A Source's ``path`` names the data in messages.
    """
    if not isinstance(path, (str, os.PathLike)):
        from archetool.data.readers.memory import open_memory

        return open_memory(path, options or ReadOptions())
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a data file ({', '.join(sorted(READERS))})")
    ext = data_extension(path)
    if ext not in READERS:
        raise InputError(
            f"{path}: unknown file extension {ext or '(none)'!r}; "
            f"use one of {', '.join(sorted(READERS))} (optionally .gz)"
        )
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")
    module_name, factory = READERS[ext].split(":")
    return getattr(importlib.import_module(module_name), factory)(path, options or ReadOptions())

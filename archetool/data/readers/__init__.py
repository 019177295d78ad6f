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


#: ``--format`` values for data read from standard input (``-``) -> the extension of their reader
STDIN_FORMATS = {"smi": ".smi", "csv": ".csv", "tsv": ".tsv"}
_SPOOLED: dict[str, Path] = {}


def is_stdin(path) -> bool:
    return str(path) == "-"


def resolve_data(path, fmt: str | None):
    """``path`` unchanged, or for ``-`` the path of standard input copied to a temporary file.

    Standard input can be read only once but readers open their file more than once (a peek at the
    columns, then the rows), so ``-`` is spooled to ``<tmp>/stdin.<fmt>`` in 1 MiB blocks (memory stays
    flat), once per process; the file is deleted when the process exits. ``fmt``: one of
    :data:`STDIN_FORMATS`, required for ``-`` (standard input has no file extension to go by).
    """
    if not is_stdin(path):
        if fmt is not None:
            raise InputError(f"--format {fmt}: applies to standard input ('-') only; {path} is read by its extension")
        return path
    if fmt is None:
        raise InputError("-: reading data from standard input needs --format smi, csv or tsv "
                         "(e.g. cat x.smi | archetool embed MODEL - --format smi)")
    fmt = fmt.lower().lstrip(".")
    if fmt not in STDIN_FORMATS:
        raise InputError(f"--format {fmt!r}: choose one of {', '.join(STDIN_FORMATS)}")
    import sys

    key = f"{id(sys.stdin)}:{fmt}"  # one copy per stream (tests swap sys.stdin within one process)
    if key not in _SPOOLED:
        _SPOOLED[key] = _spool_stdin(STDIN_FORMATS[fmt])
    return _SPOOLED[key]


#: what messages call data read from ``-``
STDIN_NAME = "standard input"


def is_spooled_stdin(path) -> bool:
    """Whether ``path`` is this process's copy of standard input (see :func:`resolve_data`)."""
    return isinstance(path, (str, os.PathLike)) and Path(path) in _SPOOLED.values()


def name_stdin(text: str) -> str:
    """``text`` (a message) with this process's temporary copies of standard input called "standard input"."""
    for path in _SPOOLED.values():
        text = text.replace(str(path), STDIN_NAME).replace(str(path.parent), STDIN_NAME)
    return text


def _spool_stdin(ext: str) -> Path:
    import atexit
    import shutil
    import sys
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="archetool-stdin-"))
    atexit.register(shutil.rmtree, directory, True)
    target = directory / f"stdin{ext}"
    if sys.stdin is None or sys.stdin.isatty():
        raise InputError("-: standard input is a terminal, not data; pipe the data in, e.g. cat x.smi | archetool ...")
    source = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin
    with open(target, "wb") as handle:
        while True:
            block = source.read(1 << 20)
            if not block:
                break
            handle.write(block if isinstance(block, bytes) else block.encode("utf-8"))
    if target.stat().st_size == 0:
        raise InputError("-: standard input is empty; pipe data in, e.g. cat x.smi | archetool ...")
    return target

"""A disk cache of molecule features, so that a refit of the same molecules does not featurise them again.

An entry is keyed by the SHA-256 of the SMILES (in order), the featuriser's settings and the RDKit and
archetool versions: other molecules, another order or other settings never hit it. Entries are ``.npz``
files (no pickles) under ``$ARCHETOOL_CACHE_DIR`` (``off`` turns the cache off), else
``$XDG_CACHE_HOME/archetool/features``, else ``~/.cache/archetool/features``. Fingerprint bits are stored
packed (1 bit each). A writer writes a temporary file and renames it, so concurrent runs never read a half
entry; an entry that cannot be read, or holds another key, is removed and recomputed. The oldest entries
go once the cache passes :data:`MAX_BYTES`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

from archetool.atomic import OutputError, atomic_path

log = logging.getLogger("archetool")
FORMAT = 1
MAX_BYTES = 2 * 2**30


def cache_dir() -> Path | None:
    """The cache folder, or None when ``ARCHETOOL_CACHE_DIR`` is ``off`` (or ``0``, ``no``, empty)."""
    env = os.environ.get("ARCHETOOL_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "no", "false") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "archetool" / "features"


def cache_key(kind: str, smiles: list[str], settings: dict) -> str:
    """Hex SHA-256 of what an entry depends on."""
    import rdkit

    from archetool import __version__

    digest = hashlib.sha256()
    digest.update(json.dumps({"kind": kind, "format": FORMAT, "rdkit": rdkit.__version__, "archetool": __version__,
                              "settings": settings, "n": len(smiles)}, sort_keys=True, default=str).encode())
    for s in smiles:
        digest.update(s.encode("utf-8", "surrogatepass") + b"\n")
    return digest.hexdigest()


def cached(kind: str, smiles: list[str], settings: dict, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``compute()`` (a dict of arrays), read from the cache when an entry for (kind, smiles, settings) exists,
    else computed and stored. Arrays: numeric (float columns that are all 0/1 are packed to bits) or str."""
    folder = cache_dir()
    if folder is None:
        return compute()
    key = cache_key(kind, smiles, settings)
    path = folder / f"{kind}-{key[:40]}.npz"
    hit = _read(path, key)
    if hit is not None:
        log.info("%s of %d molecules read from the cache %s", kind, len(smiles), path)
        return hit
    value = compute()
    try:
        _write(path, key, value)
        _prune(folder)
    except (OSError, OutputError) as err:  # a read-only or full disk: the fit goes on without the cache
        log.debug("feature cache not written (%s)", err)
    return value


def _read(path: Path, key: str) -> dict[str, np.ndarray] | None:
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["__key__"]) != key:
                raise ValueError("another key")
            out = {}
            for name in npz.files:
                if name.startswith("__"):
                    continue
                if name.endswith("__bits"):
                    base = name[: -len("__bits")]
                    out[base] = _unpack(npz[name], npz[base + "__dense"], npz[base + "__binary"])
                elif not name.endswith(("__dense", "__binary")):
                    out[name] = npz[name]
        os.utime(path)  # recently used: pruned last
        return out
    except Exception as err:  # noqa: BLE001 - a corrupt or foreign entry: remove it and recompute
        log.warning("the feature cache entry %s is unreadable (%s); it is removed and the features recomputed",
                    path, str(err).splitlines()[0] if str(err) else type(err).__name__)
        try:
            path.unlink()
        except OSError:
            pass
        return None


def _write(path: Path, key: str, value: dict[str, np.ndarray]) -> None:
    arrays: dict[str, np.ndarray] = {"__key__": np.array(key)}
    for name, array in value.items():
        array = np.asarray(array)
        if array.dtype.kind == "f" and array.ndim == 2:
            binary = np.all((array == 0) | (array == 1), axis=0)
            arrays[name + "__bits"] = np.packbits(array[:, binary].astype(bool), axis=1)
            arrays[name + "__dense"] = array[:, ~binary]
            arrays[name + "__binary"] = binary
        else:
            arrays[name] = array
    with atomic_path(path, suffix=".tmp") as tmp, open(tmp, "wb") as f:  # not *.npz: _prune skips it
        np.savez(f, **arrays)


def _unpack(bits: np.ndarray, dense: np.ndarray, binary: np.ndarray) -> np.ndarray:
    out = np.empty((len(dense), len(binary)), dtype=dense.dtype)
    out[:, binary] = np.unpackbits(bits, axis=1, count=int(binary.sum())).astype(dense.dtype)
    out[:, ~binary] = dense
    return out


def _prune(folder: Path, max_bytes: int = MAX_BYTES) -> None:
    """Remove the least recently used entries while the folder holds more than ``max_bytes``."""
    entries = []
    for p in folder.glob("*.npz"):
        try:
            st = p.stat()
        except OSError:
            continue
        entries.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in entries)
    for _, size, p in sorted(entries):
        if total <= max_bytes:
            break
        try:
            p.unlink()
        except OSError:
            pass
        total -= size

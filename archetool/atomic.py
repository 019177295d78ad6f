"""Atomic writes: write to a temporary sibling, then ``os.replace`` onto the target.

A killed job never leaves a half-written file at the target path that looks complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: permissions a plainly created file would get (mkstemp makes 0600 files)
FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it onto ``target``, on error remove it.

    The temporary keeps the target's extension (writers that look at it still work) and starts with a dot.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise NotADirectoryError(20, "cannot write here: a file stands where its folder should be", str(target)) from None
    ext = suffix if suffix is not None else "".join(target.suffixes[-2:]) if target.suffixes else ""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{ext}", dir=target.parent)
    except OSError as err:  # name the target, not the temporary, in the message
        raise OSError(err.errno, f"cannot write here ({err.strerror})", str(target)) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_dir():
            raise IsADirectoryError(tmp_path)
        os.chmod(tmp_path, FILE_MODE)
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def staged_dir(target: str | Path) -> Iterator[Path]:
    """Yield a hidden staging directory; on success its files are renamed into ``target``.

    Other files already in ``target`` are left alone (an ``--out`` directory may hold the user's own
    files); a new ``target`` appears in one rename.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():  # checked before any work, and named (not the staging dir)
        raise NotADirectoryError(20, "is a file; give a directory (new or existing) for the output", str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if not target.exists():
            os.replace(tmp, target)
            return
        for item in sorted(tmp.iterdir()):
            os.replace(item, target / item.name)
        tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_atomic(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")

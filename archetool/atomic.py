"""Atomic writes: write to a temporary sibling, then ``os.replace`` onto the target.

A killed job never leaves a half-written file at the target path that looks complete. The hidden
staging names carry the writer's process id (``.emb.<pid>.<random>.part.parquet``): a later write to
the same target removes the parts of writers that are gone (``kill -9``). Errors name the target, never
a staging path; a full disk is one line (:class:`OutputError`).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from archetool.errors import ArchetoolError, first_line


#: an interrupt (Ctrl-C, SIGTERM) whose exception Python may have swallowed: a signal handler's exception raised
#: while a weakref callback or __del__ runs (e.g. inside importlib's module locks) is printed as "Exception
#: ignored" and the program runs on. The handlers record it here, and no output is committed after it.
_pending_interrupt: BaseException | None = None


def note_interrupt(err: BaseException) -> BaseException:
    """Record ``err`` (from a signal handler, before raising it) and return it."""
    global _pending_interrupt
    _pending_interrupt = err
    return err


def raise_pending_interrupt() -> None:
    """Raise the recorded interrupt, if any: called before an output is renamed onto its target."""
    if _pending_interrupt is not None:
        raise _pending_interrupt


class OutputError(ArchetoolError):
    """An output could not be written (disk full, quota, read-only file system); nothing was left half-written."""

    exit_code = 1


#: errno values that mean "no room": the disk or the user's quota is full
_NO_ROOM = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}


def _torch_write_failure(err: BaseException) -> bool:
    """torch.save's C++ writer reports a failed write (full disk) as a RuntimeError, e.g.
    "[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0" or "PytorchStreamWriter failed"."""
    text = str(err)
    return isinstance(err, RuntimeError) and ("inline_container" in text or "PytorchStreamWriter" in text
                                              or "file write failed" in text)


def write_failure(err: BaseException, target: Path) -> BaseException | None:
    """What a failed write to (a staging path of) ``target`` means, as one line naming ``target``, or None
    for an error that is not about writing (left as it is)."""
    text = str(err)
    no_room = ((isinstance(err, OSError) and err.errno in _NO_ROOM) or "No space left on device" in text
               or "Disk quota exceeded" in text)
    if _torch_write_failure(err) and not no_room:
        with contextlib.suppress(OSError):  # torch does not say why; a (nearly) full disk is the usual cause
            no_room = shutil.disk_usage(target.parent).free < (64 << 20)
    if no_room:
        return OutputError(f"{target}: No space left on device (the disk or quota is full); nothing was written "
                           "there: free some space or write elsewhere")
    if _torch_write_failure(err):
        return OutputError(f"{target}: the write failed ({first_line(err, 120)}); nothing was written there")
    if isinstance(err, OSError) and err.errno is not None and _names_staging(err, target):
        return OSError(err.errno, f"cannot write here ({err.strerror})", str(target))
    return None


def _names_staging(err: OSError, target: Path) -> bool:
    """Whether an OSError names a hidden staging path of ``target`` (or no path at all)."""
    hidden = f"/.{target.name.split('.')[0]}."
    return any(hidden in "/" + str(n) for n in (err.filename, err.filename2) if n is not None)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # another user's process: alive
        return True
    return True


def remove_stale_parts(target: Path, prefix: str) -> None:
    """Remove staging files and folders beside ``target`` (``<prefix><pid>.<random>.part...`` and ``.spool``
    side files) left by writers whose process is gone (killed with ``kill -9``, or a crashed machine)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.[^.]+\.part(\..*)?$")
    try:
        entries = list(target.parent.iterdir()) if target.parent.is_dir() else []
    except OSError:
        return
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or int(match[1]) == os.getpid() or _alive(int(match[1])):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


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
    prefix = f".{target.stem}."
    remove_stale_parts(target, prefix)
    own = f"{prefix}{os.getpid()}."
    tmp_path = None
    try:
        try:
            fd, tmp = tempfile.mkstemp(prefix=own, suffix=f".part{ext}", dir=target.parent)
        except OSError as err:  # name the target, not the temporary, in the message
            raise write_failure(err, target) or OSError(err.errno, f"cannot write here ({err.strerror})", str(target)) from None
        tmp_path = Path(tmp)
        os.close(fd)
    except BaseException:
        # a signal (SIGTERM, Ctrl-C) raised between mkstemp's creating the file and our knowing its name: remove
        # this process's part of this target by its name's pattern
        for stray in ([tmp_path] if tmp_path is not None else target.parent.glob(f"{glob.escape(own)}*.part{ext}")):
            with contextlib.suppress(OSError):
                stray.unlink()
        raise
    try:
        yield tmp_path
        if tmp_path.is_dir():
            raise IsADirectoryError(tmp_path)
        os.chmod(tmp_path, FILE_MODE)
        raise_pending_interrupt()
        os.replace(tmp_path, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        told = write_failure(err, target)
        if told is not None:
            raise told from None
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
    prefix = f".{target.name}."
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_parts(target, prefix)
        tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}.", suffix=".part", dir=target.parent))
    except OSError as err:  # name the target, not the staging directory
        raise write_failure(err, target) or OSError(err.errno, f"cannot write here ({err.strerror})", str(target)) from None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        raise_pending_interrupt()
        if not target.exists():
            os.replace(tmp, target)
            return
        for item in sorted(tmp.iterdir()):
            os.replace(item, target / item.name)
        tmp.rmdir()
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        told = write_failure(err, target)
        if told is not None:
            raise told from None
        raise


def write_text_atomic(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")

"""One writer per model directory: an exclusive OS lock (``flock``) on ``<dir>/.archetool.lock``.

The operating system drops the lock when its process ends, however it ends (``kill -9`` included), so
no stale lock ever blocks the next run. The holder writes its process id into the file, so a second run
can say which process holds the directory. The file is removed when the lock is released.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Iterator

from archetool.errors import ArchetoolError

LOCK_NAME = ".archetool.lock"


class DirectoryBusy(ArchetoolError):
    """Another process holds the directory's lock."""

    exit_code = 75  # EX_TEMPFAIL: try again later


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows: lock the file's first byte instead
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _holder(path: Path) -> str:
    """The process id written by the lock's holder ('unknown' if it has not written it yet)."""
    for _ in range(20):  # the holder writes its pid right after locking: wait a moment for it
        with contextlib.suppress(OSError):
            text = path.read_text().strip()
            if text:
                return text
        time.sleep(0.025)
    return "unknown"


@contextlib.contextmanager
def directory_lock(directory: str | Path, what: str = "fit") -> Iterator[Path]:
    """Hold an exclusive lock on ``directory`` (created if missing) for the ``with`` block.

    Raises :class:`DirectoryBusy` at once, naming the holder's process id, when another process holds
    it. A directory this call created is removed again if it is still empty at the end (a run that
    failed before writing anything leaves nothing behind).
    """
    directory = Path(directory)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        if not _try_lock(fd):
            os.close(fd)
            raise DirectoryBusy(f"{directory}: another archetool run (process {_holder(path)}) is writing this model "
                                f"directory; wait for it to finish, or give this {what} another --out")
        try:  # the file may have been removed by a holder releasing it meanwhile: lock the one now there
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield directory
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still locked: a waiting process then sees another file and retries
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                directory.rmdir()  # only when empty

"""Threads for streaming inference: read the next chunk in the background, spread forward passes over cores.

``embed`` is a pipeline: read and scale a chunk (HDF5, numpy), run the model on it (torch), write its rows.
:func:`prefetch` overlaps the first stage with the others; :func:`forward_pool` runs the model's batches
on independent single-threaded workers. Both use the standard library's thread pools: numpy and torch
release the GIL in their heavy loops; h5py holds it for parts of a read (p99 2.7 ms measured while
reading 8,192 x 978 blocks), which only delays a worker between two operations.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
_END = object()


def prefetch(items: Iterable[T]) -> Iterator[T]:
    """Yield ``items`` in order while a background thread already produces the next one.

    At most two items are alive at once (the one the caller holds and the one being produced), so
    memory stays flat. An exception raised while producing an item is re-raised here, unchanged,
    when that item is due. Closing this generator early waits for the item in progress, then closes
    ``items`` (a generator's ``finally`` blocks run, its files are closed).
    """
    it = iter(items)
    pool = ThreadPoolExecutor(1, thread_name_prefix="archetool-prefetch")
    try:
        pending = pool.submit(next, it, _END)
        while True:
            item = pending.result()
            if item is _END:
                return
            pending = pool.submit(next, it, _END)
            yield item
            del item  # the caller's previous item is not kept alive while the next one is awaited
    finally:
        pool.shutdown(wait=True)
        close_when_idle(it)


def close_when_idle(it, poll_s: float = 0.01) -> None:
    """Close the generator ``it`` once no thread is running it. A signal (SIGTERM) that interrupts
    ``pool.submit`` while it starts the worker thread leaves that thread out of ``pool.shutdown``'s
    join, still inside ``next(it)``; closing then would raise "generator already executing"."""
    import time

    close = getattr(it, "close", None)
    while close is not None:
        try:
            close()
            return
        except ValueError as err:
            if "already executing" not in str(err):
                raise
            time.sleep(poll_s)


@contextmanager
def forward_pool(device, threads: int) -> Iterator[ThreadPoolExecutor | None]:
    """Worker threads for forward passes on the CPU, each running torch operations on one core.

    ``threads`` workers take whole batches while torch's own thread count is 1 (restored on exit). Independent batches keep every
    core busy even when other jobs share the machine, where torch's OpenMP threads wait for each other at
    every operation (2 cores at load 2.5: 9-14k rows/s with 2 OpenMP threads, 70-78k with 1 thread or 2
    workers). Yields None -- run in the calling thread -- for one thread or a non-CPU device.
    """
    import torch

    if torch.device(device).type != "cpu":
        yield None
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if threads <= 1:
            yield None
        else:  # the thread count is per thread too (OpenMP, MKL): set it in each worker
            with ThreadPoolExecutor(threads, thread_name_prefix="archetool-forward", initializer=torch.set_num_threads,
                                    initargs=(1,)) as pool:
                yield pool
    finally:
        torch.set_num_threads(previous)


# --- how many threads torch may use ---------------------------------------------------------------------------

def available_cpus() -> int:
    """CPUs this process may use: the fewest of its affinity mask (``taskset``, cpusets), its cgroup's CPU
    quota (``cpu.max`` / ``cpu.cfs_quota_us``, rounded up) and ``SLURM_CPUS_PER_TASK``; at least 1."""
    import math
    import os

    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.strip().isdigit() and int(slurm) > 0:
        cpus = min(cpus, int(slurm))
    return max(1, cpus)


def _cgroup_quota() -> float | None:
    return _cgroup_quota_at("/sys/fs/cgroup")


def _cgroup_quota_at(root) -> float | None:
    """The cgroup CPU quota in CPUs (v2 ``cpu.max`` "quota period", v1 cfs files under ``root``), or None when
    unlimited or unknown."""
    from pathlib import Path

    try:
        text = (Path(root) / "cpu.max").read_text().split()
        if len(text) == 2 and text[0] != "max" and float(text[1]) > 0:
            return float(text[0]) / float(text[1])
        if text:
            return None
    except (OSError, ValueError):
        pass
    try:
        quota = float((Path(root) / "cpu" / "cpu.cfs_quota_us").read_text())
        period = float((Path(root) / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def busy_cpus(samples: int = 5, interval: float = 0.02) -> int:
    """Other runnable tasks on the machine right now: the median of ``samples`` reads of /proc/loadavg's
    running count (which includes this thread), less one; falls back to the 1-minute load average."""
    import os
    import statistics
    import time

    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)
        except (OSError, ValueError, IndexError):
            break
        if i + 1 < samples:
            time.sleep(interval)
    if counts:
        return max(0, int(statistics.median(counts)))
    try:
        return max(0, round(os.getloadavg()[0]))
    except OSError:
        return 0


def default_threads() -> tuple[int, str]:
    """(torch threads for training and inference, why): ``OMP_NUM_THREADS`` when set, else the CPUs this process
    may use (:func:`available_cpus`) less those other jobs keep busy now (:func:`busy_cpus`), at least 1.

    Threads beyond the idle CPUs cost more than they give: on a 2-core machine the README's main job took
    20.5-21.6 s on 1 thread against 25.7-28.4 s on 2 sleeping (OMP_WAIT_POLICY=PASSIVE) threads at load 4-6,
    and 99 s on 1 thread against 725 s on 2 spinning threads at load 25 (20 epochs;
    benchmarks/results/threads.md). archetool sets OMP_WAIT_POLICY=PASSIVE on import (unless set), so
    threads that wait sleep: a default that meets a busier machine later loses little.
    """
    import os

    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env), "OMP_NUM_THREADS"
    cpus = available_cpus()
    if cpus <= 1:
        return 1, "1 CPU available"
    busy = busy_cpus()
    n = max(1, min(cpus, (os.cpu_count() or cpus) - busy))
    return n, f"{cpus} CPUs available, {busy} busy with other jobs"


_REQUESTED: int | None = None


def set_threads(threads: int | None) -> None:
    """Use ``threads`` torch threads from now on (``--threads``; None: :func:`default_threads`, chosen when work starts)."""
    global _REQUESTED
    if threads is not None and int(threads) < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    _REQUESTED = None if threads is None else int(threads)
    if _REQUESTED is not None:
        import torch

        torch.set_num_threads(_REQUESTED)


def apply_threads(threads: int | None = None, what: str = "training") -> int:
    """Set torch's thread count for the work about to start and return it: ``threads``, else the one
    :func:`set_threads` asked for, else :func:`default_threads` (logged at debug level with the reason)."""
    import logging

    import torch

    n = threads if threads is not None else _REQUESTED
    why = "asked for" if n is not None else ""
    if n is None:
        n, why = default_threads()
    n = max(1, int(n))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    logging.getLogger("archetool").debug("%s on %d CPU thread%s (%s)", what, n, "s" if n > 1 else "", why)
    return n


class EpochThreads:
    """The default thread count, chosen again between epochs of a fit (other jobs start and stop).

    Call it after each epoch: it reads the runnable count once (no wait), takes the median of the last three
    readings, and sets torch's threads to the CPUs available less those busy. Does nothing when a count was
    asked for (``--threads``, :func:`set_threads`, ``OMP_NUM_THREADS``): results are then also the same
    from run to run, which a changing thread count does not promise (float sums in another order).
    """

    def __init__(self, threads: int | None = None):
        import os
        from collections import deque

        env = os.environ.get("OMP_NUM_THREADS", "").strip()
        self.active = threads is None and _REQUESTED is None and not (env.isdigit() and int(env) > 0)
        self.cpus = available_cpus() if self.active else 1
        self.readings: deque[int] = deque(maxlen=3)

    def __call__(self) -> int | None:
        if not self.active or self.cpus <= 1:
            return None
        import logging
        import os

        import torch

        self.readings.append(busy_cpus(samples=1))
        busy = sorted(self.readings)[len(self.readings) // 2]
        n = max(1, min(self.cpus, (os.cpu_count() or self.cpus) - busy))
        if n != torch.get_num_threads():
            torch.set_num_threads(n)
            logging.getLogger("archetool").debug("training now on %d CPU thread%s (%d busy with other jobs)", n,
                                                 "s" if n > 1 else "", busy)
        return n

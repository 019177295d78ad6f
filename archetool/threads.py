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

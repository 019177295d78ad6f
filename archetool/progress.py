"""Epoch reporting: a rich progress bar on a terminal, one plain log line per epoch otherwise."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("archetool")

SHOWN = ("train_loss", "val_loss", "val_side_mse", "val_accuracy", "beta")


def in_notebook() -> bool:
    """True in a Jupyter kernel that can show rich's live bar (it draws it in an ipywidgets Output)."""
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    if type(shell).__name__ != "ZMQInteractiveShell":
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:  # plain lines then, rather than a bar that never redraws
        return False
    return True


def want_bar(bar: bool | None) -> bool:
    """``bar`` if given; else a bar when info lines are on (not ``-q`` / verbosity "warning") and stderr is a
    terminal or this is a notebook."""
    if bar is not None:
        return bar
    return log.isEnabledFor(logging.INFO) and (sys.stderr.isatty() or in_notebook())


def format_record(record: dict, total: int, restarts: int = 1) -> str:
    parts = [f"restart {record['restart']}/{restarts}"] if "restart" in record else []
    parts += ["refit on all rows,"] if record.get("refit") else []
    parts.append(f"epoch {record['epoch']}/{total}")
    for key in SHOWN:
        if key in record:
            parts.append(f"{key}={record[key]:.4g}")
    parts.append(f"({record.get('seconds', 0.0):.2f}s)")
    return " ".join(parts)


class EpochReporter:
    """Callable ``reporter(record)`` after each epoch; use as a context manager.

    enabled=False silences it (non-zero DDP ranks); ``bar=None``: see :func:`want_bar`.
    ``total`` epochs per restart; with ``restarts`` > 1 records carry ``"restart"`` (1-based) and the bar
    runs over all restarts' epochs. ``start``: epochs already done (resume).
    """

    def __init__(self, total: int, enabled: bool = True, bar: bool | None = None, start: int = 0, restarts: int = 1):
        self.total, self.enabled, self.restarts = total, enabled, restarts
        self.use_bar = enabled and want_bar(bar)
        self.start = start
        self._progress = None
        self._task = None

    def __enter__(self) -> "EpochReporter":
        if self.use_bar:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("[bold]fit"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                TextColumn("{task.fields[stats]}"), console=Console(stderr=True), transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("fit", total=self.total * self.restarts, completed=self.start, stats="")
        return self

    def __call__(self, record: dict) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            stats = " ".join(f"{k}={record[k]:.4g}" for k in SHOWN if k in record)
            done = (record.get("restart", 1) - 1) * self.total + record["epoch"]
            self._progress.update(self._task, completed=done, stats=stats)
        else:
            log.info(format_record(record, self.total, self.restarts))

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()


#: seconds between plain progress lines (env ``ARCHETOOL_PROGRESS_INTERVAL`` overrides; 0 = every update)
PLAIN_INTERVAL = 10.0


class RowProgress:
    """Progress of long row-wise work (embed, featurisation, analyses): ``update(n)`` after each n rows.

    On a terminal or in a notebook (``bar=None``, see :func:`want_bar`; or ``bar=True``) a rich bar on
    stderr; otherwise plain log lines ``<what>: 12,000 of 50,000 rows (1,234 rows/s)`` at most every ``interval`` seconds
    (default :data:`PLAIN_INTERVAL`, or ``ARCHETOOL_PROGRESS_INTERVAL``), so pipelines and log files see
    that work goes on without a line per chunk. ``total``: rows expected, None if unknown. Thread-safe.
    """

    def __init__(self, what: str, total: int | None = None, bar: bool | None = None,
                 interval: float | None = None, enabled: bool = True):
        import os
        import threading

        self.what, self.total, self.enabled = what, total, enabled
        self.use_bar = enabled and want_bar(bar)
        if interval is None:
            interval = float(os.environ.get("ARCHETOOL_PROGRESS_INTERVAL", PLAIN_INTERVAL))
        self.interval = interval
        self.done = 0
        self._lock = threading.Lock()
        self._progress = None
        self._task = None
        self._start = self._last = 0.0

    def __enter__(self) -> "RowProgress":
        import time

        self._start = self._last = time.perf_counter()
        if self.use_bar:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._progress = Progress(
                TextColumn(f"[bold]{self.what}"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
                TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.what, total=self.total)
        return self

    def rate(self) -> float:
        """Rows per second so far."""
        import time

        return self.done / max(time.perf_counter() - self._start, 1e-9)

    def line(self) -> str:
        of = f" of {self.total:,}" if self.total is not None else ""
        return f"{self.what}: {self.done:,}{of} rows ({self.rate():,.0f} rows/s)"

    def update(self, n: int) -> None:
        import time

        if not self.enabled:
            return
        with self._lock:
            self.done += int(n)
            if self._progress is not None:
                self._progress.update(self._task, completed=self.done)
                return
            now = time.perf_counter()
            if now - self._last >= self.interval:
                self._last = now
                log.info(self.line())

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

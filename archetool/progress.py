"""Epoch reporting: a rich progress bar on a terminal, one plain log line per epoch otherwise."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("archetool")

SHOWN = ("train_loss", "val_loss", "val_side_mse", "val_accuracy", "beta")


def format_record(record: dict, total: int, restarts: int = 1) -> str:
    parts = [f"restart {record['restart']}/{restarts}"] if "restart" in record else []
    parts.append(f"epoch {record['epoch']}/{total}")
    for key in SHOWN:
        if key in record:
            parts.append(f"{key}={record[key]:.4g}")
    parts.append(f"({record.get('seconds', 0.0):.2f}s)")
    return " ".join(parts)


class EpochReporter:
    """Callable ``reporter(record)`` after each epoch; use as a context manager.

    enabled=False silences it (non-zero DDP ranks); ``bar=None`` picks a bar only when stderr is a TTY.
    ``total`` epochs per restart; with ``restarts`` > 1 records carry ``"restart"`` (1-based) and the bar
    runs over all restarts' epochs. ``start``: epochs already done (resume).
    """

    def __init__(self, total: int, enabled: bool = True, bar: bool | None = None, start: int = 0, restarts: int = 1):
        self.total, self.enabled, self.restarts = total, enabled, restarts
        self.use_bar = enabled and (sys.stderr.isatty() if bar is None else bar)
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

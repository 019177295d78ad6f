"""Distribution-shift check for ``embed``: are the new rows like the training rows?

At fit time :func:`shift_reference` stores, from the training rows in model space (standardised
features), the 99th percentile of each row's mean squared standardised value over the continuous
features (``row_ms``: 1 for a typical row, 0 at the training mean). At embed time
:class:`ShiftMonitor` counts, batch by batch inside the forward passes (cache-hot, no extra pass over
the file), the rows above that percentile and sums each feature; at the end it reports, in one
warning line, the fraction of rows beyond the training 99th percentile (1 % for data like the
training data) and the median over features of |mean standardised value| (0 for the training data).

Models saved without a reference (older versions) are not checked.
"""

from __future__ import annotations

import numpy as np

#: warn when more than this fraction of the rows lies beyond the training rows' 99th percentile (1 % expected)
FAR_FRACTION = 0.25
#: ... and at least this many rows do (a handful of odd rows is not a shifted data set)
MIN_FAR_ROWS = 3


def continuous_from(likelihood: str, n_features: int) -> int:
    """Index of the first standardised (continuous) feature: 0 for Gaussian features, ``n_binary`` for
    ``mixed:<n_binary>`` (fingerprint bits, then descriptors); Bernoulli bits only: 0 (all features)."""
    if likelihood.startswith("mixed:"):
        return min(int(likelihood.split(":")[-1]), n_features)
    return 0


def row_mean_square(x, start: int):
    """(n,) mean of squared values of features ``start:`` of x (n, p) (numpy or torch, float32)."""
    block = x[:, start:]
    return (block * block).mean(1)


def shift_reference(x_model: np.ndarray, likelihood: str) -> dict:
    """Reference figures of the training rows x_model (n, p) in model space, JSON-able."""
    start = continuous_from(likelihood, x_model.shape[1])
    if x_model.shape[1] - start == 0 or len(x_model) == 0:
        return {}
    ms = row_mean_square(np.asarray(x_model, np.float32), start).astype(np.float64)
    return {"features_from": int(start), "row_ms_q99": float(np.quantile(ms, 0.99)),
            "row_ms_median": float(np.median(ms)), "rows": int(len(x_model))}


class ShiftMonitor:
    """Accumulates, over the forward passes of one embed, how far the new rows lie from the training rows.

    :meth:`batch_figures` runs in the worker threads on each standardised batch (a torch tensor) and
    returns numpy figures; :meth:`add` (consumer thread) sums them; :meth:`warning` gives the line, or None.
    """

    def __init__(self, reference: dict):
        self.start = int(reference["features_from"])
        self.limit = float(reference["row_ms_q99"])
        self.train_median = float(reference.get("row_ms_median", float("nan")))
        self.rows = 0
        self.far = 0
        self.sums: np.ndarray | None = None
        self.ms_total = 0.0

    def batch_figures(self, block) -> dict[str, np.ndarray]:
        """Figures of one standardised batch (n, p) tensor: far-row count, sum of row_ms, per-feature sums."""
        import torch

        ms = row_mean_square(block, self.start)
        return {"far": np.array([int((ms > self.limit).sum())]), "ms": np.array([float(ms.sum())]),
                "rows": np.array([block.shape[0]]),
                "sums": block[:, self.start:].sum(0, dtype=torch.float64).cpu().numpy()[None, :]}

    def add(self, figures: list[dict]) -> None:
        for f in figures:
            self.far += int(f["far"].sum())
            self.rows += int(f["rows"].sum())
            self.ms_total += float(f["ms"].sum())
            sums = f["sums"].sum(0)
            self.sums = sums if self.sums is None else self.sums + sums

    def figures(self) -> dict:
        """fraction of rows beyond the training 99th percentile; median |per-feature mean| in training sd."""
        if not self.rows:
            return {}
        mean_z = np.abs(self.sums / self.rows)
        return {"rows": self.rows, "far_rows": self.far, "far_fraction": self.far / self.rows,
                "median_abs_mean_z": float(np.median(mean_z)), "row_ms_mean": self.ms_total / self.rows}

    def warning(self, data) -> str | None:
        """The one-line warning when the rows look unlike the training rows, else None."""
        f = self.figures()
        if not f or f["far_rows"] < min(MIN_FAR_ROWS, f["rows"]) or f["far_fraction"] <= FAR_FRACTION:
            return None
        return (f"{data}: the data look unlike the training data: {f['far_rows']} of {f['rows']} rows "
                f"({100 * f['far_fraction']:.1f} %, 1 % expected) lie farther from the training mean than 99 % of the "
                f"training rows (mean squared z {f['row_ms_mean']:.3g} on average, training 99th percentile "
                f"{self.limit:.3g}); median per-feature mean z {f['median_abs_mean_z']:.3g} (training 0). The embedding "
                "may not mean much: check that the data are preprocessed like the training data (same units, "
                "normalisation, processing level)")

"""Multinomial logistic regression with an L2 penalty, fitted to convergence (full-batch L-BFGS), and the
penalty chosen by stratified K-fold cross-validation: the convex fit of nvae's linear read-out (issue 17).

Objective, for rows x (n, p), labels y (n,) in 0..K-1, weights W (K, p) and bias b (K,):

    mean_i CE(W x_i + b, y_i) + l2 / 2 * ||W||^2          (the bias is not penalised)

scikit-learn's ``LogisticRegression(C=...)`` minimises the same function times C n: l2 = 1 / (C n).
Pure torch, float64 on the rows' device; no I/O.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: penalties tried by :func:`choose_l2` (per-row scale; 1e-6 is nearly unpenalised, 10 nearly constant)
L2_GRID = tuple(10.0 ** e for e in range(-6, 2))
#: at most this many cross-validation folds (fewer where the smallest class has fewer rows)
MAX_FOLDS = 5


def fit_logistic(x: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float, init=None,
                 max_iter: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise the objective above. x (n, p), y (n,) int; init: (W, b) to start from (a warm start along a
    path of penalties). Returns W (K, p), b (K,) in float64."""
    x = x.double()
    y = y.long()
    if init is None:
        w = torch.zeros(n_classes, x.shape[1], dtype=torch.float64, device=x.device)
        counts = torch.bincount(y, minlength=n_classes).double()
        b = (counts.clamp_min(0.5) / counts.sum()).log()  # start at the class frequencies
    else:
        w, b = (t.detach().double().clone() for t in init)
    w.requires_grad_(True)
    b.requires_grad_(True)
    optimizer = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-5, tolerance_change=1e-9,
                                  history_size=20, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return w.detach(), b.detach()


def stratified_folds(y: torch.Tensor, n_folds: int, seed: int = 0) -> torch.Tensor:
    """Fold index (n,) in 0..n_folds-1: each class's rows shuffled (generator ``seed``) and dealt in turn."""
    generator = torch.Generator().manual_seed(int(seed))
    y = y.long().cpu()
    folds = torch.empty(len(y), dtype=torch.long)
    offset = 0
    for c in torch.unique(y):
        rows = torch.nonzero(y == c).flatten()
        rows = rows[torch.randperm(len(rows), generator=generator)]
        folds[rows] = (torch.arange(len(rows)) + offset) % n_folds
        offset += len(rows)  # the next class starts where this one ended, so small classes spread over the folds
    return folds


def choose_l2(x: torch.Tensor, y: torch.Tensor, n_classes: int, grid=L2_GRID, seed: int = 0,
              held_out: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[float, list[float]]:
    """The penalty in ``grid`` with the lowest held-out log loss (nats per row) of fits on x (n, p), y (n,).

    Held out: the rows ``held_out`` = (x_val, y_val) when given (one fit per penalty: for large tables), else
    stratified K-fold cross-validation over x, K = min(MAX_FOLDS, rows of the smallest class); with K < 2 (a class
    with one row) the middle of the grid. The grid is walked from the strongest penalty down, each fit
    warm-started from the one before, and the walk ends once the loss has risen twice in a row (the curve is
    U-shaped, and weak penalties cost the most iterations). Returns (l2, loss per grid value, NaN where not reached).
    """
    grid = sorted((float(v) for v in grid), reverse=True)
    y = y.long()
    if held_out is not None:
        splits = [(slice(None), held_out)]  # every row trains (a view: no copy of x per penalty)
    else:
        smallest = int(torch.bincount(y, minlength=n_classes)[torch.unique(y)].min())
        n_folds = min(MAX_FOLDS, smallest)
        if n_folds < 2:
            return grid[len(grid) // 2], [math.nan] * len(grid)
        folds = stratified_folds(y, n_folds, seed).to(x.device)
        splits = [(folds != k, (x[folds == k], y[folds == k])) for k in range(n_folds)]
    n_scored = sum(len(test_y) for _, (_, test_y) in splits)
    losses, params = [math.nan] * len(grid), [None] * len(splits)
    for i, l2 in enumerate(grid):
        total = 0.0
        for k, (train, (test_x, test_y)) in enumerate(splits):
            params[k] = fit_logistic(x[train], y[train], n_classes, l2, init=params[k])
            w, b = params[k]
            total += float(F.cross_entropy(test_x.double() @ w.T + b, test_y.long(), reduction="sum"))
        losses[i] = total / n_scored
        if i >= 2 and losses[i] > losses[i - 1] > losses[i - 2]:
            break
    best = min(range(len(grid)), key=lambda i: math.inf if math.isnan(losses[i]) else losses[i])
    return grid[best], losses

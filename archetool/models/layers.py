"""Small building blocks shared by the models."""

from __future__ import annotations

from torch import nn


def mlp(n_in: int, hidden: list[int] | tuple[int, ...], n_out: int | None = None, dropout: float = 0.0) -> nn.Sequential:
    """Linear -> LayerNorm -> SiLU (-> Dropout) for each hidden width, then an optional linear head.

    (n, n_in) -> (n, hidden[-1]) or (n, n_out) when ``n_out`` is given.
    """
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.LayerNorm(h), nn.SiLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = h
    if n_out is not None:
        layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def gaussian_kl_standard(mu, log_var):
    """KL(N(mu, exp(log_var)) || N(0, I)) per sample and dimension, shape like ``mu``."""
    return 0.5 * (mu.pow(2) + log_var.exp() - 1.0 - log_var)

"""Observation models p(x | decoder output) for the decoders.

``nll(out, x)`` returns the per-sample negative log-likelihood, shape (n,), summed over features.
``mean(out)`` maps decoder output (n, p) to E[x] in model space (probabilities for Bernoulli).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class GaussianLikelihood(nn.Module):
    """N(x; out, sigma^2) with one learned log-variance per feature (features are standardised)."""

    name = "gaussian"

    def __init__(self, n_features: int):
        super().__init__()
        self.log_var = nn.Parameter(torch.zeros(n_features))

    def nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        log_var = self.log_var.clamp(-6.0, 6.0)
        per_feature = 0.5 * ((x - out) ** 2 * torch.exp(-log_var) + log_var + math.log(2 * math.pi))
        return per_feature.sum(-1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return out


class BernoulliLikelihood(nn.Module):
    """Bernoulli(x; sigmoid(out)) for binary features such as Morgan bit fingerprints."""

    name = "bernoulli"

    def __init__(self, n_features: int):
        super().__init__()

    def nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(-1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out)


class MixedLikelihood(nn.Module):
    """Bernoulli for the first ``n_binary`` features (fingerprint bits), Gaussian for the rest (descriptors).

    Named ``"mixed:<n_binary>"``.
    """

    def __init__(self, n_features: int, n_binary: int):
        super().__init__()
        if not 0 < n_binary < n_features:
            raise ValueError(f"mixed likelihood needs 0 < n_binary < n_features, got {n_binary} of {n_features}")
        self.n_binary = n_binary
        self.name = f"mixed:{n_binary}"
        self.bits = BernoulliLikelihood(n_binary)
        self.values = GaussianLikelihood(n_features - n_binary)

    def nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        b = self.n_binary
        return self.bits.nll(out[:, :b], x[:, :b]) + self.values.nll(out[:, b:], x[:, b:])

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        b = self.n_binary
        return torch.cat([self.bits.mean(out[:, :b]), self.values.mean(out[:, b:])], dim=1)


LIKELIHOODS = {"gaussian": GaussianLikelihood, "bernoulli": BernoulliLikelihood}


def make_likelihood(name: str, n_features: int) -> nn.Module:
    """"gaussian", "bernoulli" or "mixed:<n_binary>"."""
    if name.startswith("mixed:"):
        return MixedLikelihood(n_features, int(name.split(":", 1)[1]))
    try:
        return LIKELIHOODS[name](n_features)
    except KeyError:
        raise ValueError(f"unknown likelihood {name!r}; choose gaussian, bernoulli or mixed:<n_binary>") from None

"""Observation models p(x | decoder output) for the decoders.

``nll(out, x)`` returns the per-sample negative log-likelihood, shape (n,), summed over features.
``mean(out)`` maps decoder output (n, p) to E[x] in model space (probabilities for Bernoulli,
log1p of expected counts for the negative binomial).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


VARIANCES = ("learned", "calibrated")
LOG_VAR_MIN, LOG_VAR_MAX = -6.0, 6.0


class GaussianLikelihood(nn.Module):
    """N(x; out, sigma^2) with one log-variance per feature (features are standardised).

    variance="learned":    log sigma^2 is a parameter trained by gradient like the weights. Adam moves it
                           by about lr per step, so it lags far behind the residuals (1 -> 0.01 takes
                           thousands of steps) and the reconstruction stays under-weighted meanwhile.
    variance="calibrated": sigma^2 tracks the residuals: in training, each batch moves it toward the
                           batch's per-feature mean squared error (exponential average, ``momentum``),
                           without gradient -- the optimal-variance decoder of sigma-VAE (Rybkin et al.,
                           2021), kept per feature. Stored as a buffer under the same key ``log_var``.
    """

    name = "gaussian"

    def __init__(self, n_features: int, variance: str = "learned", momentum: float = 0.05):
        super().__init__()
        if variance not in VARIANCES:
            raise ValueError(f"unknown likelihood variance {variance!r}; choose one of {VARIANCES}")
        self.variance, self.momentum = variance, float(momentum)
        if variance == "learned":
            self.log_var = nn.Parameter(torch.zeros(n_features))
        else:
            self.register_buffer("log_var", torch.zeros(n_features))

    @torch.no_grad()
    def _calibrate(self, out: torch.Tensor, x: torch.Tensor) -> None:
        mse = (x - out).pow(2).mean(0).clamp_min(math.exp(LOG_VAR_MIN))  # (p,)
        self.log_var.copy_(torch.lerp(self.log_var.exp(), mse, self.momentum).log())

    def nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.variance == "calibrated" and self.training and torch.is_grad_enabled():
            self._calibrate(out, x)
        log_var = self.log_var.clamp(LOG_VAR_MIN, LOG_VAR_MAX)
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

    def __init__(self, n_features: int, n_binary: int, variance: str = "learned"):
        super().__init__()
        if not 0 < n_binary < n_features:
            raise ValueError(f"mixed likelihood needs 0 < n_binary < n_features, got {n_binary} of {n_features}")
        self.n_binary = n_binary
        self.name = f"mixed:{n_binary}"
        self.bits = BernoulliLikelihood(n_binary)
        self.values = GaussianLikelihood(n_features - n_binary, variance)

    def nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        b = self.n_binary
        return self.bits.nll(out[:, :b], x[:, :b]) + self.values.nll(out[:, b:], x[:, b:])

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        b = self.n_binary
        return torch.cat([self.bits.mean(out[:, :b]), self.values.mean(out[:, b:])], dim=1)


class NegativeBinomialLikelihood(nn.Module):
    """NB(counts; mu, theta) for raw counts (scVI-style), with per-cell library size.

    Model space is x = log1p(counts) (the encoder's input, see ``Preprocessing.x_transform``); the counts are
    recovered as round(expm1(x)). The decoder output ``out`` (n, p) are logits over genes:
    mu = softmax(out) * library, library = the row's total count (n, 1), so the decoder models composition and
    the observed depth scales it. theta (p,) is a learned per-gene inverse dispersion (variance mu + mu^2/theta).
    ``mean(out)`` gives log1p(E[counts]) at the training rows' mean library size (buffer ``library``, an
    exponential average updated in training), so decoded prototypes are counts of a typical cell.
    """

    name = "nb"

    def __init__(self, n_features: int, momentum: float = 0.05):
        super().__init__()
        self.log_theta = nn.Parameter(torch.zeros(n_features))
        self.register_buffer("library", torch.zeros(()))
        self.momentum = float(momentum)

    @staticmethod
    def counts(x: torch.Tensor) -> torch.Tensor:
        """Model space log1p(counts) -> counts (n, p)."""
        return torch.expm1(x).round().clamp_min(0)

    def log_prob(self, out: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """log NB(counts | softmax(out) * library, theta), per row and gene: (n, p)."""
        library = counts.sum(-1, keepdim=True)
        log_mu = F.log_softmax(out, dim=-1) + torch.log(library.clamp_min(1.0))
        log_theta = self.log_theta.clamp(-10.0, 12.0)
        theta = log_theta.exp()
        log_theta_mu = torch.logaddexp(log_theta, log_mu)  # log(theta + mu)
        return (torch.lgamma(counts + theta) - torch.lgamma(theta) - torch.lgamma(counts + 1.0)
                + theta * (log_theta - log_theta_mu) + counts * (log_mu - log_theta_mu))

    def nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        counts = self.counts(x)
        if self.training and torch.is_grad_enabled():
            with torch.no_grad():
                mean_library = counts.sum(-1).mean()
                first = self.library <= 0
                self.library.copy_(torch.where(first, mean_library, torch.lerp(self.library, mean_library, self.momentum)))
        return -self.log_prob(out, counts).sum(-1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return torch.log1p(torch.softmax(out, dim=-1) * self.library.clamp_min(1.0))


def make_likelihood(name: str, n_features: int, variance: str = "learned") -> nn.Module:
    """"gaussian", "bernoulli", "mixed:<n_binary>" or "nb"; ``variance`` is the Gaussian variance mode."""
    if name == "nb":
        return NegativeBinomialLikelihood(n_features)
    if name.startswith("mixed:"):
        return MixedLikelihood(n_features, int(name.split(":", 1)[1]), variance)
    if name == "gaussian":
        return GaussianLikelihood(n_features, variance)
    if name == "bernoulli":
        return BernoulliLikelihood(n_features)
    raise ValueError(f"unknown likelihood {name!r}; choose gaussian, bernoulli, nb or mixed:<n_binary>")

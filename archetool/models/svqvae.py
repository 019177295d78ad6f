"""Supervised VQ-VAE (DESIGN §1.3): one global code per class, code k tied to class k.

Shapes: n samples, p features, K classes (= codes), D = ``code_dim``.

* Encoder  z_e = tanh(f(x))                          (n, p) -> (n, D), inside [-1, 1]^D
* Codebook e_1..e_K = ``nn.Embedding(K, D)``         (K, D)
* Decoder  g(z_q) -> likelihood parameters           (n, D) -> (n, p)

Training: the label y picks the code, z_q = e_y, handed to the decoder with the straight-through
estimator z_e + sg(e_y - z_e) (the decoder sees class codes, so reconstructions are class
prototypes; per-sample detail lives in z_e). With squared distances d(a, b) = ||a - b||^2 and
c = the code nearest z_e among the wrong ones (c != y):

    loss = recon + d(sg z_e, e_y) + beta * d(z_e, sg e_y) + repulsion

``repulsion="unbounded"`` (the reference):
    repulsion = -[d(sg z_e, e_c) + alpha * d(z_e, sg e_c)]
    The push on e_c grows with its distance, so a code that is "nearest wrong" for more samples
    than it has its own drifts without bound.

``repulsion="hinge"`` (default): a triplet margin loss on both sides, m = margin * D (the margin
is per code dimension, i.e. on the mean squared distance), d_y capped at 4D (the largest squared
distance inside [-1, 1]^D):
    repulsion = relu(m + min(d(sg z_e, sg e_y), 4D) - d(sg z_e, e_c))     (moves e_c only)
              +      relu(m + d(z_e, sg e_y) - d(z_e, sg e_c))             (moves z_e only)
    It is zero once z_e is closer to its own code than to any wrong one by m, so pushing stops
    when classes are separated. e_c is pushed only while ||z_e - e_c||^2 < (margin + 4) D with
    z_e in [-1, 1]^D, hence ||e_c|| stays below sqrt(D) (1 + sqrt(margin + 4)) (up to one
    optimiser step) and the always-on codebook pull draws it back toward its class.
    The encoder side has weight 1, not alpha: with bounded codes the encoder must do the
    separating that the reference leaves to runaway codes (alpha only weights "unbounded").

Prediction: nearest code argmin_k ||z_e - e_k||.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from archetool.models.base import ArchetoolModule
from archetool.models.layers import mlp

REPULSIONS = ("hinge", "unbounded")


def sq_distances(z: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances: (n, D), (K, D) -> (n, K)."""
    diff = rearrange(z, "n d -> n 1 d") - rearrange(codes, "k d -> 1 k d")
    return diff.pow(2).sum(-1)


def _sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise squared distance: (n, D), (n, D) -> (n,)."""
    return (a - b).pow(2).sum(-1)


class SVQVAE(ArchetoolModule):
    """Supervised VQ-VAE with a class-tied codebook; see the module docstring for the loss.

    n_features: p; n_classes: K (>= 1); code_dim: D; hidden: encoder widths (decoder mirrors them);
    likelihood: "gaussian" | "bernoulli"; beta: commitment weight; alpha: encoder-side repulsion
    weight of the "unbounded" variant; repulsion: "hinge" (bounded, default) | "unbounded"
    (reference); margin: hinge margin on the mean squared distance per code dimension;
    dropout: MLP dropout.
    """

    kind = "svqvae"
    needs = ("label",)

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        code_dim: int = 16,
        hidden: list[int] | tuple[int, ...] = (256, 128),
        likelihood: str = "gaussian",
        beta: float = 0.25,
        alpha: float = 0.1,
        repulsion: str = "hinge",
        margin: float = 1.0,
        dropout: float = 0.0,
    ):
        super().__init__(n_features, likelihood)
        if repulsion not in REPULSIONS:
            raise ValueError(f"unknown repulsion {repulsion!r}; choose one of {list(REPULSIONS)}")
        if int(n_classes) < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        self.n_classes = int(n_classes)
        self.code_dim = int(code_dim)
        self.hidden = [int(h) for h in hidden]
        self.likelihood_name = likelihood
        self.beta = float(beta)
        self.alpha = float(alpha)
        self.repulsion = repulsion
        self.margin = float(margin)
        self.dropout = float(dropout)

        self.encoder = mlp(self.n_features, self.hidden, self.code_dim, self.dropout)
        self.codebook = nn.Embedding(self.n_classes, self.code_dim)
        nn.init.uniform_(self.codebook.weight, -0.5, 0.5)
        self.decoder = mlp(self.code_dim, self.hidden[::-1], self.n_features, self.dropout)

    # --- construction -------------------------------------------------------------------------
    def hparams(self) -> dict:
        return {
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "code_dim": self.code_dim,
            "hidden": list(self.hidden),
            "likelihood": self.likelihood_name,
            "beta": self.beta,
            "alpha": self.alpha,
            "repulsion": self.repulsion,
            "margin": self.margin,
            "dropout": self.dropout,
        }

    @property
    def latent_dim(self) -> int:
        return self.code_dim

    # --- pieces -------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z_e = tanh(f(x)): (n, p) -> (n, D)."""
        return torch.tanh(self.encoder(x))

    def codes(self) -> torch.Tensor:
        """The class codes (global class representations), detached: (K, D)."""
        return self.codebook.weight.detach().clone()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """E[x] in model space for codes or embeddings: (n, D) -> (n, p)."""
        return self.likelihood.mean(self.decoder(z))

    # --- training -----------------------------------------------------------------------------
    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Batch means of the loss terms, each as it enters the loss (weights applied).

        batch["x"]: (n, p) float, batch["label"]: (n,) long.
        Returns scalars "loss" = "recon" + "codebook" + "commitment" + "repulsion".
        """
        x, y = batch["x"], batch["label"].long()
        z_e = self.encode(x)  # (n, D)
        e_y = self.codebook(y)  # (n, D)
        z_q = z_e + (e_y - z_e).detach()  # straight-through: value e_y, gradient to z_e
        recon = self.likelihood.nll(self.decoder(z_q), x).mean()

        codebook = _sq(z_e.detach(), e_y).mean()
        commitment = self.beta * _sq(z_e, e_y.detach()).mean()

        if self.n_classes > 1:
            with torch.no_grad():  # nearest wrong code c != y
                d = sq_distances(z_e, self.codebook.weight)  # (n, K)
                d = d.scatter(1, y[:, None], float("inf"))
                c = d.argmin(1)
            e_c = self.codebook(c)
            if self.repulsion == "unbounded":
                rep = -(_sq(z_e.detach(), e_c) + self.alpha * _sq(z_e, e_c.detach()))
            else:
                m, d_max = self.margin * self.code_dim, 4.0 * self.code_dim
                zd, eyd, ecd = z_e.detach(), e_y.detach(), e_c.detach()
                rep_codes = F.relu(m + _sq(zd, eyd).clamp(max=d_max) - _sq(zd, e_c))
                rep_enc = F.relu(m + _sq(z_e, eyd) - _sq(z_e, ecd))
                rep = rep_codes + rep_enc
            repulsion = rep.mean()
        else:
            repulsion = z_e.new_zeros(())

        loss = recon + codebook + commitment + repulsion
        return {
            "loss": loss,
            "recon": recon,
            "codebook": codebook,
            "commitment": commitment,
            "repulsion": repulsion,
        }

    @torch.no_grad()
    def metrics(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """{"accuracy": number of rows whose nearest code is their label} (a sum over rows)."""
        pred = self.predict(batch["x"])
        return {"accuracy": float((pred == batch["label"].to(pred.device).long()).sum())}

    # --- inference ----------------------------------------------------------------------------
    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(n, p) -> {"z": z_e (n, D), "pred": nearest code (n,) long,
        "distance": Euclidean distance to it (n,), "distances": to every code (n, K)}."""
        z = self.encode(x)
        distances = sq_distances(z, self.codebook.weight).clamp_min(0).sqrt()
        distance, pred = distances.min(1)
        return {"z": z, "pred": pred, "distance": distance, "distances": distances}

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest-code class index: (n, p) -> (n,) long."""
        return sq_distances(self.encode(x), self.codebook.weight).argmin(1)

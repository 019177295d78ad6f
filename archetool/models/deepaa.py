"""Deep archetypal analysis with side information (DESIGN §1.1).

k fixed archetypes Z (k, d=k-1) at the vertices of a regular simplex; each sample is a convex
mixture A (n, k) of them, mu = A·Z; each archetype is a convex mixture B (k, n) of the batch's
samples, and ||Z - B·A·Z||² pulls the data out to fill the simplex. A side head predicts the
side variables from the same latent t, so the side information shapes what the latent keeps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from entmax import entmax15, sparsemax
from torch import nn

from archetool.models.base import ArchetoolModule
from archetool.models.layers import gaussian_kl_standard, mlp
from archetool.models.simplex import simplex_vertices

PRIORS = ("normal", "dirichlet")
WEIGHT_ACTIVATIONS = ("sparsemax", "softmax", "entmax15")


class DeepAA(ArchetoolModule):
    """Deep AA as a variational information bottleneck.

    n_features:      p
    n_archetypes:    k >= 2 (latent dimension d = k - 1)
    n_side:          s, number of side variables (0 = none)
    hidden:          encoder widths (the decoder mirrors them)
    weights_activation: maps the A head's logits onto the simplex. "sparsemax" (default; Martins &
                     Astudillo, 2016) reaches a vertex exactly with finite logits, so the archetype
                     loss can be met by the few most extreme samples of a batch; "softmax" (the
                     reference) only approaches a vertex as logits diverge, and its push drags a whole
                     cap of near-vertex samples onto the vertex, which pulls decode(Z) inside the data;
                     "entmax15" (1.5-entmax) lies between the two
    crowding_weight: weight of :meth:`crowding`, which keeps all but each batch's purest row per archetype
                     off the vertices (default 10000; 0 = off, as in models saved before it existed).
                     Without it sparsemax puts most rows of a small real table exactly on a vertex
    crowding_margin: a row is held to a lead of at most crowding_margin x the lead that reaches a vertex
    crowding_start:  fraction of the epochs trained without the penalty (default 0.5), so the archetypes are found
                     first; on from the first epoch (0, models saved before this option) the penalty made some
                     fits on curved data fold, with archetype errors 2x linear AA's (issue 17)
    crowding_ramp:   fraction of the epochs over which the penalty then rises linearly to crowding_weight
                     (default 0.2); early stopping waits until the ramp is over
    crowding_detach: the penalty's gradient reaches only the A head (the encoder's features are detached); off by
                     default: it left 22 % of wine's rows on a vertex
    likelihood_variance: Gaussian variance mode, "calibrated" (default) or "learned"; see likelihoods.py
    side_weight:     lambda_side on the side NLL (summed over side variables); default max(100, p/2), so the
                     side term keeps its weight against a reconstruction NLL summed over p features
    archetype_weight: lambda_AT on the archetype loss (per-entry mean squared error) once the annealing is over
    archetype_weight_start: lambda_AT at the first epoch (default 1000; None = archetype_weight throughout, as in models
                     saved before it existed), lowered geometrically to archetype_weight over the first
                     ``anneal_fraction`` of training, like beta. A strong early pull fills the simplex before the layout
                     sets: with 100 throughout, 3 of 5 single fits at k = 4 and 4 of 5 at k = 5 on warped simplex data
                     folded (one archetype inside the data, error ~linear AA's), and so did one linear k = 4 fit; with
                     1000 throughout the real tables' rows crowded the vertices again (issue 17)
    beta_start, beta_end: KL weight, divided by a constant factor every epoch over the first
                     ``anneal_fraction`` of training, from beta_start down to beta_end
    prior:           "normal" (N(0, I)) or "dirichlet" (a ~ Dir(alpha), t ~ N(a·Z, prior_scale² I))
    """

    kind = "deepaa"
    needs = ("side",)
    saved_defaults = {"weights_activation": "softmax", "likelihood_variance": "learned", "crowding_weight": 0.0,
                      "crowding_start": 0.0, "crowding_ramp": 0.0, "crowding_detach": False,
                      "archetype_weight_start": None}
    final_lr_fraction = 0.01  # the decoder settles: decode(Z) off the data plane 0.013 -> 0.004 (linear k=3)
    # wine's 160 training rows gave 2 steps an epoch with batches of 128, so the late crowding penalty and the
    # annealed archetype weight had ~60 steps to settle: held-out side R² 0.21 (8 seeds) -> 0.57 with >= 8 steps
    min_steps_per_epoch = 8

    def __init__(
        self,
        n_features: int,
        n_archetypes: int = 4,
        n_side: int = 0,
        hidden: list[int] | tuple[int, ...] = (256, 128),
        likelihood: str = "gaussian",
        likelihood_variance: str = "calibrated",
        weights_activation: str = "sparsemax",
        crowding_weight: float = 10000.0,
        crowding_margin: float = 0.98,
        crowding_start: float = 0.5,
        crowding_ramp: float = 0.2,
        crowding_detach: bool = False,
        side_weight: float | None = None,
        archetype_weight: float = 100.0,
        archetype_weight_start: float | None = 1000.0,
        beta_start: float = 10.0,
        beta_end: float = 0.1,
        anneal_fraction: float = 0.5,
        prior: str = "normal",
        dirichlet_alpha: float = 1.0,
        prior_scale: float = 0.25,
        prior_samples: int = 64,
        dropout: float = 0.0,
    ):
        super().__init__(n_features, likelihood, likelihood_variance)
        if n_archetypes < 2:
            raise ValueError(f"deepaa needs at least 2 archetypes, got k={n_archetypes}")
        if weights_activation not in WEIGHT_ACTIVATIONS:
            raise ValueError(f"unknown weights_activation {weights_activation!r}; choose one of {WEIGHT_ACTIVATIONS}")
        if crowding_weight < 0 or not 0 < crowding_margin <= 1:
            raise ValueError(f"crowding_weight must be >= 0 and crowding_margin in (0, 1], got {crowding_weight}, {crowding_margin}")
        if not (0 <= crowding_start <= 1 and 0 <= crowding_ramp <= 1):
            raise ValueError(f"crowding_start and crowding_ramp are fractions of the epochs in [0, 1], got {crowding_start}, {crowding_ramp}")
        if archetype_weight < 0 or (archetype_weight_start is not None and archetype_weight_start < 0):
            raise ValueError(f"archetype_weight and archetype_weight_start must be >= 0, got {archetype_weight}, {archetype_weight_start}")
        if prior not in PRIORS:
            raise ValueError(f"unknown prior {prior!r}; choose one of {PRIORS}")
        self.n_archetypes = int(n_archetypes)
        self.n_side = int(n_side)
        self.hidden = [int(h) for h in hidden]
        self.likelihood_variance = likelihood_variance
        self.weights_activation = weights_activation
        self.crowding_weight = float(crowding_weight)
        self.crowding_margin = float(crowding_margin)
        self.crowding_start, self.crowding_ramp = float(crowding_start), float(crowding_ramp)
        self.crowding_detach = bool(crowding_detach)
        self.crowding_scale = 1.0 if self.crowding_start == 0 and self.crowding_ramp == 0 else 0.0  # set per epoch
        self.side_weight = float(side_weight) if side_weight is not None else max(100.0, n_features / 2)
        self.archetype_weight = float(archetype_weight)
        self.archetype_weight_start = None if archetype_weight_start is None else float(archetype_weight_start)
        self.archetype_now = self.archetype_weight  # lambda_AT of the current epoch (on_epoch_start)
        self.beta_start, self.beta_end = float(beta_start), float(beta_end)
        self.anneal_fraction = float(anneal_fraction)
        self.prior = prior
        self.dirichlet_alpha = float(dirichlet_alpha)
        self.prior_scale = float(prior_scale)
        self.prior_samples = int(prior_samples)
        self.dropout = float(dropout)
        self.beta = self.beta_start

        k, d = self.n_archetypes, self.n_archetypes - 1
        self.register_buffer("Z", simplex_vertices(k))  # (k, d), fixed, never trained
        self.encoder = mlp(n_features, self.hidden, dropout=self.dropout)
        width = self.hidden[-1]
        self.weights_head = nn.Linear(width, k)  # -> A
        self.batch_head = nn.Linear(width, k)  # -> B (softmax over the batch)
        self.scale_head = nn.Linear(width, d)  # -> sigma
        self.decoder = mlp(d, self.hidden[::-1], n_features, dropout=self.dropout)
        self.side_head = mlp(d, [max(16, self.hidden[-1] // 2)], self.n_side) if self.n_side else None

    def hparams(self) -> dict:
        return dict(
            n_features=self.n_features, n_archetypes=self.n_archetypes, n_side=self.n_side,
            hidden=list(self.hidden), likelihood=self.likelihood.name, likelihood_variance=self.likelihood_variance,
            weights_activation=self.weights_activation, crowding_weight=self.crowding_weight,
            crowding_margin=self.crowding_margin, crowding_start=self.crowding_start, crowding_ramp=self.crowding_ramp,
            crowding_detach=self.crowding_detach, side_weight=self.side_weight,
            archetype_weight=self.archetype_weight, archetype_weight_start=self.archetype_weight_start,
            beta_start=self.beta_start, beta_end=self.beta_end,
            anneal_fraction=self.anneal_fraction, prior=self.prior, dirichlet_alpha=self.dirichlet_alpha,
            prior_scale=self.prior_scale, prior_samples=self.prior_samples, dropout=self.dropout,
        )

    @property
    def latent_dim(self) -> int:
        return self.n_archetypes - 1

    # --- pieces -------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x (n, p) -> A (n, k), B (k, n), mu (n, d), sigma (n, d)."""
        h = self.encoder(x)
        logits = self.weights_head(h)
        weights = self.activate(logits)
        batch_mix = rearrange(torch.softmax(self.batch_head(h), dim=0), "n k -> k n")
        sigma = F.softplus(self.scale_head(h)) + 1e-4
        return {"A": weights, "logits": logits, "B": batch_mix, "mu": weights @ self.Z, "sigma": sigma, "h": h}

    def mixture_weights(self, h: torch.Tensor) -> torch.Tensor:
        """Encoder features h (n, hidden[-1]) -> mixture weights A (n, k) on the simplex."""
        return self.activate(self.weights_head(h))

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        """A head's logits (n, k) -> mixture weights (n, k) by ``weights_activation``."""
        if self.weights_activation == "sparsemax":
            return sparsemax(logits, dim=-1)
        if self.weights_activation == "entmax15":
            return entmax15(logits, dim=-1)
        return torch.softmax(logits, dim=-1)

    def pure_gap(self) -> float:
        """The lead of the largest logit over the runner-up at which a row's weight on its archetype reaches 1
        (sparsemax: 1, 1.5-entmax: 2) or, for softmax, 0.999 when the other k - 1 logits are equal."""
        if self.weights_activation == "sparsemax":
            return 1.0
        if self.weights_activation == "entmax15":
            return 2.0
        return math.log(999.0 * (self.n_archetypes - 1))

    def crowding(self, logits: torch.Tensor) -> torch.Tensor:
        """Penalty on rows crowding onto a vertex, logits (n, k) -> scalar:
        sum over rows of relu(lead - crowding_margin·pure_gap)², divided by n.

        ``lead`` is a row's largest logit minus its runner-up. Left out: for each archetype, the one row of the
        batch that leads it most, so the archetype loss can still be met by the purest rows while every other
        row is held just inside the simplex (sparsemax weight <= (1 + 0.98)/2 = 0.99 on any archetype), where the
        reconstruction and side terms still have a gradient; on a sparsemax vertex they have none.
        """
        n, k = logits.shape
        top = logits.topk(2, dim=-1)
        runner_up = torch.where(top.indices[:, :1] == torch.arange(k, device=logits.device), top.values[:, 1:2],
                                top.values[:, :1])  # (n, k): the largest logit other than column j
        leads = logits - runner_up  # (n, k); positive only in the row's own top column
        free = torch.zeros(n, dtype=torch.bool, device=logits.device)
        free[leads.detach().argmax(0)] = True  # the purest row of each archetype
        excess = F.relu(top.values[:, 0] - top.values[:, 1] - self.crowding_margin * self.pure_gap())
        return (excess[~free] ** 2).sum() / n

    def decode(self, t: torch.Tensor) -> torch.Tensor:
        """Latent t (m, d) -> E[x] (m, p) in model space."""
        return self.likelihood.mean(self.decoder(t))

    def predict_side(self, t: torch.Tensor) -> torch.Tensor:
        """Latent t (m, d) -> standardised side predictions (m, s)."""
        if self.side_head is None:
            return t.new_zeros(t.shape[0], 0)
        return self.side_head(t)

    def read_dim(self, read: str) -> int:
        """Condition size the decoder's ``read`` adds: "side" the side values, "decoded" also the features."""
        if read == "latent":
            return 0
        if read == "side":
            return self.n_side
        if read == "decoded":
            return self.n_features + self.n_side
        return super().read_dim(read)

    def read_features(self, latent: torch.Tensor, read: str) -> torch.Tensor | None:
        """Latent t (n, d) -> [E[x | t] (n, p) for "decoded"], standardised side predictions (n, s)."""
        parts = ([self.decode(latent)] if read == "decoded" else []) + [self.predict_side(latent)]
        return torch.cat(parts, dim=-1)

    def archetype_loss(self, weights: torch.Tensor, batch_mix: torch.Tensor) -> torch.Tensor:
        """mean((Z - B·A·Z)²): the vertices rebuilt as convex mixtures of encoded samples."""
        return ((self.Z - batch_mix @ (weights @ self.Z)) ** 2).mean()

    def kl(self, t: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """KL(q(t|x) || prior) per sample, shape (n,). Closed form for "normal", Monte Carlo for "dirichlet"."""
        if self.prior == "normal":
            return gaussian_kl_standard(mu, 2 * sigma.log()).sum(-1)
        d = self.latent_dim
        log_q = torch.distributions.Normal(mu, sigma).log_prob(t).sum(-1)  # (n,)
        conc = torch.full((self.n_archetypes,), self.dirichlet_alpha, device=t.device)
        a = torch.distributions.Dirichlet(conc).sample((self.prior_samples,))  # (m, k)
        centres = a @ self.Z  # (m, d)
        sq = torch.cdist(t, centres).pow(2)  # (n, m)
        log_comp = -0.5 * sq / self.prior_scale**2 - d * math.log(self.prior_scale) - 0.5 * d * math.log(2 * math.pi)
        log_p = torch.logsumexp(log_comp, dim=1) - math.log(self.prior_samples)
        return log_q - log_p

    # --- training -----------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int, n_epochs: int) -> None:
        span = max(1.0, self.anneal_fraction * (n_epochs - 1))
        progress = min(1.0, epoch / span)
        self.beta = self.beta_start * (self.beta_end / self.beta_start) ** progress
        if self.archetype_weight_start and self.archetype_weight > 0:
            self.archetype_now = self.archetype_weight_start * (self.archetype_weight / self.archetype_weight_start) ** progress
        self.crowding_scale = self.crowding_schedule(epoch, n_epochs)

    def crowding_schedule(self, epoch: int, n_epochs: int) -> float:
        """Factor in [0, 1] on crowding_weight at 0-based ``epoch``: 0 before crowding_start x (n_epochs - 1),
        then a linear rise over crowding_ramp x (n_epochs - 1) epochs."""
        start = self.crowding_start * (n_epochs - 1)
        ramp = self.crowding_ramp * (n_epochs - 1)
        if epoch < start:
            return 0.0
        return 1.0 if ramp <= 0 else min(1.0, (epoch - start + 1) / ramp)

    def annealing_epochs(self, n_epochs: int) -> int:
        """Epochs before early stopping may count: the KL annealing and the crowding penalty's ramp."""
        crowding = (self.crowding_start + self.crowding_ramp) if self.crowding_weight else 0.0
        return int(math.ceil(max(self.anneal_fraction, crowding) * (n_epochs - 1)))

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["x"]
        enc = self.encode(x)
        t = enc["mu"] + enc["sigma"] * torch.randn_like(enc["sigma"])
        recon = self.likelihood.nll(self.decoder(t), x).mean()
        kl = self.kl(t, enc["mu"], enc["sigma"]).mean()
        at = self.archetype_loss(enc["A"], enc["B"])
        terms = {"recon": recon, "kl": kl, "archetype": at}
        loss = recon + self.beta * kl + self.archetype_now * at
        if self.crowding_weight:
            logits = self.weights_head(enc["h"].detach()) if self.crowding_detach else enc["logits"]
            terms["crowding"] = self.crowding(logits)
            loss = loss + self.crowding_weight * self.crowding_scale * terms["crowding"]
        if self.side_head is not None:
            side_nll = 0.5 * ((self.side_head(t) - batch["side"]) ** 2).sum(-1).mean()
            terms["side"] = side_nll
            loss = loss + self.side_weight * side_nll
        terms["loss"] = loss
        return self.add_token_loss(terms, batch, self.sequence_condition(t) if self.sequence_decoder is not None else t)

    condition_parts = ("condition_mu", "condition_sigma")

    @torch.no_grad()
    def decoder_condition_parts(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x (n, p) -> the posterior's mean and scale (n, d) each: the decoder reads t = mu + sigma·eps."""
        enc = self.encode(x)
        return {"condition_mu": enc["mu"], "condition_sigma": enc["sigma"]}

    def decoder_condition(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """The decoder's condition at t = mu + sigma·eps (n, d), eps ~ N(0, 1), as ``loss_terms`` gives it (with
        what the decoder's ``read`` setting adds: :meth:`sequence_condition`)."""
        t = parts["condition_mu"] + parts["condition_sigma"] * torch.randn_like(parts["condition_sigma"])
        decoder = self.sequence_decoder
        if decoder.training and decoder.mix > 0 and len(t) > 1:  # see SequenceDecoder's mix
            moved = torch.rand(len(t), 1, device=t.device) < decoder.mix
            lam = 0.5 + 0.5 * torch.rand(len(t), 1, device=t.device)
            t = torch.where(moved, lam * t + (1 - lam) * t[torch.randperm(len(t), device=t.device)], t)
        return self.sequence_condition(t)

    @torch.no_grad()
    def metrics(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        x = batch["x"]
        enc = self.encode(x)
        out = {"recon_mse": float(((self.decode(enc["mu"]) - x) ** 2).mean(-1).sum())}
        if self.side_head is not None:
            out["side_mse"] = float(((self.side_head(enc["mu"]) - batch["side"]) ** 2).mean(-1).sum())
        return out

    # --- inference ----------------------------------------------------------------------------
    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x (n, p) -> z = mu (n, d), weights A (n, k), side (n, s) standardised predictions.

        The same values as :meth:`encode`, without its training-only heads (B over the batch, sigma):
        15 % less time per row.
        """
        weights = self.mixture_weights(self.encoder(x))
        mu = weights @ self.Z
        return {"z": mu, "weights": weights, "side": self.predict_side(mu)}

    @torch.no_grad()
    def sample_latent(self, n: int, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw a ~ Dir(alpha·1) (n, k) and t = a·Z + temperature·prior_scale·eps (n, d).

        Seed with ``torch.manual_seed`` for reproducible draws.
        """
        conc = torch.full((self.n_archetypes,), self.dirichlet_alpha, device=self.Z.device)
        a = torch.distributions.Dirichlet(conc).sample((n,))
        return a, a @ self.Z + temperature * self.prior_scale * torch.randn(n, self.latent_dim, device=self.Z.device)

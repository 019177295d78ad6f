"""Supervised VQ-VAE (DESIGN §1.3): one global code per class, code k tied to class k.

Shapes: n samples, p features, K classes (= codes), D = ``code_dim``.

* Encoder  z_e = tanh(f(x))                          (n, p) -> (n, D), inside [-1, 1]^D
* Codebook e_1..e_K = ``nn.Embedding(K, D)``         (K, D)
* Decoder  g(z_q) -> likelihood parameters           (n, D) -> (n, p)

Training: the label y picks the code, z_q = e_y, handed to the decoder with the straight-through
estimator z_e + sg(e_y - z_e) (the decoder sees class codes, so reconstructions are class
prototypes; per-sample detail lives in z_e). With squared distances d(a, b) = ||a - b||^2 and
c = the code nearest z_e among the wrong ones (c != y):

    loss = recon_weight * NLL(x | g(z_q)) + d(sg z_e, e_y) + beta * d(z_e, sg e_y) + repulsion

Reconstruction weight (the fix for wide data). The NLL is a sum over the p features, so through the
straight-through estimator it gives z_e a per-sample push of size O(p) that no z_e can satisfy (the
decoder's input is e_y whatever z_e is), while the commitment and repulsion terms that place z_e are
O(D). With the plain sum (``recon_weight=1``) wide data drive z_e into tanh saturation (70 % of the
coordinates at |z| > 0.99 on the LINCS-shaped set) and the held-out nearest-code accuracy collapses
(benchmarks/svqvae_accuracy.py, 3 seeds: sklearn digits p=64 0.64, LINCS-shaped p=978 with 60 classes
0.23). The default ``recon_weight=None`` uses 1/p: the reconstruction enters as the *mean* NLL per
feature, as mean-reduced MSE does in the reference implementation, so the balance of the terms no
longer depends on p (with the other defaults: digits 0.979, LINCS-shaped 0.571; logistic regression
on the same splits 0.965 and 0.558). The decoder itself is unaffected (Adam's updates do not depend on
the scale of its only loss term). A weight on the straight-through gradient, or an auxiliary decoder
path from z_e, were measured too and did not help held-out accuracy (see benchmarks/README_svqvae.md).

``repulsion="unbounded"`` (the reference):
    repulsion = -[d(sg z_e, e_c) + alpha * d(z_e, sg e_c)]
    The push on e_c grows with its distance, so a code that is "nearest wrong" for more samples
    than it has its own drifts without bound.

``repulsion="hinge"`` (default): a triplet margin loss on both sides, m = margin * D (the margin
is per code dimension, i.e. on the mean squared distance), d_y capped at 4D (the largest squared
distance inside [-1, 1]^D):
    repulsion = relu(m + min(d(sg z_e, sg e_y), 4D) - d(sg z_e, e_c))             (moves e_c only)
              + alpha * relu(m + d(z_e, sg e_y) - d(z_e, sg e_c))                   (moves z_e only)
    It is zero once z_e is closer to its own code than to any wrong one by m, so pushing stops
    when classes are separated. e_c is pushed only while ||z_e - e_c||^2 < (margin + 4) D with
    z_e in [-1, 1]^D, hence ||e_c|| stays below sqrt(D) (1 + sqrt(margin + 4)) (up to one
    optimiser step) and the always-on codebook pull draws it back toward its class.
    ``alpha`` weights the encoder side in both variants. The default margin (0.1 per dimension) can
    be met inside the tanh box by many classes at once; with margin 1 (m = D) the hinge cannot be
    met for more than a few classes and never switches off (LINCS-shaped: 0.528 against 0.571).
    alpha = 1 by default (LINCS-shaped 0.571, 3/3 seeds at or above logistic regression; the
    reference's 0.1 gives 0.573, 2/3). The reference's unbounded repulsion gives 0.026 there.

Code size: ``code_dim=None`` picks D = min(max(16, 2K), 128): 16 for few classes, two dimensions per
class up to 128 (60 LINCS-shaped classes: D = 16 gives 0.519, the default D = 120 0.571).

``input_dropout`` (default 0.2) drops input features while training the encoder: a denoising
regulariser for wide, noisy profiles such as L1000 signatures, where the encoder otherwise fits the
training rows' noise (LINCS-shaped: 0.560 without, 0.571 with).

Margin warm-up (``margin_warmup``, default 20 epochs, at most a quarter of the run): the margin grows
linearly from 0 to ``margin``; the model reports these epochs as annealing, so early stopping ignores
them. Reason: the codes start at random places, and while they and the encoder settle the held-out
distances first *rise* for 10-15 epochs even as held-out accuracy climbs (LINCS-shaped data: validation
loss 35.6 at epoch 2, 38.1 at epoch 8, 31.2 at epoch 30; accuracy 0.40 -> 0.56 -> 0.57), so a
patience of 15 kept epoch 2-6 models (``margin_warmup=0``: 0.457 held-out accuracy against 0.571).

Code initialisation (``code_init``, default "centroids", issue 17): before training, ``fit`` places the codes
at the class centroids of the training rows (model space), projected on their first D principal axes and
scaled so that the largest coordinate is 1 (the edge of the tanh box). The training objective says nothing
about how the codes lie relative to each other, so from a random start their distances kept no trace of
the classes' similarity: Spearman rho between code distances and class-centroid distances 0.00 on pbmc
and 0.02 on the LINCS plate, like a random codebook (benchmarks/results/code_meaning_before.md); from
the centroids training keeps much of that geometry (benchmarks/results/code_meaning.md). Models saved
before this was added were trained from "random" (``saved_defaults``; it matters only in training).

Softmax term (``ce_weight``, default 1, issue 17 round 3): ce_weight * cross-entropy of softmax_k(-||z_e - e_k||^2)
against the label, i.e. a prototype classifier's loss over *all* codes, where the hinge only sees the nearest
wrong one. It keeps pushing apart every code a row is close to, which the hinge stops doing once the margin to
the nearest is met. LINCS plate, 4 seeds, both with the small-table batch size: 0.296 -> 0.326 held-out accuracy,
balanced 0.301 -> 0.350 (logistic regression ~0.38; still short); digits, wine and MNIST-5k within one SD (figures in benchmarks/results/class_models_real_round3.md). Models saved before it existed were
trained without it (``saved_defaults``).

Few rows per class (``weight_decay``, ``hold_fraction``, issue 17 round 4). On a table with fewer than 10 rows
per class (:func:`few_rows_per_class`: rows given to ``fit`` < 10 K; the LINCS plate has 301 signatures of 60
perturbagens, 4 training rows each once the validation rows are out) ``fit`` sets weight_decay = 0.1, decoupled
(AdamW) weight decay on the encoder's weight matrices only, and hold_fraction = 0.5: early stopping neither stops
nor keeps a model in the first half of the run (:meth:`SVQVAE.annealing_epochs`; the margin warm-up itself is
unchanged). Elsewhere both are 0 and nothing changes. Reason: with few rows per class the validation loss rises for
~15 epochs after the margin warm-up while the training rows are fitted, then falls as the learning rate decays, so
patience 15 stopped every plate run at epoch 36 and kept epoch 21; held-out accuracy is better later. Plate, 13
split seeds never used for tuning: 0.319 / 0.327 -> 0.353 / 0.370 held-out accuracy / balanced accuracy (the hold
gives most of it, the weight decay ~0.01); logistic regression 0.413 / 0.413, so svqvae is still short on this plate
(it trains on 240 of the 301 rows; logistic regression on those 240 reached 0.34 on 8 tuning splits). Figures and the grid of what else
was tried: benchmarks/results/class_models_svqvae_round4.md. Models saved before this was added were trained with
0 / 0 (``saved_defaults``).

Prediction: nearest code argmin_k ||z_e - e_k||. Probabilities (``embed``'s "probs", for log loss and
calibrated confidence): softmax_k(-||z_e - e_k||^2 / T), the same argmax; ``fit`` sets the temperature T
to the value that minimises the log loss on its validation rows (:func:`fit_temperature`; a single number,
so it cannot overfit them), and saves it with the hyper-parameters. Models saved before it existed use T = 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from archetool.models.base import ArchetoolModule
from archetool.models.layers import mlp

REPULSIONS = ("hinge", "unbounded")
CODE_INITS = ("random", "centroids")
#: code_init="centroids": the largest coordinate of the scaled centroids (the tanh box is [-1, 1])
CODE_INIT_EDGE = 1.0


def sq_distances(z: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances: (n, D), (K, D) -> (n, K)."""
    diff = rearrange(z, "n d -> n 1 d") - rearrange(codes, "k d -> 1 k d")
    return diff.pow(2).sum(-1)


def _sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise squared distance: (n, D), (n, D) -> (n,)."""
    return (a - b).pow(2).sum(-1)


def fit_temperature(sq_dist: torch.Tensor, labels: torch.Tensor, n_grid: int = 241) -> float:
    """The T > 0 minimising the cross-entropy of softmax(-sq_dist / T) on sq_dist (n, K), labels (n,).

    The targets are the labels smoothed by one pseudo-row, (1 - e) onehot + e / K with e = 1 / (n + 1):
    with every row right (often, on a few validation rows) the plain log loss falls without end as T -> 0,
    which would make every later mistake cost without bound. A log-spaced grid from 1e-3 to 1e3 times the
    median squared distance (neighbouring values differ by 6 %: a 1-D search needs nothing finer).
    """
    sq_dist = sq_dist.double()
    n, k = sq_dist.shape
    eps = 1.0 / (n + 1)
    scale = float(sq_dist.median().clamp_min(1e-12))
    grid = scale * torch.logspace(-3, 3, n_grid, dtype=torch.float64)
    log_p = (-sq_dist[None] / grid[:, None, None]).log_softmax(-1)  # (g, n, K)
    own = log_p.gather(-1, labels.long()[None, :, None].expand(len(grid), -1, 1))[..., 0]  # (g, n)
    loss = -((1 - eps) * own + eps * log_p.mean(-1)).mean(1)
    return float(grid[int(loss.argmin())])


#: "few rows per class": fewer training rows per class than this (rows given to fit / classes) switches on the
#: small-table settings below (LINCS plate: 301 / 60 = 5; pbmc 56, wine 47, digits 144, MNIST-5k 400)
FEW_ROWS_PER_CLASS = 10
#: small-table settings: decoupled weight decay on the encoder's weight matrices, and the fraction of the run
#: during which early stopping neither stops nor keeps a model (issue 17, round 4)
FEW_ROWS_WEIGHT_DECAY, FEW_ROWS_HOLD = 0.1, 0.5


def few_rows_per_class(n_rows: int, n_classes: int) -> bool:
    """True when a table has fewer than :data:`FEW_ROWS_PER_CLASS` rows per class (the small-table settings)."""
    return int(n_rows) < FEW_ROWS_PER_CLASS * max(1, int(n_classes))


def auto_small_table(n_rows: int, n_classes: int) -> dict:
    """The default ``weight_decay`` and ``hold_fraction`` for a table of ``n_rows`` rows and ``n_classes`` classes:
    (0.1, 0.5) with few rows per class (:func:`few_rows_per_class`), else (0, 0)."""
    few = few_rows_per_class(n_rows, n_classes)
    return {"weight_decay": FEW_ROWS_WEIGHT_DECAY if few else 0.0, "hold_fraction": FEW_ROWS_HOLD if few else 0.0}


def auto_code_dim(n_classes: int) -> int:
    """Default code size: two dimensions per class, at least 16 and at most 128."""
    return int(min(max(16, 2 * n_classes), 128))


class SVQVAE(ArchetoolModule):
    """Supervised VQ-VAE with a class-tied codebook; see the module docstring for the loss.

    n_features: p; n_classes: K (>= 1); code_dim: D (None: ``auto_code_dim(K)``); hidden: encoder
    widths (decoder mirrors them); likelihood: "gaussian" | "bernoulli" | "mixed:<n>"; beta: commitment
    weight; alpha: encoder-side repulsion weight (both variants); repulsion: "hinge" (bounded, default)
    | "unbounded" (reference); margin: hinge margin on the mean squared distance per code dimension;
    recon_weight: weight of the summed reconstruction NLL (None: 1/p, the per-feature mean);
    input_dropout: dropout on the encoder's input while training; dropout: MLP dropout; ce_weight: weight of the
    softmax (prototype cross-entropy) term over all codes; weight_decay: decoupled weight decay on the encoder's
    weight matrices (None: 0; ``fit`` uses :func:`auto_small_table`); hold_fraction: the first fraction of the
    epochs in which early stopping neither stops nor keeps a model (None: 0; ``fit`` as weight_decay).
    """

    kind = "svqvae"
    needs = ("label",)
    # at least 8 steps an epoch (as deepaa), not nvae's 16: over seeds 0-2 and 4-6, pbmc held-out accuracy /
    # balanced accuracy 0.835 / 0.693 with 8, 0.816 / 0.678 with 16 (logistic regression 0.837 / 0.692); the LINCS
    # plate 0.299 / 0.310 with 8, 0.318 / 0.338 with 16 (both far below logistic regression's 0.395 / 0.388)
    # (benchmarks/results/class_models_svqvae_steps.md)
    min_steps_per_epoch = 8
    saved_defaults = {"temperature": None, "code_init": "random", "ce_weight": 0.0, "weight_decay": 0.0, "hold_fraction": 0.0}

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        code_dim: int | None = None,
        hidden: list[int] | tuple[int, ...] = (256, 128),
        likelihood: str = "gaussian",
        beta: float = 0.25,
        alpha: float = 1.0,
        repulsion: str = "hinge",
        margin: float = 0.1,
        recon_weight: float | None = None,
        input_dropout: float = 0.2,
        margin_warmup: int = 20,
        dropout: float = 0.0,
        temperature: float | None = None,
        code_init: str = "centroids",
        ce_weight: float = 1.0,
        weight_decay: float | None = None,
        hold_fraction: float | None = None,
    ):
        super().__init__(n_features, likelihood)
        if repulsion not in REPULSIONS:
            raise ValueError(f"unknown repulsion {repulsion!r}; choose one of {list(REPULSIONS)}")
        if int(n_classes) < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        if code_dim is not None and int(code_dim) < 1:
            raise ValueError(f"code_dim must be >= 1, got {code_dim}")
        if not 0.0 <= float(input_dropout) < 1.0:
            raise ValueError(f"input_dropout must be in [0, 1), got {input_dropout}")
        if recon_weight is not None and float(recon_weight) < 0:
            raise ValueError(f"recon_weight must be >= 0, got {recon_weight}")
        if int(margin_warmup) < 0:
            raise ValueError(f"margin_warmup must be >= 0, got {margin_warmup}")
        self.n_classes = int(n_classes)
        self.code_dim = auto_code_dim(self.n_classes) if code_dim is None else int(code_dim)
        self.hidden = [int(h) for h in hidden]
        self.likelihood_name = likelihood
        self.beta = float(beta)
        self.alpha = float(alpha)
        self.repulsion = repulsion
        self.margin = float(margin)
        self.recon_weight = 1.0 / self.n_features if recon_weight is None else float(recon_weight)
        self.input_dropout = float(input_dropout)
        self.margin_warmup = int(margin_warmup)
        self.dropout = float(dropout)
        if temperature is not None and not float(temperature) > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = None if temperature is None else float(temperature)  # set by fit (None: 1)
        if code_init not in CODE_INITS:
            raise ValueError(f"unknown code_init {code_init!r}; choose one of {list(CODE_INITS)}")
        self.code_init = code_init
        if not float(ce_weight) >= 0:
            raise ValueError(f"ce_weight must be >= 0, got {ce_weight}")
        self.ce_weight = float(ce_weight)
        # None: 0 here; ``fit`` resolves None from the table's rows per class (auto_small_table) and stores the number
        if weight_decay is not None and not float(weight_decay) >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.weight_decay = 0.0 if weight_decay is None else float(weight_decay)
        if hold_fraction is not None and not 0.0 <= float(hold_fraction) < 1.0:
            raise ValueError(f"hold_fraction must be in [0, 1), got {hold_fraction}")
        self.hold_fraction = 0.0 if hold_fraction is None else float(hold_fraction)
        self.margin_scale = 1.0  # the warm-up's current fraction of the margin (1 outside training)

        self.encoder = mlp(self.n_features, self.hidden, self.code_dim, self.dropout)
        self.codebook = nn.Embedding(self.n_classes, self.code_dim)
        nn.init.uniform_(self.codebook.weight, -0.5, 0.5)
        self.decoder = mlp(self.code_dim, self.hidden[::-1], self.n_features, self.dropout)

    # --- construction -------------------------------------------------------------------------
    def hparams(self) -> dict:
        """JSON-able; ``code_dim`` and ``recon_weight`` are stored resolved (numbers, never None)."""
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
            "recon_weight": self.recon_weight,
            "input_dropout": self.input_dropout,
            "margin_warmup": self.margin_warmup,
            "dropout": self.dropout,
            "temperature": self.temperature,
            "code_init": self.code_init,
            "ce_weight": self.ce_weight,
            "weight_decay": self.weight_decay,
            "hold_fraction": self.hold_fraction,
        }

    @property
    def latent_dim(self) -> int:
        return self.code_dim

    # --- pieces -------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z_e = tanh(f(x)): (n, p) -> (n, D). Input dropout applies in training mode only."""
        if self.training and self.input_dropout > 0:
            x = F.dropout(x, self.input_dropout, training=True)
        return torch.tanh(self.encoder(x))

    def codes(self) -> torch.Tensor:
        """The class codes (global class representations), detached: (K, D)."""
        return self.codebook.weight.detach().clone()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """E[x] in model space for codes or embeddings: (n, D) -> (n, p)."""
        return self.likelihood.mean(self.decoder(z))

    # --- training -----------------------------------------------------------------------------
    @torch.no_grad()
    def init_from_data(self, arrays: dict) -> None:
        """``code_init="centroids"``: start the codes at the class centroids of x, projected on their first D
        principal axes and scaled so the largest coordinate is 0.5 (the random start's range); the codes'
        distances then begin as the centroids' and training keeps much of that geometry."""
        if self.code_init != "centroids" or "label" not in arrays:
            return
        import numpy as np

        x, y = np.asarray(arrays["x"], np.float64), np.asarray(arrays["label"], np.int64)
        counts = np.bincount(y, minlength=self.n_classes)
        sums = np.zeros((self.n_classes, x.shape[1]))
        np.add.at(sums, y, x)
        centroids = sums / np.maximum(counts, 1)[:, None]
        centred = centroids - centroids[counts > 0].mean(0)
        u, sv, _ = np.linalg.svd(centred, full_matrices=False)
        coords = np.zeros((self.n_classes, self.code_dim))
        m = min(self.code_dim, len(sv))
        coords[:, :m] = u[:, :m] * sv[:m]
        coords[counts == 0] = np.random.default_rng(0).uniform(-0.5, 0.5, (int((counts == 0).sum()), self.code_dim))
        scale = np.abs(coords[counts > 0]).max()
        self.codebook.weight.copy_(torch.from_numpy(CODE_INIT_EDGE * coords / (scale if scale > 0 else 1.0)).float())

    def margin_epochs(self, n_epochs: int) -> int:
        """Margin warm-up length: min(margin_warmup, n_epochs // 4) epochs."""
        return min(self.margin_warmup, n_epochs // 4)

    def annealing_epochs(self, n_epochs: int) -> int:
        """Epochs early stopping ignores: the margin warm-up, or the first ``hold_fraction`` of the run if longer."""
        return max(self.margin_epochs(n_epochs), int(self.hold_fraction * n_epochs))

    def optimizer_groups(self) -> list[dict] | None:
        """With ``weight_decay`` > 0: decoupled weight decay (AdamW) on the encoder's weight matrices only (not its
        biases or LayerNorm gains, nor the codebook and decoder); None (plain Adam) otherwise."""
        if self.weight_decay <= 0:
            return None
        decayed = [p for name, p in self.encoder.named_parameters() if p.ndim == 2]
        ids = {id(p) for p in decayed}
        return [{"params": decayed, "weight_decay": self.weight_decay},
                {"params": [p for p in self.parameters() if id(p) not in ids], "weight_decay": 0.0}]

    def on_epoch_start(self, epoch: int, n_epochs: int) -> None:
        """The hinge margin grows linearly from 0 to ``margin`` over the warm-up epochs."""
        warm = self.margin_epochs(n_epochs)
        self.margin_scale = min(1.0, epoch / warm) if warm > 0 else 1.0

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Batch means of the loss terms, each as it enters the loss (weights applied).

        batch["x"]: (n, p) float, batch["label"]: (n,) long.
        Returns scalars "loss" = "recon" + "codebook" + "commitment" + "repulsion" (+ "ce" when ce_weight > 0)
        ("recon" is recon_weight times the summed NLL: by default the mean NLL per feature).
        """
        x, y = batch["x"], batch["label"].long()
        z_e = self.encode(x)  # (n, D)
        e_y = self.codebook(y)  # (n, D)
        z_q = z_e + (e_y - z_e).detach()  # straight-through: value e_y, gradient to z_e
        recon = self.recon_weight * self.likelihood.nll(self.decoder(z_q), x).mean()

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
                m, d_max = self.margin * self.margin_scale * self.code_dim, 4.0 * self.code_dim
                zd, eyd, ecd = z_e.detach(), e_y.detach(), e_c.detach()
                rep_codes = F.relu(m + _sq(zd, eyd).clamp(max=d_max) - _sq(zd, e_c))
                rep_enc = F.relu(m + _sq(z_e, eyd) - _sq(z_e, ecd))
                rep = rep_codes + self.alpha * rep_enc
            repulsion = rep.mean()
        else:
            repulsion = z_e.new_zeros(())

        loss = recon + codebook + commitment + repulsion
        terms = {"loss": loss, "recon": recon, "codebook": codebook, "commitment": commitment, "repulsion": repulsion}
        if self.ce_weight > 0 and self.n_classes > 1:
            ce = self.ce_weight * F.cross_entropy(-sq_distances(z_e, self.codebook.weight), y)
            terms["ce"] = ce
            terms["loss"] = loss + ce
        # the token decoder reads z_e: sampling around a class code (z = e_y + noise) then gives varied molecules
        return self.add_token_loss(terms, batch, z_e)

    @torch.no_grad()
    def metrics(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """{"accuracy": number of rows whose nearest code is their label} (a sum over rows)."""
        pred = self.predict(batch["x"])
        return {"accuracy": float((pred == batch["label"].to(pred.device).long()).sum())}

    # --- inference ----------------------------------------------------------------------------
    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(n, p) -> {"z": z_e (n, D), "pred": nearest code (n,) long, "distance": Euclidean distance to it
        (n,), "distances": to every code (n, K), "probs": softmax(-distances^2 / T) (n, K)}."""
        z = self.encode(x)
        sq = sq_distances(z, self.codebook.weight).clamp_min(0)
        distances = sq.sqrt()
        distance, pred = distances.min(1)
        probs = (-sq / (self.temperature or 1.0)).softmax(1)
        return {"z": z, "pred": pred, "distance": distance, "distances": distances, "probs": probs}

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest-code class index: (n, p) -> (n,) long."""
        return sq_distances(self.encode(x), self.codebook.weight).argmin(1)

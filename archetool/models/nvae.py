"""``nvae`` — natural-clustering VAE: class-conditioned latent z_c plus shared latent z_s.

Generative model (K classes, latent z = [z_c, z_s] of size class_dim + shared_dim):

    y ~ p(y)                       fixed class prior (uniform unless given)
    z_c | y ~ N(m_y, I)            m_y: fixed, well-separated class means (a buffer, never trained)
    z_s ~ N(0, I)                  factors shared by all classes
    x | z (, y) ~ likelihood(decoder([z_c, z_s] (, onehot(y))))

Inference: one MLP trunk on x feeds a Gaussian head q(z_c, z_s | x) and a classifier head
q(y | x). Training maximises the joint bound on log p(x, y) plus the classifier term:

    E_q[log p(x|z,y)] - KL(q(z_s|x)||N(0,I)) - beta_c KL(q(z_c|x)||N(m_y,I)) + log p(y) + log q(y|x)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from archetool.models.base import ArchetoolModule
from archetool.models.layers import gaussian_kl_standard, mlp

_LOG_VAR_MIN, _LOG_VAR_MAX = -10.0, 10.0
#: defaults of the remedies for an unused (collapsed) shared latent; see the NVAE class docstring
FREE_BITS, KL_WARMUP = 0.0, 0
#: q(y|x) averages the trunk's logits with a linear read-out of x (dropout LINEAR_HEAD_DROPOUT on its input)
LINEAR_HEAD, LINEAR_HEAD_DROPOUT = True, 0.5
#: how ``fit`` sets the linear read-out's weights once the model is trained: "convex" (an L2-penalised logistic
#: regression fitted to convergence, archetool.training.logistic), "joint" (as trained beside the trunk) or "auto"
#: (whichever of the two gives q(y|x) the lower log loss on the validation rows; see the NVAE docstring)
LINEAR_HEAD_FITS = ("auto", "convex", "joint")
CLASS_WEIGHTS = (None, "balanced")
#: head_mix values tried by :func:`fit_head_mix` (the weight of the linear read-out in q(y|x)'s logits)
HEAD_MIX_GRID = tuple(i / 10 for i in range(11))


def fit_head_mix(trunk: torch.Tensor, linear: torch.Tensor, labels: torch.Tensor) -> float:
    """head_mix for logits (n, K) of the trunk's and the linear read-out's classifiers on the validation rows,
    labels (n,): the w in HEAD_MIX_GRID with the lowest log loss of softmax((1 - w) trunk + w linear), kept only
    when it beats the untuned 0.5 by more than one standard error of the per-row difference (else 0.5).

    One number from a short grid: it lets q(y|x) fall back on the linear read-out where the trunk over-fits
    (few rows per class) without following the noise of a small validation split (the one-SE rule)."""
    trunk, linear, labels = trunk.double(), linear.double(), labels.long()
    rows = torch.stack([F.cross_entropy((1 - w) * trunk + w * linear, labels, reduction="none") for w in HEAD_MIX_GRID])
    best = int(rows.mean(1).argmin())
    gain = rows[HEAD_MIX_GRID.index(0.5)] - rows[best]  # (n,) per-row log-loss gain over the untuned mix
    se = float(gain.std()) / max(len(gain), 1) ** 0.5 if len(gain) > 1 else float("inf")
    return HEAD_MIX_GRID[best] if float(gain.mean()) > se else 0.5


def auto_class_dim(n_classes: int) -> int:
    """Default class latent size: K - 1 (the K fixed means are then a regular simplex), at least 1, at most 8."""
    return int(min(8, max(1, n_classes - 1)))


def make_class_means(n_classes: int, class_dim: int, separation: float = 4.0, seed: int = 0) -> torch.Tensor:
    """Fixed, deterministic class means, shape (K, class_dim), each of norm ``separation``.

    K <= class_dim + 1: the vertices of a regular simplex centred at 0 (axis-aligned via a Helmert
    basis), pairwise distance ``separation * sqrt(2K / (K - 1))`` (>= sqrt(2) * separation).
    K > class_dim + 1: class_dim == 1 evenly spaced on [-separation, separation]; class_dim == 2 a
    regular K-gon; otherwise points on the sphere spread by seeded (``seed``) repulsion, which keeps
    the smallest pairwise distance near the best achievable. K == 1: the origin.
    """
    k, d = int(n_classes), int(class_dim)
    if k < 1 or d < 1:
        raise ValueError("n_classes and class_dim must be >= 1")
    if k == 1:
        return torch.zeros(1, d)
    if k <= d + 1:
        # Helmert basis: k-1 orthonormal vectors in R^k orthogonal to the all-ones vector.
        basis = torch.zeros(k, k - 1, dtype=torch.float64)
        for j in range(1, k):
            basis[:j, j - 1] = 1.0
            basis[j, j - 1] = -float(j)
            basis[:, j - 1] /= math.sqrt(j * (j + 1))
        centred = torch.eye(k, dtype=torch.float64) - 1.0 / k  # simplex vertices in R^k
        coords = centred @ basis  # (k, k-1), same geometry
        means = torch.zeros(k, d, dtype=torch.float64)
        means[:, : k - 1] = coords
    elif d == 1:  # K >= 3 on a line: evenly spaced in [-separation, separation]
        means = torch.linspace(-1.0, 1.0, k, dtype=torch.float64)[:, None]
        return (means * float(separation)).float()
    elif d == 2:  # regular K-gon (optimal on the circle)
        ang = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
        means = torch.stack([ang.cos(), ang.sin()], dim=1)
    else:
        gen = torch.Generator().manual_seed(seed)
        pts = torch.randn(k, d, generator=gen, dtype=torch.float64)
        pts = pts / pts.norm(dim=1, keepdim=True)
        eye = torch.eye(k, dtype=torch.float64)
        n_iter = 500
        for it in range(n_iter):  # projected gradient descent on sum_{i != j} |p_i - p_j|^-6
            dist2 = (2.0 - 2.0 * pts @ pts.T).clamp_min(1e-9) + eye
            w = dist2.pow(-4.0) * (1.0 - eye)
            force = pts * w.sum(1, keepdim=True) - w @ pts  # sum_j w_ij (p_i - p_j)
            force = force - (force * pts).sum(1, keepdim=True) * pts  # tangent to the sphere
            lr = 0.1 * (0.01 ** (it / (n_iter - 1)))  # anneal step length 0.1 -> 0.001
            step = lr / (force.norm(dim=1, keepdim=True).max() + 1e-300)
            pts = pts + step * force
            pts = pts / pts.norm(dim=1, keepdim=True)
        means = pts
    means = means / means.norm(dim=1, keepdim=True)
    return (means * float(separation)).float()


class NVAE(ArchetoolModule):
    """Natural-clustering VAE (see module docstring).

    n_features: p; n_classes: K; class_dim / shared_dim: sizes of z_c / z_s; hidden: encoder widths
    (decoder mirrors them); beta_c: weight of the class-latent KL; class_separation: norm of each
    fixed class mean m_y; decoder_sees_label: also feed onehot(y) to the decoder; class_prior:
    p(y) as K non-negative floats (normalised; default uniform); free_bits: nats of each shared dimension's
    batch-mean KL that cost nothing; kl_warmup: epochs over which the KL terms' weight rises from 0 to 1
    (ignored by early stopping); class_weight: None | "balanced" (the classifier's cross-entropy weighted by
    1 / (K p(y))); linear_head, head_mix, linear_head_fit: see below.

    Defaults, and why: beta_c = 2. With beta_c = 1 a factor shared by all classes costs the same in
    z_c as in z_s and lands in either (both seen across seeds); beta_c > 1 makes z_c dearer, so shared
    factors go to z_s (12/12 seeds in tests/test_model_nvae.py), and the class latent's aggregate
    posterior sits closer to its prior, which gave better ancestral samples on digits
    (benchmarks/nvae_digits.py). class_separation = 8: with unit-variance class components the means
    must lie far apart or samples drawn at temperature > 1 fall between classes and decode to blends
    (digits, 10 classes in 8 dimensions: separation 4 put the nearest means 5.7 apart and a classifier
    trained on samples at temperature 1.4 lost 6-8 points of accuracy; separation >= 6 did not).

    class_dim = None: K - 1 (at most 8): K fixed means need no more (a regular simplex), and the spare
    class dimensions of small-K tables were always inactive (wine, K = 3: 6 of 8).
    linear_head = True (issue 17): q(y|x) is the normalised geometric mean of the trunk's classifier and a
    linear read-out of x (input dropout 0.5 while training), each trained with its own cross-entropy, so
    the trunk and the latents learn as without it. The trunk alone fell short of logistic regression on
    wide tables with few rows per class (LINCS plate, 300 training signatures, 60 classes: 0.25 against
    0.39; the LINCS-shaped set 0.39 against 0.56); figures with it in benchmarks/results/class_models_real.md.
    (A jointly trained sum of the two heads did better on the plate, 0.34, but took the within-class
    variation out of z_c: tests/test_model_nvae.py::test_class_information_lives_in_class_latent failed.)
    head_mix (issue 17, round 3): the weight w of the linear read-out in q(y|x)'s logits, (1 - w) trunk + w linear.
    None (default): ``fit`` picks it on the validation rows (:func:`fit_head_mix`: the grid 0, 0.1, ..., 1, moved
    from 0.5 only when the gain in log loss exceeds one standard error); models saved before it existed use 0.5.
    On the LINCS plate (about 4.5 training rows per class, where the trunk alone reached 0.18-0.25 held-out accuracy)
    it picked 1 on every seed tried and nvae reached logistic regression (3 seeds: 0.408 against 0.386, was 0.303);
    on pbmc it stayed at 0.5 (an unguarded argmin picked 1 on one seed and lost 0.04 accuracy there).
    Figures in benchmarks/results/class_models_real_round3.md.
    linear_head_fit (issue 17, round 9): how ``fit`` sets the linear read-out's weights once the model is trained.
    "convex": an L2-penalised multinomial logistic regression on the training rows, fitted to convergence, its
    penalty cross-validated (archetool.training.logistic; scikit-learn's objective). "joint": as trained beside the
    trunk. "auto" (default): both are tried and the one whose q(y|x) (each at its own head_mix) has the lower
    validation log loss is kept and recorded. Neither read-out wins everywhere: the trained one, regularised by
    input dropout and early stopping, is ahead on the LINCS plate and the LINCS-shaped set (0.59 against 0.56), the
    convex one on pbmc, where the trained one fell 1.5 points short of scikit-learn's logistic regression.
    Models saved before it existed use "joint". Figures in benchmarks/results/class_models_real_round9.md.
    free_bits, kl_warmup, class_weight: off by default, measured (3 seeds each). free_bits = 0.5 on the
    shared latent made wine's 4 shared dimensions active (0 -> 4) at unchanged accuracy, but also moved the
    class-dependent within-class variation from z_c to z_s (the same test fails, even at 0.1), and on both
    latents it let a shared factor sit in z_c (test_beta_c_pushes_shared_factor_into_shared_latent fails);
    a 20-epoch KL warm-up, alone or with free bits during the warm-up only, left wine at 0 active shared
    dimensions (so the ELBO itself finds no shared factor in wine's 13 features worth its KL). class_weight
    = "balanced" (cross-entropy weighted by 1 / (K p(y))) lowered both accuracy and balanced accuracy on pbmc
    (0.805 / 0.664 against 0.814 / 0.671).
    """

    kind = "nvae"
    needs = ("label",)
    # a few hundred training rows in batches of 128 gave 2-4 steps an epoch and under-trained classifiers: LINCS
    # plate (271 training rows, 3 seeds) nvae 0.303 -> 0.408 held-out accuracy with >= 16 steps (logistic regression
    # 0.386); cost: svqvae on pbmc 0.838 -> 0.814 (benchmarks/results/class_models_real_round3.md)
    min_steps_per_epoch = 16
    # refit on all rows below 2,000 rows (issue 17 round 5; held-out accuracy, seeds 0-2, without -> with):
    # wine 0.972 -> 0.981, pbmc 0.829 -> 0.838, digits 0.978 -> 0.977, LINCS plate 0.408 -> 0.417 (logistic
    # regression 0.981 / 0.840 / 0.968 / 0.386); svqvae, which lost 0.029 on pbmc with it, keeps the few-rows rule only
    refit_below_rows = 2000
    #: what configs saved before these hyper-parameters existed were trained with
    saved_defaults = {"free_bits": 0.0, "kl_warmup": 0, "class_weight": None, "linear_head": False, "head_mix": 0.5,
                      "linear_head_fit": "joint"}

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        class_dim: int | None = None,
        shared_dim: int = 4,
        hidden=(256, 128),
        likelihood: str = "gaussian",
        beta_c: float = 2.0,
        class_separation: float = 8.0,
        decoder_sees_label: bool = False,
        class_prior=None,
        dropout: float = 0.0,
        free_bits: float = FREE_BITS,
        kl_warmup: int = KL_WARMUP,
        class_weight: str | None = None,
        linear_head: bool = LINEAR_HEAD,
        head_mix: float | None = None,
        linear_head_fit: str = "auto",
    ):
        super().__init__(n_features, likelihood)
        if n_classes < 1:
            raise ValueError("n_classes must be >= 1")
        if float(free_bits) < 0 or int(kl_warmup) < 0:
            raise ValueError("free_bits and kl_warmup must be >= 0")
        if class_weight not in CLASS_WEIGHTS:
            raise ValueError(f"unknown class_weight {class_weight!r}; choose one of {list(CLASS_WEIGHTS)}")
        self.n_classes = int(n_classes)
        self.class_dim = auto_class_dim(self.n_classes) if class_dim is None else int(class_dim)
        self.shared_dim = int(shared_dim)
        self.hidden = [int(h) for h in hidden]
        self.likelihood_name = str(likelihood)
        self.beta_c = float(beta_c)
        self.class_separation = float(class_separation)
        self.decoder_sees_label = bool(decoder_sees_label)
        self.class_prior_arg = None if class_prior is None else [float(v) for v in class_prior]
        self.dropout = float(dropout)
        self.free_bits = float(free_bits)
        self.kl_warmup = int(kl_warmup)
        self.class_weight = class_weight
        self.linear_head = bool(linear_head)
        if head_mix is not None and not 0.0 <= float(head_mix) <= 1.0:
            raise ValueError(f"head_mix must be in [0, 1], got {head_mix}")
        self.head_mix = None if head_mix is None else float(head_mix)  # set by fit (None: 0.5)
        if linear_head_fit not in LINEAR_HEAD_FITS:
            raise ValueError(f"unknown linear_head_fit {linear_head_fit!r}; choose one of {list(LINEAR_HEAD_FITS)}")
        self.linear_head_fit = linear_head_fit
        self.kl_scale = 1.0  # the KL warm-up's current weight (1 outside training)

        if self.class_prior_arg is None:
            prior = torch.full((self.n_classes,), 1.0 / self.n_classes)
        else:
            prior = torch.tensor(self.class_prior_arg, dtype=torch.float32)
            if prior.shape != (self.n_classes,) or (prior < 0).any() or prior.sum() <= 0:
                raise ValueError(f"class_prior must be {self.n_classes} non-negative floats with a positive sum")
            prior = prior / prior.sum()
        self.register_buffer("log_prior", prior.clamp_min(1e-12).log())
        self.register_buffer("_class_means", make_class_means(self.n_classes, self.class_dim, self.class_separation))
        # per-class mean KL per latent dimension on the training rows, recorded at the end of ``fit``
        # (like BatchNorm's running statistics: data statistics kept with the weights, never trained)
        self.register_buffer("kl_record", torch.zeros(self.n_classes, self.class_dim + self.shared_dim))
        self.register_buffer("kl_record_counts", torch.zeros(self.n_classes))

        d = self.latent_dim
        width = self.hidden[-1] if self.hidden else self.n_features
        self.encoder = mlp(self.n_features, self.hidden, dropout=self.dropout)  # (n, p) -> (n, width)
        self.mu_head = nn.Linear(width, d)
        self.log_var_head = nn.Linear(width, d)
        self.classifier = nn.Linear(width, self.n_classes)  # q(y|x) logits from the shared trunk
        # plus a linear read-out of x itself, its input dropped at LINEAR_HEAD_DROPOUT while training
        self.linear_classifier = nn.Linear(self.n_features, self.n_classes) if self.linear_head else None
        dec_in = d + (self.n_classes if self.decoder_sees_label else 0)
        self.decoder = mlp(dec_in, list(reversed(self.hidden)), self.n_features, dropout=self.dropout)

    # --- construction -------------------------------------------------------------------------
    def hparams(self) -> dict:
        return {
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "class_dim": self.class_dim,
            "shared_dim": self.shared_dim,
            "hidden": list(self.hidden),
            "likelihood": self.likelihood_name,
            "beta_c": self.beta_c,
            "class_separation": self.class_separation,
            "decoder_sees_label": self.decoder_sees_label,
            "class_prior": None if self.class_prior_arg is None else list(self.class_prior_arg),
            "dropout": self.dropout,
            "free_bits": self.free_bits,
            "kl_warmup": self.kl_warmup,
            "class_weight": self.class_weight,
            "linear_head": self.linear_head,
            "head_mix": self.head_mix,
            "linear_head_fit": self.linear_head_fit,
        }

    @property
    def latent_dim(self) -> int:
        return self.class_dim + self.shared_dim

    def class_means(self) -> torch.Tensor:
        """The fixed prior means m_y, shape (K, class_dim)."""
        return self._class_means

    # --- pieces -------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (n, p) -> mu (n, d), log_var (n, d), class logits (n, K); d = class_dim + shared_dim.

        With ``linear_head`` the logits are (1 - w) trunk + w linear, w = ``head_mix`` (None: 0.5): q(y|x) is a
        normalised weighted geometric mean of the two classifiers."""
        mu, log_var, trunk, linear = self._encode_heads(x)
        if linear is None:
            return mu, log_var, trunk
        w = 0.5 if self.head_mix is None else self.head_mix
        return mu, log_var, (1.0 - w) * trunk + w * linear

    def _encode_heads(self, x: torch.Tensor):
        """x (n, p) -> mu, log_var (n, d), the trunk's logits (n, K), the linear read-out's logits (n, K) or None."""
        linear = None
        if self.linear_classifier is not None:
            linear = self.linear_classifier(F.dropout(x, LINEAR_HEAD_DROPOUT, training=self.training))
        h = self.encoder(x)
        log_var = self.log_var_head(h).clamp(_LOG_VAR_MIN, _LOG_VAR_MAX)
        return self.mu_head(h), log_var, self.classifier(h), linear

    def _split(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return t[:, : self.class_dim], t[:, self.class_dim :]

    def _nearest_class(self, z_class: torch.Tensor) -> torch.Tensor:
        return torch.cdist(z_class, self._class_means.to(z_class.dtype)).argmin(dim=1)

    def _decoder_out(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """z (n, d) [+ labels (n,)] -> raw decoder output (n, p)."""
        if self.decoder_sees_label:
            if labels is None:
                labels = self._nearest_class(z[:, : self.class_dim])
            z = torch.cat([z, F.one_hot(labels.long(), self.n_classes).to(z.dtype)], dim=1)
        return self.decoder(z)

    def decode(self, z_class: torch.Tensor, z_shared: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z_class (n, class_dim), z_shared (n, shared_dim) [, labels (n,)] -> E[x] (n, p) in model space.

        ``labels`` matter only with ``decoder_sees_label``; when None, the class whose mean is nearest
        to z_class is used.
        """
        z = torch.cat([z_class, z_shared], dim=1)
        return self.likelihood.mean(self._decoder_out(z, labels))

    def _kl_terms(self, mu: torch.Tensor, log_var: torch.Tensor, labels: torch.Tensor):
        """Per-sample, per-dimension KLs: class (n, class_dim) to N(m_y, I), shared (n, shared_dim) to N(0, I)."""
        mu_c, mu_s = self._split(mu)
        lv_c, lv_s = self._split(log_var)
        kl_c = gaussian_kl_standard(mu_c - self._class_means[labels], lv_c)
        kl_s = gaussian_kl_standard(mu_s, lv_s)
        return kl_c, kl_s

    # --- training -----------------------------------------------------------------------------
    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Negative joint bound (mean over the batch) for x (n, p) and label (n,) long.

        loss = recon + kl_shared + beta_c * kl_class - log p(y) + classifier, where
        recon = -log p(x|z,y) at one reparameterised z, classifier = -log q(y|x).
        """
        x, labels = batch["x"], batch["label"].long()
        mu, log_var, logits, linear = self._encode_heads(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
        recon = self.likelihood.nll(self._decoder_out(z, labels), x).mean()
        kl_c, kl_s = self._kl_terms(mu, log_var, labels)
        kl_class = kl_c.sum(1).mean()
        kl_shared = kl_s.sum(1).mean()
        # free bits: each shared dimension's batch-mean KL below free_bits nats costs nothing
        kl_shared_cost = kl_s.mean(0).clamp_min(self.free_bits).sum() if self.free_bits > 0 else kl_shared
        log_py = self.log_prior[labels].mean()
        weight = None
        if self.class_weight == "balanced":  # 1 / (K p(y)): every class weighs the same in total
            weight = torch.exp(-self.log_prior) / self.n_classes
        classifier = F.cross_entropy(logits, labels, weight=weight)
        if linear is not None:  # each head is trained as a classifier of its own (the trunk as without it)
            classifier = classifier + F.cross_entropy(linear, labels, weight=weight)
        loss = recon + self.kl_scale * (kl_shared_cost + self.beta_c * kl_class) - log_py + classifier
        terms = {"loss": loss, "recon": recon, "kl_shared": kl_shared, "kl_class": kl_class, "classifier": classifier}
        return self.add_token_loss(terms, batch, self.condition(z, labels))

    def annealing_epochs(self, n_epochs: int) -> int:
        """KL warm-up length: min(kl_warmup, n_epochs // 4) epochs (early stopping ignores them)."""
        return min(self.kl_warmup, n_epochs // 4)

    def on_epoch_start(self, epoch: int, n_epochs: int) -> None:
        """The KL terms' weight grows linearly from 0 to 1 over the warm-up epochs."""
        warm = self.annealing_epochs(n_epochs)
        self.kl_scale = min(1.0, epoch / warm) if warm > 0 else 1.0

    @property
    def condition_dim(self) -> int:
        return self.latent_dim + self.n_classes

    def condition(self, latent: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """[z_c, z_s, onehot(y)] (n, d + K) for the sequence decoder; y defaults to the class whose mean is nearest z_c."""
        if labels is None:
            labels = self._nearest_class(latent[:, : self.class_dim])
        return torch.cat([latent, F.one_hot(labels.long(), self.n_classes).to(latent.dtype)], dim=1)

    @torch.no_grad()
    def metrics(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Sums over the rows: "accuracy" (argmax q(y|x) equals the label) and "recon_mse" (mean squared
        error per feature of the reconstruction from the posterior means, given the label)."""
        x, labels = batch["x"], batch["label"].long()
        mu, _, logits = self.encode(x)
        recon = self.likelihood.mean(self._decoder_out(mu, labels))
        return {"accuracy": float((logits.argmax(1) == labels).sum().item()),
                "recon_mse": float(((recon - x) ** 2).mean(-1).sum().item())}

    # --- inference ----------------------------------------------------------------------------
    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x (n, p) -> z (n, class_dim + shared_dim) posterior means, z_class (n, class_dim),
        z_shared (n, shared_dim), pred (n,) argmax q(y|x), prob (n,) its probability, probs (n, K)."""
        mu, _, logits = self.encode(x)
        z_class, z_shared = self._split(mu)
        probs = logits.softmax(dim=1)
        prob, pred = probs.max(dim=1)
        return {"z": mu, "z_class": z_class, "z_shared": z_shared, "pred": pred, "prob": prob, "probs": probs}

    @torch.no_grad()
    def kl_per_dim(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mean KL per latent dimension over the rows of x (n, p) with labels (n,):
        {"class": (class_dim,) KL(q(z_c|x)||N(m_y,I)), "shared": (shared_dim,) KL(q(z_s|x)||N(0,I))}.

        Class dimensions with high KL carry variation that differs between classes.
        """
        mu, log_var, _ = self.encode(x)
        kl_c, kl_s = self._kl_terms(mu, log_var, labels.long())
        return {"class": kl_c.mean(0), "shared": kl_s.mean(0)}

    @torch.no_grad()
    def kl_per_class(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed KL per class and latent dimension over the rows of x (n, p) with labels (n,):
        (sums (K, class_dim + shared_dim), counts (K,)). Sums add up over chunks; divide by the counts
        for per-class means. The class part is KL(q(z_c|x)||N(m_y,I)), the shared part KL(q(z_s|x)||N(0,I)).
        """
        mu, log_var, _ = self.encode(x)
        labels = labels.long()
        kl_c, kl_s = self._kl_terms(mu, log_var, labels)
        kl = torch.cat([kl_c, kl_s], dim=1)
        sums = torch.zeros(self.n_classes, kl.shape[1], dtype=kl.dtype, device=kl.device).index_add_(0, labels, kl)
        counts = torch.bincount(labels, minlength=self.n_classes).to(kl.dtype)
        return sums, counts

    def _randn(self, shape, generator: torch.Generator | None) -> torch.Tensor:
        dev = self._class_means.device
        if generator is None:
            return torch.randn(shape, device=dev)
        return torch.randn(shape, generator=generator, device=generator.device).to(dev)

    @torch.no_grad()
    def sample_latent(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prior draws: y ~ p(y) (or the given labels (n,)), z_c ~ N(m_y, T^2 I), z_s ~ N(0, T^2 I).

        Returns (z (n, class_dim + shared_dim), labels (n,) long). T = ``temperature``.
        """
        dev = self._class_means.device
        if labels is None:
            prior = self.log_prior.exp()
            if generator is None:
                labels = torch.multinomial(prior, n, replacement=True)
            else:
                labels = torch.multinomial(prior.to(generator.device), n, replacement=True, generator=generator)
        labels = torch.as_tensor(labels, dtype=torch.long).to(dev).reshape(-1)
        if labels.numel() != n:
            raise ValueError(f"labels must have n={n} entries, got {labels.numel()}")
        t = float(temperature)
        z_class = self._class_means[labels] + t * self._randn((n, self.class_dim), generator)
        z_shared = t * self._randn((n, self.shared_dim), generator)
        return torch.cat([z_class, z_shared], dim=1), labels

    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Ancestral samples: y ~ p(y) (or the given labels (n,)), z_c ~ N(m_y, T^2 I), z_s ~ N(0, T^2 I), decoded.

        Returns (x_mean (n, p) in model space, labels (n,) long). T = ``temperature`` (> 1: more diverse).
        """
        z, labels = self.sample_latent(n, labels, temperature, generator)
        z_class, z_shared = self._split(z)
        return self.decode(z_class, z_shared, labels), labels

    @torch.no_grad()
    def traverse_shared(self, dim: int, values: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Shared-factor traversal: for each class in ``labels`` (L,) (default all K) and each value in
        ``values`` (m,), decode z_c = m_y, z_s = value * e_dim. Returns E[x] of shape (L, m, p)."""
        dev = self._class_means.device
        values = torch.as_tensor(values, dtype=torch.float32, device=dev).reshape(-1)
        if labels is None:
            labels = torch.arange(self.n_classes, device=dev)
        labels = torch.as_tensor(labels, device=dev).long().reshape(-1)
        n_lab, m = labels.numel(), values.numel()
        lab = labels.repeat_interleave(m)  # (L*m,)
        z_shared = torch.zeros(n_lab * m, self.shared_dim, device=dev)
        z_shared[:, dim] = values.repeat(n_lab)
        out = self.decode(self._class_means[lab], z_shared, lab)
        return out.reshape(n_lab, m, -1)

"""The contract every model follows; the single training loop and the CLI rely on it only.

Models are pure PyTorch: no pandas, no file I/O, no CLI. All tensors are in *model space*
(features already scaled by the preprocessing state).

Batch dict keys (whatever the model needs):
    "x":     (n, p) float  -- features
    "side":  (n, s) float  -- standardised side variables (deepaa)
    "label": (n,)   long   -- class index in [0, n_classes) (nvae, svqvae)
    "tokens": (n, L) long  -- SELFIES token ids of molecules (models with a sequence decoder)
"""

from __future__ import annotations

from typing import Callable, ClassVar

import numpy as np
import torch
from torch import nn

from archetool.models.likelihoods import make_likelihood


@torch.no_grad()
def map_rows(fn: Callable[[torch.Tensor], dict[str, torch.Tensor]], x: np.ndarray, device,
             block: int = 2048) -> dict[str, np.ndarray]:
    """``fn`` over model-space rows x (n, p) in blocks of ``block`` rows on ``device``: its tensors (rows, ...) as
    float32 numpy arrays (n, ...), in row order ({} for no rows)."""
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(x), block):
        chunk = torch.as_tensor(np.ascontiguousarray(x[start : start + block]), dtype=torch.float32, device=device)
        for key, value in fn(chunk).items():
            parts.setdefault(key, []).append(value.float().cpu().numpy())
    return {key: np.concatenate(values) for key, values in parts.items()}


class ArchetoolModule(nn.Module):
    """Base class: subclasses set ``kind`` and implement the abstract methods.

    n_features: p, number of input features
    likelihood: "gaussian" (continuous, scaled features) or "bernoulli" (binary fingerprints)
    """

    kind: ClassVar[str] = ""
    #: batch keys the model needs besides "x" ("side", "label")
    needs: ClassVar[tuple[str, ...]] = ()
    #: values of hyper-parameters added after models were first saved: what a saved config that lacks
    #: the key was trained with (the constructor's default may have changed since)
    saved_defaults: ClassVar[dict] = {}
    #: learning rate at the last epoch as a fraction of ``lr`` (cosine decay; 1.0 = constant)
    final_lr_fraction: ClassVar[float] = 1.0
    #: optimizer steps an epoch should at least have when no batch size is given: the default batch (128) is
    #: lowered, not below 16, on small tables (see :func:`archetool.fitting.default_batch_size`)
    min_steps_per_epoch: ClassVar[int] = 1
    #: class models: ``fit`` refits on all rows (validation rows included) by default on tables of fewer rows
    #: than this (and, for every class model, on tables with fewer than 10 rows per class); see
    #: :func:`archetool.fitting.wants_refit`
    refit_below_rows: ClassVar[int] = 0

    def __init__(self, n_features: int, likelihood: str = "gaussian", likelihood_variance: str = "learned"):
        super().__init__()
        self.n_features = int(n_features)
        self.likelihood = make_likelihood(likelihood, self.n_features, likelihood_variance)
        #: optional SequenceDecoder submodule (molecules): SELFIES tokens from :meth:`condition`
        self.sequence_decoder = None

    # --- construction -------------------------------------------------------------------------
    def hparams(self) -> dict:
        """JSON-able keyword arguments that rebuild this module with ``type(self)(**hparams)``."""
        raise NotImplementedError

    @classmethod
    def from_hparams(cls, hparams: dict) -> "ArchetoolModule":
        """Rebuild a saved module: ``hparams`` from its config, with :attr:`saved_defaults` for missing keys."""
        return cls.build({**cls.saved_defaults, **hparams})

    @classmethod
    def build(cls, hparams: dict) -> "ArchetoolModule":
        """``cls(**hparams)``, plus the sequence decoder that a ``"sequence_decoder"`` entry describes."""
        hparams = dict(hparams)
        sequence = hparams.pop("sequence_decoder", None)
        module = cls(**hparams)
        if sequence:
            module.attach_sequence_decoder(**sequence)
        return module

    def full_hparams(self) -> dict:
        """:meth:`hparams` plus ``"sequence_decoder"`` when the module has one (what :meth:`build` takes)."""
        out = self.hparams()
        if self.sequence_decoder is not None:
            out["sequence_decoder"] = self.sequence_decoder.settings()
        return out

    # --- molecule sequence decoder (DESIGN §1.4) ----------------------------------------------
    @property
    def condition_dim(self) -> int:
        """Size of :meth:`condition`'s output: the latent dimension (nvae adds its classes)."""
        return self.latent_dim

    def condition(self, latent: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Latent points (n, latent_dim) [+ class ids (n,)] -> the sequence decoder's condition (n, condition_dim)."""
        return latent

    def read_dim(self, read: str) -> int:
        """Size of what :meth:`read_features` adds to the condition for a decoder ``read`` setting (see
        ``sequence_decoder.READS``); ValueError for a reading this model cannot give."""
        if read != "latent":
            raise ValueError(f"decoder read {read!r} is not available for this model (only 'latent')")
        return 0

    def read_features(self, latent: torch.Tensor, read: str) -> torch.Tensor | None:
        """Latent points (n, latent_dim) -> what the decoder reads beside :meth:`condition` (n, read_dim), or None."""
        return None

    def sequence_condition(self, latent: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The sequence decoder's full condition (n, decoder condition_dim): :meth:`condition`, plus what its
        ``read`` setting asks for, computed without gradient (the decoder does not pull on the main model)."""
        condition = self.condition(latent, labels)
        read = getattr(self.sequence_decoder, "read", "latent")
        if read == "latent":
            return condition
        with torch.no_grad():
            return torch.cat([condition, self.read_features(latent, read)], dim=-1)

    def attach_sequence_decoder(self, **settings) -> None:
        """Add a SequenceDecoder (settings as in its constructor; ``condition_dim`` defaults to :attr:`condition_dim`
        plus what its ``read`` setting adds)."""
        from archetool.models.sequence_decoder import SequenceDecoder

        settings.setdefault("condition_dim", self.condition_dim + self.read_dim(settings.get("read", "latent")))
        if settings.get("free_dim"):
            settings.setdefault("source_dim", self.n_features)
        self.sequence_decoder = SequenceDecoder(**settings)

    def add_token_loss(self, terms: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
                       condition: torch.Tensor) -> dict[str, torch.Tensor]:
        """Add the "tokens" term (mean token cross-entropy, teacher forcing) to ``terms`` and its weighted value
        to ``terms["loss"]`` when the module has a sequence decoder and the batch has "tokens" (``fit`` leaves them
        out of the main fit's batches unless ``--decoder-epochs 0``: the decoder then trains in its own stage).

        The condition is detached: the token decoder learns to read the latent space the encoder, the
        reconstruction and the side term shape, and does not pull on them (their results stay as without it).
        A decoder with a free latent reads the features ``batch["x"]`` (detached too) for q(z | x).
        """
        if self.sequence_decoder is None or "tokens" not in batch:
            return terms
        tokens = self.token_loss(batch, condition)
        terms["tokens"] = tokens
        terms["loss"] = terms["loss"] + self.sequence_decoder.token_weight * tokens
        return terms

    def token_loss(self, batch: dict[str, torch.Tensor], condition: torch.Tensor) -> torch.Tensor:
        """The sequence decoder's mean token cross-entropy on ``batch["tokens"]`` (n, L) given ``condition``
        (n, condition_dim), detached (and ``batch["x"]`` for a free latent). Molecules over the decoder's
        max_length (rows of padding) are left out; a batch of only those gives 0 (the same keys in every batch)."""
        tokens, condition = batch["tokens"], condition.detach()
        source = batch["x"].detach() if self.sequence_decoder.free_dim else None
        decoded = tokens[:, 0] != 0  # molecules over the decoder's max_length are rows of padding: left out
        if not bool(decoded.all()):
            if not bool(decoded.any()):  # the same keys in every batch (DDP sums them across ranks)
                return condition.new_zeros(())
            tokens, condition = tokens[decoded], condition[decoded]
            source = source[decoded] if source is not None else None
        return self.sequence_decoder.loss(condition, tokens, source)

    #: keys of :meth:`decoder_condition_parts`' arrays (empty: the model has none, see there)
    condition_parts: tuple[str, ...] = ()

    @torch.no_grad()
    def decoder_condition_parts(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-row tensors (n, ...) from which :meth:`decoder_condition` draws the decoder's condition as
        ``loss_terms`` does; fixed once the model is frozen (eval mode), so the decoder stage computes them
        once instead of running the whole model at every step. Models that do not offer it keep
        :attr:`condition_parts` empty (the decoder stage then runs ``loss_terms``)."""
        raise NotImplementedError

    def decoder_condition(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """The condition (n, condition_dim) drawn from a batch of :meth:`decoder_condition_parts`' tensors."""
        raise NotImplementedError

    # --- training -----------------------------------------------------------------------------
    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Named scalar loss terms; key ``"loss"`` is the total that is minimised."""
        raise NotImplementedError

    def init_from_data(self, arrays: dict) -> None:
        """Hook run once on a new module before training: ``arrays`` are the training arrays in model space
        (numpy: "x" (n, p), "label" (n,), ...). Default: nothing (weights keep their random initialisation)."""

    def on_epoch_start(self, epoch: int, n_epochs: int) -> None:
        """Hook for schedules (e.g. beta annealing). ``epoch`` is 0-based."""

    def annealing_epochs(self, n_epochs: int) -> int:
        """Epochs during which a schedule still changes the loss; early stopping ignores them."""
        return 0

    def optimizer_groups(self) -> list[dict] | None:
        """Parameter groups with their own settings for the optimizer (e.g. {"params": [...], "weight_decay": w},
        decoupled weight decay as in AdamW), or None (default): one group, the training config's settings."""
        return None

    @torch.no_grad()
    def metrics(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Validation metrics on a held-out batch, summed over rows (the loop divides by n).

        Keys are reported as ``val_<key>`` in the history.
        """
        return {}

    # --- inference ----------------------------------------------------------------------------
    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-sample outputs for ``embed``: ``"z"`` (n, d) plus model-specific entries."""
        raise NotImplementedError

    @property
    def latent_dim(self) -> int:
        raise NotImplementedError

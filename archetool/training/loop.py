"""The one training loop for every model.

Models supply ``loss_terms(batch) -> {"loss": ..., <term>: ...}``, ``metrics(batch)`` and
``on_epoch_start``; the loop does splitting, batching, optimisation, validation, early stopping,
checkpoints (atomic, every epoch), resume and DistributedDataParallel.

Molecules with a sequence decoder ("tokens"): early stopping and the best epoch follow
:func:`selection_score`, which weighs the decoder's token loss by its relative change, not by its small
share of the total; ``TrainConfig.buckets`` batches rows of similar token length (off by default).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from archetool.atomic import atomic_path
from archetool.errors import first_line
from archetool.models.base import ArchetoolModule
from archetool.training.distributed import DistInfo, all_reduce_sum

log = logging.getLogger("archetool")


class NonFiniteTraining(ArithmeticError):
    """Training met a non-finite loss or gradient (or the forward pass failed on non-finite values).

    epoch, step: 1-based; what: "loss", "gradient", "validation loss" or "forward pass" (with ``detail``,
    the error's first line); rows: indices into the ``arrays`` given to :func:`train` of the rows whose
    own forward pass is not finite (empty: none alone, e.g. the weights diverged); feature: (array key,
    row, column) of the largest |value| (model space) among those rows, else in the batch; or None.
    """

    def __init__(self, epoch: int, step: int, what: str, rows: np.ndarray, feature: tuple[str, int, int] | None,
                 detail: str = ""):
        super().__init__(f"non-finite {what} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.what, self.rows, self.feature, self.detail = epoch, step, what, rows, feature, detail


@dataclass
class TrainConfig:
    """epochs; batch_size (rows per step and process); lr (Adam); val_fraction (held out, stratified by
    label when present); patience (epochs without val improvement before stopping, 0 = off); seed;
    buckets: batches of molecules of similar SELFIES length (see :func:`bucketed_batches`); off by default:
    on 5k MOSES molecules it made a step 1.14x cheaper but left the validation loss 5 % higher after 8
    epochs (349.7 against 332.9; batches of alike molecules pull the encoder one way at a time).
    stop_epoch: run only the schedule's first stop_epoch epochs (the learning rate as for ``epochs``) and keep
    the last weights, not the best-validation ones (0: off); for a refit on all rows (no validation split)."""

    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    val_fraction: float = 0.1
    patience: int = 15
    seed: int = 0
    final_lr_fraction: float = 1.0
    buckets: bool = False
    stop_epoch: int = 0

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch``: cosine decay from ``lr`` to ``lr * final_lr_fraction``."""
        progress = epoch / max(1, self.epochs - 1)
        return self.lr * (self.final_lr_fraction + (1 - self.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))

    def to_dict(self) -> dict:
        """The settings as saved in config.json (``stop_epoch`` only when set: it belongs to a refit's config)."""
        out = asdict(self)
        if not out["stop_epoch"]:
            del out["stop_epoch"]
        return out


#: optimizer steps a fit with the default --epochs runs at most (see :func:`default_epochs`)
STEP_BUDGET = 10_000
#: the default --epochs for data small enough for the step budget, and the fewest for data too large for it
MAX_EPOCHS, MIN_EPOCHS = 100, 5


def default_epochs(n_train: int, batch_size: int, step_budget: int | None = None) -> int:
    """Epochs of a fit without --epochs: :data:`MAX_EPOCHS`, or fewer when that many full passes over
    ``n_train`` training rows in batches of ``batch_size`` would take more than ``step_budget`` optimizer
    steps (never fewer than :data:`MIN_EPOCHS`). Up to 12,800 training rows at batch 128: 100 epochs; 45,000
    (a 50k-molecule file): 29. A molecule fit's step costs ~45 ms of CPU (its SELFIES decoder's GRU ~70 % of
    it) and the decoder stage's as many again at ~30 ms, so a 50k-molecule fit needs ~15 CPU minutes, not ~45.
    On 20k MOSES molecules the decoder's validation token loss stopped improving after ~50 passes over the data
    (~7,000 steps; early stopping keeps that epoch), and the 50k default gives it ~58 passes (joint fit and
    decoder stage); see benchmarks/results/molecule_fit_scaling_round3.md."""
    budget = STEP_BUDGET if step_budget is None else int(step_budget)
    steps_per_epoch = max(1, int(n_train) // max(1, int(batch_size)))
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(budget / steps_per_epoch))))


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_val: float = math.inf
    restart: int = 0
    stopped_early: bool = False
    train_index: np.ndarray | None = None
    val_index: np.ndarray | None = None


class _LossForward(nn.Module):
    """Makes ``loss_terms`` the forward pass so DistributedDataParallel can wrap it."""

    def __init__(self, module: ArchetoolModule):
        super().__init__()
        self.module = module

    def forward(self, batch):
        return self.module.loss_terms(batch)


def split_indices(n: int, val_fraction: float, seed: int, labels: np.ndarray | None = None,
                  groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Random train/validation split; stratified by ``labels`` (classes with >= 2 rows give >= 1 to validation).

    ``groups`` (n,) ints: rows of one group stay together (scaffold split; labels are then not stratified),
    see :func:`group_split`.
    """
    rng = np.random.default_rng(seed)
    if val_fraction <= 0 or n < 4:
        return np.arange(n), np.arange(0)
    if groups is not None:
        return group_split(np.asarray(groups), val_fraction, rng)
    if labels is None:
        perm = rng.permutation(n)
        n_val = max(1, int(round(val_fraction * n)))
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])
    train, val = [], []
    for cls in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        n_val = int(round(val_fraction * len(rows)))
        if len(rows) >= 2:
            n_val = min(max(1, n_val), len(rows) - 1)
        else:
            n_val = 0
        val.append(rows[:n_val])
        train.append(rows[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def group_split(groups: np.ndarray, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Whole groups to train or validation, as chemprop's balanced scaffold split: groups larger than half
    the validation size go first (to train, so validation is not one big chemotype), the others in random
    order; each goes to train while train has room for it, else to validation. Validation then holds about
    ``val_fraction`` of the rows, all of them from groups absent from train.
    """
    n = len(groups)
    n_val = max(1, int(round(val_fraction * n)))
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    big = [m for m in members if len(m) > n_val / 2]
    small = [m for m in members if len(m) <= n_val / 2]
    order = [big[i] for i in rng.permutation(len(big))] + [small[i] for i in rng.permutation(len(small))]
    train, val, room = [], [], n - n_val
    for rows in order:
        if len(rows) <= room:
            train.append(rows)
            room -= len(rows)
        else:
            val.append(rows)
    cat = lambda parts: np.sort(np.concatenate(parts)) if parts else np.arange(0)  # noqa: E731
    return cat(train), cat(val)


def _to_tensors(arrays: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in arrays.items():
        tensor = torch.from_numpy(np.ascontiguousarray(value))
        out[key] = tensor.to(device, dtype=torch.long if np.issubdtype(value.dtype, np.integer) else torch.float32)
    return out


def _slice(tensors: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v.index_select(0, index) for k, v in tensors.items()}


@torch.no_grad()
def _culprits(module: ArchetoolModule, batch: dict[str, torch.Tensor]) -> tuple[np.ndarray, tuple[str, int, int] | None]:
    """Rows of ``batch`` whose own forward pass (``module.embed``, eval mode) is not finite, and the
    (key, row, column) of the largest |value| among them (or in the whole batch when no row alone fails)."""
    was_training = module.training
    module.eval()
    bad: list[int] = []
    try:  # rows are independent in embed: a block's non-finite output rows are its culprits
        for start in range(0, len(batch["x"]), 256):
            block = batch["x"][start : start + 256]
            try:
                bad += [start + int(i) for i in _nonfinite_rows(module.embed(block))]
            except RuntimeError:  # e.g. sparsemax on NaN: find the rows one by one
                for i in range(len(block)):
                    try:
                        failed = len(_nonfinite_rows(module.embed(block[i : i + 1]))) > 0
                    except RuntimeError:
                        failed = True
                    if failed:
                        bad.append(start + i)
    finally:
        module.train(was_training)
    rows = np.asarray(bad, dtype=np.int64)
    if len(rows) == len(batch["x"]):  # every row fails alone: the weights, not a row
        rows = rows[:0]
    pick = torch.as_tensor(rows) if len(rows) else torch.arange(len(batch["x"]))
    best, feature = -1.0, None
    for key in ("x", "side"):
        if key in batch and batch[key].numel():
            values = batch[key][pick.to(batch[key].device)].abs().nan_to_num(nan=0.0).cpu()
            flat = int(values.argmax())
            if float(values.flatten()[flat]) > best:
                best, feature = float(values.flatten()[flat]), (key, int(pick[flat // values.shape[1]]), flat % values.shape[1])
    return rows, feature


def _nonfinite_rows(outputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Indices of the rows with a non-finite value in any of ``embed``'s outputs (each (n, ...))."""
    finite = None
    for value in outputs.values():
        ok = torch.isfinite(value.reshape(len(value), -1)).all(1)
        finite = ok if finite is None else finite & ok
    return torch.nonzero(~finite).flatten().cpu()


def _nonfinite(module, batch, index: torch.Tensor, epoch: int, step: int, what: str, detail: str = "") -> NonFiniteTraining:
    """The :class:`NonFiniteTraining` error for ``batch`` (rows ``index`` of the train or validation arrays)."""
    local, feature = _culprits(module, batch)
    index = index.cpu().numpy()
    if feature is not None:
        feature = (feature[0], int(index[feature[1]]), feature[2])
    return NonFiniteTraining(epoch, step, what, index[local], feature, detail)


def _any_rank(flag: bool, dist_info: DistInfo) -> bool:
    """True on every rank when ``flag`` is true on any (one tiny all-reduce under DDP)."""
    if not dist_info.enabled:
        return flag
    return bool(all_reduce_sum(torch.tensor([float(flag)], dtype=torch.float64))[0] > 0)


@torch.no_grad()
def evaluate(module: ArchetoolModule, tensors: dict[str, torch.Tensor], batch_size: int) -> dict[str, float]:
    """Mean loss terms and metrics over ``tensors`` (no gradient, eval mode); summed across DDP ranks."""
    n = next(iter(tensors.values())).shape[0]
    if n == 0:
        return {}
    module.eval()
    sums: dict[str, float] = {}
    failed = 0.0
    for start in range(0, n, batch_size):
        idx = torch.arange(start, min(n, start + batch_size), device=next(iter(tensors.values())).device)
        batch = _slice(tensors, idx)
        if len(idx) < 2:
            continue
        try:
            terms = module.loss_terms(batch)
            metrics = module.metrics(batch)
        except RuntimeError:  # e.g. sparsemax meeting NaN: the loss is reported as NaN (on every rank)
            failed = 1.0
            continue
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(idx)
        for k, v in metrics.items():
            sums["m_" + k] = sums.get("m_" + k, 0.0) + float(v)
    keys = sorted(sums)
    total = all_reduce_sum(torch.tensor([sums[k] for k in keys] + [float(n), failed], dtype=torch.float64))
    module.train()
    count = float(total[-2])
    out = {(k[2:] if k.startswith("m_") else k): float(v) / count for k, v in zip(keys, total[:-2])}
    if total[-1] > 0:
        out["loss"] = math.nan
    return out


def make_adam(module: nn.Module, config: TrainConfig) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has one for the device (one pass over all parameters: on the
    CPU 0.9 ms a step against 6.1 ms for the per-parameter loop, deepaa on 2,167 molecule features, 1.3M
    parameters); else the default implementation.

    A module whose ``optimizer_groups()`` gives parameter groups (and no ``config.weight_decay``) gets AdamW on
    them: decoupled weight decay per group (AdamW with weight decay 0 takes the same steps as Adam)."""
    groups = module.optimizer_groups() if hasattr(module, "optimizer_groups") and not config.weight_decay else None
    kind, params, decay = ((torch.optim.AdamW, groups, 0.0) if groups
                           else (torch.optim.Adam, list(module.parameters()), config.weight_decay))
    try:
        return kind(params, lr=config.lr, weight_decay=decay, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return kind(params, lr=config.lr, weight_decay=decay)


BUCKET_POOL = 32  # batches per run sorted by length: a run of 4,096 rows at batch 128


def bucketed_batches(perm: torch.Tensor, lengths: np.ndarray, batch_size: int,
                     generator: torch.Generator | None = None, pool: int = BUCKET_POOL) -> list[torch.Tensor]:
    """Batches of rows of similar length (the sequence decoder runs only to the batch's longest molecule).

    ``perm`` (m,): the epoch's shuffled row positions; ``lengths`` (n,): each row's token count. Runs of
    ``pool * batch_size`` consecutive rows of ``perm`` are sorted by length and cut into batches; the
    batches are then shuffled. Every row is still in exactly one batch and only the last may be short.
    """
    cuts = []
    lengths_t = torch.as_tensor(np.asarray(lengths))
    run = pool * batch_size
    for start in range(0, len(perm), run):
        chunk = perm[start : start + run]
        order = torch.sort(lengths_t[chunk.cpu()], stable=True).indices.to(chunk.device)
        cuts.extend(chunk[order].split(batch_size))
    last = cuts.pop() if cuts and len(cuts[-1]) < batch_size else None
    order = torch.randperm(len(cuts), generator=generator).tolist()
    return [cuts[i] for i in order] + ([last] if last is not None else [])


def score_reference(terms: dict[str, float], module: ArchetoolModule) -> dict[str, float] | None:
    """The scales of :func:`selection_score`: |main loss| and the token loss at the first monitored epoch, or
    {} when there is no (positive) token term: the score is then the loss itself."""
    decoder = getattr(module, "sequence_decoder", None)
    if decoder is None or not terms.get("tokens", 0.0) > 0 or not math.isfinite(terms.get("loss", math.nan)):
        return {}  # fixed for the run: the score is the loss
    main = terms["loss"] - decoder.token_weight * terms["tokens"]
    return {"main": max(abs(main), 1e-8), "tokens": terms["tokens"]}


def selection_score(terms: dict[str, float], module: ArchetoolModule, reference: dict[str, float] | None) -> float:
    """What early stopping and the choice of best epoch minimise: the validation loss, or, for a model with a
    sequence decoder, main / |main_0| + tokens / |tokens_0| (main = the loss without the weighted token term;
    _0 = at the first monitored epoch).

    Each term counts by its relative change, whatever its units: the token cross-entropy (~1 nat) is 0.5 %
    of the total loss on molecules (~200 nats of fingerprint bits), so the total alone keeps an epoch whose
    decoder is still far from trained (issue 18). A 1 % fall of either term is worth a 1 % rise of the other.
    """
    loss = terms.get("loss", math.inf)
    if not reference or "tokens" not in terms or not math.isfinite(loss):
        return loss
    main = loss - module.sequence_decoder.token_weight * terms["tokens"]
    return main / reference["main"] + terms["tokens"] / reference["tokens"]


def train(
    module: ArchetoolModule,
    arrays: dict[str, np.ndarray],
    config: TrainConfig,
    device: torch.device,
    dist_info: DistInfo | None = None,
    checkpoint_path: Path | None = None,
    resume: bool = False,
    on_epoch_end: Callable[[dict], None] | None = None,
    groups: np.ndarray | None = None,
) -> TrainResult:
    """Train ``module`` in place on ``arrays`` ("x", and "side"/"label" as the model needs).

    Rows are split into train/validation once (seeded); the best-validation weights are restored at
    the end. With ``checkpoint_path`` a checkpoint is written atomically after every epoch (rank 0),
    and ``resume`` continues from it with the same split, optimiser state and RNG state.
    ``groups`` (n,): rows of one group go to the same side of the split (scaffold split).
    """
    dist_info = dist_info or DistInfo()
    torch.manual_seed(config.seed)
    n = arrays["x"].shape[0]
    train_idx, val_idx = split_indices(n, config.val_fraction, config.seed, arrays.get("label"), groups)
    module.to(device)
    forward: nn.Module = _LossForward(module)
    if dist_info.enabled:
        forward = nn.parallel.DistributedDataParallel(
            forward, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    optimizer = make_adam(module, config)
    train_t = _to_tensors({k: v[train_idx] for k, v in arrays.items()}, device)
    val_t = _to_tensors({k: v[val_idx] for k, v in arrays.items()}, device)
    train_index, val_index = torch.as_tensor(train_idx), torch.as_tensor(val_idx)  # arrays rows, for errors
    if "tokens" in val_t and len(val_idx):  # validation in order of length: each batch's columns are few
        order = torch.argsort((val_t["tokens"] != 0).sum(1).cpu(), stable=True)
        val_t, val_index = {k: v[order.to(v.device)] for k, v in val_t.items()}, val_index[order]
    if dist_info.enabled:  # each rank validates its own shard; results are summed across ranks
        val_t = {k: v[dist_info.rank :: dist_info.world_size] for k, v in val_t.items()}
        val_index = val_index[dist_info.rank :: dist_info.world_size]
    result = TrainResult(train_index=train_idx, val_index=val_idx)
    start_epoch, best_val, bad_epochs, best_state = 0, math.inf, 0, None
    best_score, reference = math.inf, None
    if resume and checkpoint_path is not None and checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=device, weights_only=True)
        module.load_state_dict(state["module"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = config.epochs if state.get("stopped") else int(state["epoch"]) + 1
        best_val, bad_epochs = float(state["best_val"]), int(state["bad_epochs"])
        # a checkpoint of before issue 18 has no score: it goes on selecting on the loss ({})
        best_score, reference = float(state.get("best_score", best_val)), state.get("score_reference", {})
        best_state = state.get("best_module")
        result.history = list(state["history"])
        result.best_epoch = int(state["best_epoch"])
        torch.set_rng_state(state["rng_cpu"])
        log.info("resuming from %s at epoch %d", checkpoint_path, start_epoch + 1)

    n_train = len(train_idx)
    # config.buckets: rows of similar token length share a batch, so the decoder's columns are few
    lengths = (arrays["tokens"][train_idx] != 0).sum(1) if config.buckets and "tokens" in arrays else None
    # --batch-size is the global batch: each of the world_size processes takes its share
    batch_size = max(2, -(-config.batch_size // dist_info.world_size))
    shard = max(1, n_train // dist_info.world_size)
    drop_last = shard > batch_size
    generator = torch.Generator().manual_seed(config.seed)
    warmup = module.annealing_epochs(config.epochs)
    for epoch in range(start_epoch, config.stop_epoch or config.epochs):
        tic = time.perf_counter()
        module.on_epoch_start(epoch, config.epochs)
        for group in optimizer.param_groups:
            group["lr"] = config.lr_at(epoch)
        generator.manual_seed(config.seed * 100003 + epoch)
        perm = torch.randperm(n_train, generator=generator)
        if dist_info.enabled:  # DistributedSampler semantics: same permutation, one strided shard per rank
            perm = perm[: (n_train // dist_info.world_size) * dist_info.world_size][dist_info.rank :: dist_info.world_size]
        perm = perm.to(device)
        sums: dict[str, float] = {}
        steps = 0
        if lengths is not None:
            batches = bucketed_batches(perm, lengths, batch_size, generator)
        else:
            batches = list(perm.split(batch_size))
        for idx in batches:
            if len(idx) < 2 or (drop_last and len(idx) < batch_size):
                continue
            batch = _slice(train_t, idx)
            try:
                terms, failure = forward(batch), ""
                finite = bool(torch.isfinite(terms["loss"]))
            except RuntimeError as err:  # e.g. sparsemax meeting NaN activations
                terms, failure, finite = None, first_line(err, 160), False
            # under DDP every rank must stop at the same step (the others would wait in backward's all-reduce)
            if _any_rank(not finite, dist_info):
                raise _nonfinite(module, batch, train_index[idx.cpu()], epoch + 1, steps + 1,
                                 "forward pass" if failure else "loss", failure)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            # one fused norm over all gradients; DDP has averaged them, so every rank decides alike
            grads = [p.grad for p in module.parameters() if p.grad is not None]
            if grads and not bool(torch.isfinite(torch.nn.utils.get_total_norm(grads))):
                raise _nonfinite(module, batch, train_index[idx.cpu()], epoch + 1, steps + 1, "gradient")
            optimizer.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            steps += 1
        record: dict = {"epoch": epoch + 1}
        record.update({f"train_{k}": v / max(steps, 1) for k, v in sums.items()})
        val = evaluate(module, val_t, max(config.batch_size, 256)) if len(val_idx) else {}
        if val and not math.isfinite(val.get("loss", 0.0)):  # summed over ranks: the same on every rank
            raise _nonfinite(module, val_t, val_index, epoch + 1, steps, "validation loss")
        record.update({f"val_{k}": v for k, v in val.items()})
        for attr in ("beta",):
            if hasattr(module, attr):
                record[attr] = float(getattr(module, attr))
        record["seconds"] = time.perf_counter() - tic
        monitored = val if val else {k[len("train_"):]: v for k, v in record.items() if k.startswith("train_")}
        if epoch >= warmup and reference is None:
            reference = score_reference(monitored, module)
        monitor = selection_score(monitored, module, reference)
        if reference:  # (NaN in the history before the first monitored epoch)
            record["val_score" if val else "train_score"] = monitor
        if epoch >= warmup and monitor < best_score - 1e-6 * abs(best_score if math.isfinite(best_score) else 1):
            best_score, bad_epochs, result.best_epoch = monitor, 0, epoch + 1
            best_val = monitored.get("loss", math.inf)
            best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        elif epoch >= warmup:
            bad_epochs += 1
        result.history.append(record)
        if on_epoch_end is not None:
            on_epoch_end(record)
        stop = config.patience > 0 and bad_epochs >= config.patience
        if checkpoint_path is not None and dist_info.is_main:
            with atomic_path(checkpoint_path) as tmp:
                torch.save(
                    {"module": module.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                     "best_val": best_val, "best_score": best_score, "score_reference": reference,
                     "bad_epochs": bad_epochs, "best_epoch": result.best_epoch,
                     "best_module": best_state, "history": result.history, "rng_cpu": torch.get_rng_state(),
                     "stopped": stop},
                    tmp,
                )
        if stop:
            result.stopped_early = True
            log.info("early stopping at epoch %d (best epoch %d)", epoch + 1, result.best_epoch)
            break
    result.best_val = best_val
    if config.stop_epoch:  # a refit: the last epoch's weights
        best_state, result.best_epoch = None, len(result.history)
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return result

"""``fit``: read and validate the data, build the model, train it with the shared loop, save it."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from archetool.errors import ArchetoolError

log = logging.getLogger("archetool")


@dataclass
class FitOptions:
    """Everything ``archetool fit`` accepts (the Python API takes the same names as keywords).

    model options: k (deepaa archetypes), latent_dim (deepaa: must be k-1; nvae: class latent size;
    svqvae: code size), shared_dim (nvae), hidden (layer widths), model_options (any other
    hyper-parameter of the model class, e.g. {"prior": "dirichlet"}). final_lr_fraction: the last
    epoch's learning rate as a fraction of lr (cosine decay); None = the model's own default.
    restarts: models trained from different initialisations; the lowest validation loss is kept.
    """

    data: str
    model: str = "deepaa"
    side: list[str] = field(default_factory=list)
    label: str | None = None
    labels_file: str | None = None
    out: str | None = None
    k: int = 4
    latent_dim: int | None = None
    shared_dim: int | None = None
    hidden: list[int] | None = None
    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    restarts: int = 1
    final_lr_fraction: float | None = None
    val_fraction: float = 0.1
    patience: int = 15
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    drop_missing: bool = False
    strict_classes: bool = False
    layer: str | None = None
    sep: str | None = None
    id_column: str | None = None
    smiles_column: str | None = None
    radius: int = 2
    n_bits: int = 2048
    counts: bool = False
    descriptors: bool = True
    likelihood: str | None = None
    model_options: dict = field(default_factory=dict)
    progress_bar: bool | None = None

    def default_out(self) -> Path:
        data = Path(self.data)
        stem = data.name.split(".")[0]
        return data.parent / f"{stem}.{self.model}.archetool"


def fit(options: FitOptions):
    """Train a model as described by ``options`` and save it to ``options.out``; returns an ArchetoolModel."""
    from archetool import __version__
    from archetool.analysis import adapter
    from archetool.data.prepare import load_training_data
    from archetool.data.source import ReadOptions
    from archetool.model import FORMAT, ArchetoolModel
    from archetool.models import MODEL_REGISTRY
    from archetool.training.device import resolve_device
    from archetool.training.distributed import barrier, init_distributed

    if options.model not in MODEL_REGISTRY:
        raise ArchetoolError(f"--model {options.model!r} is unknown; choose one of {', '.join(MODEL_REGISTRY)}")
    model_adapter = adapter(options.model)
    model_adapter.check_options(options)
    device = resolve_device(options.device)
    dist_info = init_distributed(device)
    if not dist_info.is_main:  # one voice: only rank 0 logs progress
        log.setLevel(logging.WARNING)
    out = Path(options.out) if options.out else options.default_out()
    tic = time.perf_counter()
    data, prep = load_training_data(
        options.data, side=options.side, label=options.label, labels_file=options.labels_file,
        drop_missing=options.drop_missing, strict_classes=options.strict_classes,
        read_options=ReadOptions(layer=options.layer, id_column=options.id_column, smiles_column=options.smiles_column,
                                 sep=options.sep),
        featurizer_options=dict(radius=options.radius, n_bits=options.n_bits, counts=options.counts, descriptors=options.descriptors),
        likelihood=options.likelihood,
    )
    log.info("%s: %d rows x %d features (%s, %s likelihood) read in %.1fs", options.data, len(data.ids),
             data.x.shape[1], prep.featurizer["name"], prep.likelihood, time.perf_counter() - tic)
    if len(data.rejects) and dist_info.is_main:
        from archetool.io_tables import write_table

        rejects_path = write_table(data.rejects, out / "rejects.csv")
        log.warning("%s: %d of %d SMILES could not be parsed and were skipped; rows and SMILES written to %s",
                    options.data, len(data.rejects), len(data.rejects) + len(data.ids), rejects_path)
    hparams = model_adapter.hparams(options, prep, data)
    if dist_info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    module, result, config, restarts = _train_restarts(options, hparams, data, device, dist_info, out)
    model = ArchetoolModel(module.cpu(), prep, {}, result.history)
    split = np.full(len(data.ids), "train", dtype=object)
    split[result.val_index] = "val"
    outputs = model.transform(data.x)
    rows = model.embedding_frame(data.ids, outputs)
    rows.insert(1, "split", split)
    if data.smiles is not None:
        rows.insert(1, "smiles", data.smiles)
    for j, name in enumerate(prep.side_names):
        rows[name] = data.side_raw[:, j]
    if data.label is not None:
        rows[prep.label_column] = np.asarray(prep.classes, dtype=object)[data.label]
    model.training_rows = rows
    summary = {"rows": int(len(data.ids)), "train_rows": int(len(result.train_index)), "val_rows": int(len(result.val_index)),
               "rejected_smiles": int(len(data.rejects)), "epochs_run": len(result.history), "best_epoch": result.best_epoch,
               "stopped_early": result.stopped_early, "seconds": round(time.perf_counter() - tic, 2)}
    if len(restarts) > 1:
        summary["restart_kept"] = f"{result.restart + 1}/{len(restarts)}"
    summary.update(model_adapter.summary(model, data, result.val_index))
    from archetool.shift import shift_reference

    prep.reference = shift_reference(data.x, prep.likelihood)  # for embed's distribution-shift warning
    model.config = {
        "format": FORMAT, "archetool_version": __version__, "model": options.model, "hparams": module.hparams(),
        "train": config.to_dict(), "seed": options.seed, "data": str(options.data), "device": str(device),
        "world_size": dist_info.world_size, "options": {k: v for k, v in asdict(options).items() if k != "progress_bar"},
        "summary": summary,
        "restarts": restarts,
    }
    if dist_info.is_main:
        model.save(out)
        log.info("saved %s model to %s (%s)", options.model, out,
                 ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items() if k.startswith("val_")))
    barrier()
    return model


def _train_restarts(options: FitOptions, hparams: dict, data, device, dist_info, out: Path):
    """Train ``options.restarts`` models, restart r initialised with seed ``options.seed + r`` (same
    validation split and batch order), and keep the lowest best-validation loss.

    Returns (module, TrainResult, TrainConfig, per-restart summaries), the first three of the kept
    restart. Restart r checkpoints to ``checkpoint.pt`` (r = 0) or ``checkpoint-r<r>.pt``; with
    ``--resume`` finished restarts are read back, not rerun.
    """
    import torch

    from archetool.model import CHECKPOINT
    from archetool.models import build_model, model_class
    from archetool.progress import EpochReporter
    from archetool.training.loop import TrainConfig, train

    module_class = model_class(options.model)
    config = TrainConfig(
        epochs=options.epochs, batch_size=options.batch_size, lr=options.lr, val_fraction=options.val_fraction,
        patience=options.patience, seed=options.seed,
        final_lr_fraction=module_class.final_lr_fraction if options.final_lr_fraction is None else options.final_lr_fraction,
    )
    arrays = {"x": data.x}
    if "side" in module_class.needs and data.side is not None:
        arrays["side"] = data.side
    if "label" in module_class.needs:
        arrays["label"] = data.label
    n_restarts = max(1, int(options.restarts))
    checkpoints = [out / (CHECKPOINT if r == 0 else CHECKPOINT.replace(".pt", f"-r{r}.pt")) for r in range(n_restarts)]
    if options.resume and not checkpoints[0].exists():
        log.warning("--resume: no checkpoint at %s; starting from scratch", checkpoints[0])
    done = sum(_checkpoint_epoch(c) for c in checkpoints if c.exists()) if options.resume else 0
    best, summaries = None, []
    with EpochReporter(options.epochs, enabled=dist_info.is_main, bar=options.progress_bar, start=done,
                       restarts=n_restarts) as reporter:
        for r, checkpoint in enumerate(checkpoints):
            torch.manual_seed(options.seed + r)
            try:
                module = build_model(options.model, **hparams)
            except ValueError as err:
                raise ArchetoolError(f"--model {options.model}: {err}") from None
            on_epoch_end = reporter if n_restarts == 1 else (lambda record, r=r: reporter({**record, "restart": r + 1}))
            try:
                result = train(module, arrays, config, device, dist_info, checkpoint_path=checkpoint,
                               resume=options.resume, on_epoch_end=on_epoch_end)
            except RuntimeError as err:
                if "size mismatch" in str(err) or "Missing key" in str(err):
                    raise ArchetoolError(f"{checkpoint}: --resume checkpoint does not match these options; "
                                         "use the same options as the interrupted run, or drop --resume") from None
                raise
            result.restart = r
            summaries.append({"restart": r + 1, "init_seed": options.seed + r,
                              "best_val_loss": result.best_val if np.isfinite(result.best_val) else None,
                              "best_epoch": result.best_epoch, "epochs_run": len(result.history)})
            if n_restarts > 1:
                log.info("restart %d/%d: best validation loss %.5g at epoch %d", r + 1, n_restarts, result.best_val,
                         result.best_epoch)
            if best is None or result.best_val < best[1].best_val:
                best = (module, result)
    return (*best, config, summaries)


def _checkpoint_epoch(path: Path) -> int:
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"]) + 1
    except Exception:
        raise ArchetoolError(f"{path}: the checkpoint is unreadable; delete it or drop --resume") from None

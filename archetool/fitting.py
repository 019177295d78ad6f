"""``fit``: read and validate the data, build the model, train it with the shared loop, save it."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from archetool.data.tokens import ALPHABETS
from archetool.errors import ArchetoolError

log = logging.getLogger("archetool")


class FitInterrupted(KeyboardInterrupt):
    """``fit`` stopped by Ctrl-C (SIGINT) or SIGTERM while training.

    signum: the signal; epoch: the epoch in progress (1-based) of ``epochs``; kept: the last epoch in
    ``checkpoint`` (0: none written yet); restart (1-based) of ``restarts``; resumable: ``--resume``
    continues it (False for a k sweep, which starts each k afresh).
    """

    def __init__(self, signum: int, epoch: int, epochs: int, kept: int, checkpoint: Path, restart: int, restarts: int):
        super().__init__(f"interrupted at epoch {epoch}")
        self.signum, self.epoch, self.epochs, self.kept, self.checkpoint = signum, epoch, epochs, kept, checkpoint
        self.restart, self.restarts, self.resumable = restart, restarts, True

    def describe(self, resume_command: str | None) -> str:
        """One line: where it stopped, what is kept, and the command that continues (``resume_command``)."""
        import signal

        name = "SIGTERM" if self.signum == signal.SIGTERM else "Ctrl-C (SIGINT)" if self.signum == signal.SIGINT else f"signal {self.signum}"
        where = f"epoch {self.epoch} of {self.epochs}" + (f" (restart {self.restart} of {self.restarts})" if self.restarts > 1 else "")
        text = f"interrupted by {name} at {where}"
        if not self.resumable:
            return f"{text}; a k sweep starts each k afresh: rerun the command with --overwrite to fit it again"
        if self.kept == 0 and self.restart == 1:
            return f"{text}, before the first checkpoint was written; nothing to resume: rerun the command"
        kept = f"the checkpoint (epoch {self.kept}) is kept at {self.checkpoint}" if self.kept else f"the checkpoints are kept in {self.checkpoint.parent}"
        return f"{text}; {kept}; to continue: {resume_command}" if resume_command else f"{text}; {kept}; continue with --resume"


@dataclass
class FitOptions:
    """Everything ``archetool fit`` accepts (the Python API takes the same names as keywords).

    model options: k (deepaa archetypes), latent_dim (deepaa: must be k-1; nvae: class latent size;
    svqvae: code size), shared_dim (nvae), hidden (layer widths), model_options (any other
    hyper-parameter of the model class, e.g. {"prior": "dirichlet"}). epochs: None = 100, or fewer for data
    so large that 100 would exceed ~10,000 optimizer steps (:func:`archetool.training.loop.default_epochs`).
    final_lr_fraction: the last
    epoch's learning rate as a fraction of lr (cosine decay); None = the model's own default.
    restarts: models trained from different initialisations; the lowest validation loss is kept.
    batch_size: rows per step; None = :func:`default_batch_size` (128, smaller on small tables).
    data: a file path, or (Python API) an AnnData, a pandas DataFrame or a numpy array with ``feature_names``;
    in-memory data without ``out`` are saved to a new temporary directory (logged; ``model.save`` keeps it).
    likelihood: None (from the features), "gaussian", "bernoulli" or "nb" (raw counts: negative binomial).
    decoder: "smiles" or "selfies" (a sequence decoder of that alphabet that generates molecules), "none", or
    None = ``prepare.default_alphabet`` (SMILES from 5,000 molecules up) for molecule inputs. decoder_options: SequenceDecoder settings (embedding_dim, hidden_dim, token_weight,
    free_dim, free_beta, word_dropout, read). decoder_epochs (None: as many as epochs) and decoder_lr: the
    second stage, in which the decoder trains alone on the frozen main model; decoder_epochs=0: no such stage,
    the decoder trains beside the main model instead (its loss added to the main model's).
    split: "random" (stratified by label when there is one) or "scaffold" (molecules: whole Bemis-Murcko
    scaffolds go to validation). jobs: featurisation worker processes (None: the cores).
    descriptor_set: RDKit descriptors with the fingerprints, "fast" or "full" (see featurizers).
    na_values: extra tokens read as missing values in text tables (pandas' usual set always is).
    overwrite: replace a model already in ``out`` (else refused, see :func:`check_out_dir`); ``resume``
    continues the unfinished fit there instead.
    max_tokens: the sequence decoder's longest molecule in tokens of its alphabet (None: the data's 99.5th
    percentile); longer molecules train the encoder and side head but not the decoder.
    threads: torch CPU threads (None: :func:`archetool.threads.default_threads`).
    patience: epochs without validation improvement before early stopping (0: never); None: :func:`default_patience`.
    refit: after early stopping has chosen the epoch, train a fresh model on every row (validation rows included)
    for that many epochs and keep it; the held-out figures (``val_*``) and calibration are those of the model before
    it. None: on for nvae and svqvae on tables with fewer than 10 rows per class, and for nvae below 2,000
    rows (:func:`wants_refit`).
    """

    data: object
    model: str = "deepaa"
    side: list[str] = field(default_factory=list)
    label: str | None = None
    labels_file: str | None = None
    out: str | None = None
    k: int = 4
    latent_dim: int | None = None
    shared_dim: int | None = None
    hidden: list[int] | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float = 1e-3
    restarts: int = 1
    final_lr_fraction: float | None = None
    val_fraction: float = 0.1
    patience: int | None = None
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
    feature_names: list[str] | None = None
    decoder: str | None = None
    decoder_options: dict = field(default_factory=dict)
    decoder_epochs: int | None = None
    decoder_lr: float = 5e-3  # 5k MOSES, 10 stage epochs: val tokens 1.14 -> 1.00 nats, FCD 20.0 -> 16.9 against 2e-3
    split: str = "random"
    jobs: int | None = None
    descriptor_set: str = "fast"
    na_values: list[str] = field(default_factory=list)
    overwrite: bool = False
    #: the data's name in messages and config.json when ``data`` is a stand-in (standard input's copy)
    data_label: str | None = None
    max_tokens: int | None = None
    threads: int | None = None
    refit: bool | None = None

    @property
    def in_memory(self) -> bool:
        import os

        return not isinstance(self.data, (str, os.PathLike))

    def data_name(self) -> str:
        """The data path, or a description of in-memory data ('AnnData (700 cells x 765 genes)')."""
        if self.data_label is not None:
            return self.data_label
        if self.in_memory:
            from archetool.data.readers.memory import describe

            return describe(self.data)
        return str(self.data)

    def default_out(self) -> Path:
        if self.in_memory:
            import tempfile

            return Path(tempfile.mkdtemp(prefix=f"archetool-{self.model}-"))
        data = Path(self.data)
        stem = data.name.split(".")[0]
        return data.parent / f"{stem}.{self.model}.archetool"


def fit(options: FitOptions):
    """Train a model as described by ``options`` and save it to ``options.out``; returns an ArchetoolModel.

    The run holds the model directory's lock throughout (:mod:`archetool.lock`): a second run on the same
    directory fails at once with :class:`archetool.lock.DirectoryBusy`. Under torchrun only rank 0 writes,
    so only rank 0 locks (torchrun stops the other ranks when it fails).
    """
    from archetool.lock import directory_lock
    from archetool.training.distributed import env_dist_info

    out = Path(options.out) if options.out else options.default_out()  # once: in-memory data get a new temporary one
    if not env_dist_info().is_main:
        return _fit(options, out)
    try:
        with directory_lock(out):
            check_out_dir(options, out)
            return _fit(options, out)
    except BaseException:
        if options.out is None and options.in_memory:  # the new temporary directory, if the run left it empty
            with contextlib.suppress(OSError):
                out.rmdir()
        raise


#: what ``fit`` writes into a model directory beside the model files (a refit removes them all first)
FIT_OUTPUTS = ("rejects.csv", "decoder_history.csv", "refit_history.csv")
#: the decoder stage's history (one row per epoch: train/val token loss, seconds), beside history.csv
DECODER_HISTORY = "decoder_history.csv"
#: the refit's history (one row per epoch: training loss terms, seconds; ``fit --refit``), beside history.csv
REFIT_HISTORY = "refit_history.csv"
#: what later commands write into it by default (``archetypes``): results of the model they were made from
DERIVED_OUTPUTS = ("archetypes",)


def check_out_dir(options: FitOptions, out: Path) -> None:
    """Refuse to fit into a directory that holds a model or an unfinished fit's checkpoint, unless
    ``options.overwrite`` (replace it) or ``options.resume`` (continue the checkpoint)."""
    from archetool.model import CHECKPOINT, CONFIG

    if options.overwrite or options.resume or not out.is_dir():
        return
    api = options.in_memory
    flag, other = ("overwrite=True", "another out=") if api else ("--overwrite", "another --out")
    if (out / CONFIG).is_file():
        import json

        try:
            config = json.loads((out / CONFIG).read_text())
            what = f"a {config.get('model', 'fitted')} model (fitted on {config.get('data', 'unknown data')})"
        except (OSError, ValueError, AttributeError):
            what = "a model"
        raise ArchetoolError(f"{out}: already holds {what}; pass {flag} to replace it (its archetypes and other "
                             f"results go too), or give {other}")
    if any(out.glob(CHECKPOINT.replace(".pt", "*.pt"))):
        resume = "resume=True" if api else "--resume"
        raise ArchetoolError(f"{out}: holds the checkpoint of an unfinished fit; pass {resume} to continue it, "
                             f"{flag} to start afresh, or give {other}")


def clear_model_dir(out: Path, keep: tuple[str, ...] = ()) -> None:
    """Remove a previous fit's files from ``out`` (config.json first: from then on the directory is not a
    model, so a crash midway never leaves one fit's model beside another's results); names in ``keep`` stay."""
    import shutil

    from archetool.model import CHECKPOINT, CONFIG, HISTORY, PREPROCESSING, TRAINING_ROWS, WEIGHTS

    names = [CONFIG, WEIGHTS, PREPROCESSING, HISTORY, TRAINING_ROWS, *FIT_OUTPUTS, *DERIVED_OUTPUTS]
    names += sorted(p.name for p in out.glob(CHECKPOINT.replace(".pt", "*.pt")))
    for name in names:
        path = out / name
        if name in keep or not (path.exists() or path.is_symlink()):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _fit(options: FitOptions, out: Path):
    from archetool import __version__
    from archetool.analysis import adapter
    from archetool.data.prepare import load_training_data, warn_left_out
    from archetool.data.source import ReadOptions
    from archetool.model import FORMAT, ArchetoolModel
    from archetool.models import MODEL_REGISTRY
    from archetool.training.device import resolve_device
    from archetool.training.distributed import barrier, init_distributed

    if options.split not in SPLITS:
        raise ArchetoolError(f"--split {options.split!r}: choose one of {', '.join(SPLITS)}")
    if options.model not in MODEL_REGISTRY:
        raise ArchetoolError(f"--model {options.model!r} is unknown; choose one of {', '.join(MODEL_REGISTRY)}")
    model_adapter = adapter(options.model)
    model_adapter.check_options(options)
    if options.decoder not in (None, *ALPHABETS, "none"):
        raise ArchetoolError(f"--decoder {options.decoder!r} is unknown; choose smiles or selfies (generate molecules) or none")
    check_decoder_options(options.decoder_options)
    device = resolve_device(options.device)
    dist_info = init_distributed(device)
    if not dist_info.is_main:  # one voice: only rank 0 logs progress
        log.setLevel(logging.WARNING)
    if options.out is None and options.in_memory and dist_info.is_main:
        log.info("in-memory data and no out=: the model is saved to %s (model.save(DIR) keeps a copy elsewhere)", out)
    data_name = options.data_name()
    tic = time.perf_counter()
    data, prep = load_training_data(
        options.data, side=options.side, label=options.label, labels_file=options.labels_file,
        drop_missing=options.drop_missing, strict_classes=options.strict_classes,
        read_options=ReadOptions(layer=options.layer, id_column=options.id_column, smiles_column=options.smiles_column,
                                 sep=options.sep, na_values=tuple(options.na_values),
                                 extra={"feature_names": options.feature_names} if options.feature_names is not None else {}),
        featurizer_options=dict(radius=options.radius, n_bits=options.n_bits, counts=options.counts, descriptors=options.descriptors,
                                descriptor_set=options.descriptor_set, jobs=options.jobs, progress=dist_info.is_main),
        likelihood=options.likelihood, decoder=options.decoder, max_tokens=options.max_tokens,
    )
    groups = split_groups(options, data)
    options = resolve_schedule(options, data, groups)
    check_split(options, data, groups)
    warn_left_out(data_name, data)
    log.info("%s: %d rows x %d features (%s, %s likelihood) read in %.1fs", data_name, len(data.ids),
             data.x.shape[1], prep.featurizer["name"], prep.likelihood, time.perf_counter() - tic)
    if dist_info.is_main and out.is_dir():  # --overwrite (or --resume): no file of the previous fit stays
        from archetool.model import CHECKPOINT

        clear_model_dir(out, keep=tuple(p.name for p in out.glob(CHECKPOINT.replace(".pt", "*.pt"))) if options.resume else ())
    if len(data.rejects) and dist_info.is_main:
        from archetool.io_tables import write_table

        rejects_path = write_table(data.rejects, out / "rejects.csv")
        log.warning("%s: %d of %d molecules could not be used and were skipped; rows, SMILES and reasons written to %s",
                    data_name, len(data.rejects), len(data.rejects) + len(data.ids), rejects_path)
    hparams = model_adapter.hparams(options, prep, data)
    if options.decoder_options and data.tokens is None:
        raise ArchetoolError(f"{data_name}: decoder settings ({', '.join(sorted(options.decoder_options))}) apply to a molecule "
                             "model's sequence decoder, and this fit has none (molecule inputs, without --decoder none, have one)")
    if data.tokens is not None:
        from archetool.data.tokens import vocabulary_from_state
        from archetool.models.sequence_decoder import FIT_DEFAULTS

        vocabulary = vocabulary_from_state(prep.sequence)
        hparams["sequence_decoder"] = {"vocab_size": vocabulary.size, "max_length": vocabulary.max_length,
                                       **FIT_DEFAULTS, **model_adapter.decoder_defaults, **options.decoder_options}
    if dist_info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    retune = training_threads(options, device)  # re-tuned after every epoch of the restarts and the refit
    module, result, config, restarts = _train_restarts(options, hparams, data, prep, device, dist_info, out, groups, retune)
    post_training = model_adapter.after_training(module, data, result.train_index, result.val_index)
    held_out, refit = None, None
    if options.refit and not len(result.val_index):
        log.info("--refit: no validation rows were held out, so the model already trained on every row")
    elif wants_refit(options, data) and result.best_epoch > 0 and len(result.val_index):
        # the held-out figures and calibration come from the model that never saw the validation rows
        held_out = model_adapter.held_out_summary(ArchetoolModel(module.cpu(), prep, {}), data, result.val_index)
        refitted, refit = _refit_all_rows(options, hparams, data, prep, config, result, device, dist_info, out, retune)
        model_adapter.carry_calibration(module, refitted)
        module = refitted
        post_training.update(model_adapter.after_training(module, data, np.arange(len(data.ids)), np.arange(0), post_training))
    decoder_result = _train_decoder(options, module, data, config, device, dist_info, groups)
    model = ArchetoolModel(module.cpu(), prep, {}, result.history)
    split = np.full(len(data.ids), "train", dtype=object)
    if refit is None:  # (after a refit every row trained the kept model)
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
               "stopped_early": result.stopped_early, "split": options.split, "seconds": round(time.perf_counter() - tic, 2)}
    if decoder_result is not None:
        summary.update({"decoder_epochs_run": len(decoder_result.history), "decoder_best_epoch": decoder_result.best_epoch,
                        "decoder_val_tokens": round(float(decoder_result.best_val), 4)})
    if len(restarts) > 1:
        summary["restart_kept"] = f"{result.restart + 1}/{len(restarts)}"
    summary.update(post_training)
    if refit is None:
        summary.update(model_adapter.summary(model, data, result.val_index))
    else:  # val_* are the figures of the model before the refit on its validation rows
        summary.update({"refit_rows": int(len(data.ids)), "refit_epochs": len(refit.history),
                        **model_adapter.fit_summary(model, data), **held_out})
    from archetool.shift import shift_reference

    prep.reference = shift_reference(data.x, prep.likelihood)  # for embed's distribution-shift warning
    from archetool.data.readers import is_spooled_stdin

    stored_name = "-" if is_spooled_stdin(options.data) else data_name  # not the deleted copy of standard input
    model.config = {
        "format": FORMAT, "archetool_version": __version__, "model": options.model, "hparams": module.full_hparams(),
        "train": {**config.to_dict(), "split": options.split}, "seed": options.seed, "data": stored_name, "device": str(device),
        "world_size": dist_info.world_size,
        "options": {**{f.name: getattr(options, f.name) for f in fields(options)
                       if f.name not in ("progress_bar", "data", "data_label", "overwrite")}, "data": stored_name},
        "summary": summary,
        "restarts": restarts,
        # what `archetool info` shows, readable without loading the weights (or torch)
        "latent_dim": int(module.latent_dim), "parameters": int(sum(p.numel() for p in module.parameters())),
    }
    if dist_info.is_main:
        model.save(out)
        import pandas as pd

        from archetool.io_tables import write_table

        for stage, name in ((decoder_result, DECODER_HISTORY), (refit, REFIT_HISTORY)):
            if stage is not None and stage.history:
                write_table(pd.DataFrame(stage.history), out / name)
        log.info("saved %s model to %s (%s)", options.model, out,
                 ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items() if k.startswith("val_")))
    barrier()
    return model


SPLITS = ("random", "scaffold")

#: --patience when none is given; class models (nvae, svqvae) on tables of fewer than SMALL_TABLE_ROWS rows get
#: SMALL_TABLE_PATIENCE (see :func:`default_patience`)
DEFAULT_PATIENCE, SMALL_TABLE_PATIENCE, SMALL_TABLE_ROWS = 15, 50, 2000


def default_patience(options: FitOptions, data) -> int:
    """Early-stopping patience of a fit without --patience: :data:`SMALL_TABLE_PATIENCE` for a class model on a
    table of fewer than :data:`SMALL_TABLE_ROWS` rows, else :data:`DEFAULT_PATIENCE`.

    Small tables make 16 steps an epoch (:func:`default_batch_size`), so 15 epochs are 240 optimizer steps, judged on
    a validation split of a few dozen rows: on wine (14 validation rows) nvae stopped at epoch 29-41 on 2 of 13 seeds
    with no active shared dimension and 0.944 accuracy. With 50 (issue 17 round 5, seeds 0-12), nvae on wine: no
    seed without an active shared dimension (was 2 of 13), at least half active on 11 of 13 (was 8), accuracy equal
    or better on every seed; svqvae on wine 0.917 -> 0.972 on one seed, on digits 0.976 -> 0.982, on the LINCS plate
    0.399 -> 0.404; pbmc and nvae's digits and plate figures unchanged (the same best epoch, found later). Larger
    tables gain nothing from it (svqvae, seeds 0-2: MNIST-5k 0.941 -> 0.942, LINCS-shaped 0.583 -> 0.580)."""
    from archetool.models import model_class

    if "label" in model_class(options.model).needs and len(data.ids) < SMALL_TABLE_ROWS:
        return SMALL_TABLE_PATIENCE
    return DEFAULT_PATIENCE


def resolve_schedule(options: FitOptions, data, groups=None) -> FitOptions:
    """``options`` with ``batch_size`` and ``epochs`` set: as given, or (None) :func:`default_batch_size` of the
    rows (logged when it is below 128) and :func:`archetool.training.loop.default_epochs` of the training rows
    (logged when the step budget makes it fewer than the usual 100)."""
    from dataclasses import replace

    from archetool.models import model_class
    from archetool.training import loop

    module_class = model_class(options.model)
    if options.batch_size is None:
        batch_size = default_batch_size(len(data.ids), options.val_fraction, module_class.min_steps_per_epoch)
        if batch_size < 128:
            log.info("batches of %d rows, so each epoch has at least %d steps (--batch-size sets it)", batch_size,
                     module_class.min_steps_per_epoch)
        options = replace(options, batch_size=batch_size)
    if options.epochs is not None:
        return options
    labels = data.label if "label" in module_class.needs else None
    train, _ = loop.split_indices(len(data.ids), options.val_fraction, options.seed, labels, groups)
    epochs = loop.default_epochs(len(train), options.batch_size)
    if epochs < loop.MAX_EPOCHS:
        log.info("%d training rows: %d epochs of %d steps (batch %d), the default budget of about %d optimizer steps "
                 "(--epochs N sets them)", len(train), epochs, max(1, len(train) // options.batch_size),
                 options.batch_size, loop.STEP_BUDGET)
    return replace(options, epochs=epochs)


def check_split(options: FitOptions, data, groups=None) -> None:
    """Refuse data too small to train on (fewer than 2 training rows; deepaa: fewer rows than archetypes)
    and warn, naming the consequence, when the validation split is too small to score (0 or 1 rows)."""
    from archetool.models import model_class
    from archetool.training.loop import split_indices

    name, n = options.data_name(), len(data.ids)
    labels = data.label if "label" in model_class(options.model).needs else None
    train, val = split_indices(n, options.val_fraction, options.seed, labels, groups)
    if len(train) < 2:
        raise ArchetoolError(f"{name}: {n} row{'s' if n != 1 else ''} leave{'s' if n == 1 else ''} {len(train)} for "
                             "training; a model needs at least 2 training rows (more data, or a smaller --val-fraction)")
    if options.model == "deepaa" and options.k > n:
        raise ArchetoolError(f"{name}: {n} rows cannot define {options.k} archetypes; use --k {n} or fewer, or more data")
    if options.val_fraction > 0 and len(val) < 2:
        consequence = ("no validation loss, no early stopping and no held-out scores" if len(val) == 0 else
                       "the held-out scores (R², accuracy) are undefined (nan) and early stopping follows one row")
        log.warning("%s: %d rows give %d validation row%s (--val-fraction %g): %s; use more data for a usable "
                    "validation split", name, n, len(val), "" if len(val) == 1 else "s", options.val_fraction, consequence)


def split_groups(options: FitOptions, data) -> np.ndarray | None:
    """Row groups kept together by the train/validation split: Bemis-Murcko scaffolds for ``--split
    scaffold`` (molecules only), else None (random split)."""
    if options.split != "scaffold":
        return None
    if data.smiles is None:
        raise ArchetoolError(f"{options.data_name()}: --split scaffold needs molecules (a .smi/.sdf file or a SMILES column) "
                             "but this data has none; use --split random")
    from archetool.data.scaffolds import scaffold_groups

    groups, scaffolds = scaffold_groups(data.smiles)
    log.info("scaffold split: %d molecules in %d Bemis-Murcko scaffolds", len(groups), len(scaffolds))
    return groups


def check_decoder_options(decoder_options: dict) -> None:
    """Refuse a decoder setting the SequenceDecoder does not have (one line naming those it has)."""
    import inspect

    from archetool.models.sequence_decoder import SequenceDecoder

    settable = [name for name in inspect.signature(SequenceDecoder).parameters
                if name not in ("vocab_size", "max_length", "condition_dim", "source_dim")]
    unknown = [key for key in decoder_options if key not in settable]
    if unknown:
        raise ArchetoolError(f"unknown decoder setting {unknown[0]!r} (--set decoder.{unknown[0]}=...); "
                             f"choose from {', '.join(settable)}")


def training_arrays(data, needs, tokens: bool = True) -> dict:
    """The arrays the training loop reads, (n, ...) each: features, the side values and labels the model
    ``needs``, and (``tokens``) the molecule token rows where there are any."""
    arrays = {"x": data.x}
    if "side" in needs and data.side is not None:
        arrays["side"] = data.side
    if "label" in needs:
        arrays["label"] = data.label
    if tokens and data.tokens is not None:
        arrays["tokens"] = data.tokens
    return arrays


def decoder_stage_epochs(options: FitOptions) -> int:
    """Epochs of the decoder's own stage (0: none, the decoder then trains jointly with the main model)."""
    return int(options.epochs if options.decoder_epochs is None else options.decoder_epochs)


def _train_decoder(options: FitOptions, module, data, config, device, dist_info, groups=None):
    """Stage 2 of a fit with a sequence decoder: the decoder trained on alone, the main model frozen
    (:class:`~archetool.models.sequence_decoder.DecoderStage`), by the same loop on the same split, for
    ``options.decoder_epochs`` (None: as many as ``epochs``) at ``options.decoder_lr``, the learning rate decaying to a
    tenth; early stopping and the kept epoch go by the decoder's validation loss. Returns its TrainResult, or None."""
    from dataclasses import replace

    if module.sequence_decoder is None or data.tokens is None:
        return None
    epochs = decoder_stage_epochs(options)
    if epochs <= 0:
        return None
    from archetool.models.sequence_decoder import DecoderStage
    from archetool.training.loop import train

    stage = DecoderStage(module)
    tic = time.perf_counter()
    arrays = stage.training_arrays(training_arrays(data, module.needs))  # + the frozen model's latent points
    patience = DEFAULT_PATIENCE if options.patience is None else options.patience
    stage_config = replace(config, epochs=epochs, lr=options.decoder_lr, final_lr_fraction=0.1, patience=max(5, patience // 3))
    result = train(stage, arrays, stage_config, device, dist_info, groups=groups)
    log.info("decoder stage: %d epochs in %.1fs, best validation token loss %.4g at epoch %d", len(result.history),
             time.perf_counter() - tic, result.best_val, result.best_epoch)
    return result


def default_batch_size(n_rows: int, val_fraction: float, min_steps: int = 1, batch_size: int = 128) -> int:
    """Rows per step when none is given: ``batch_size``, lowered (not below 16) so the training rows (n_rows less the
    validation fraction) make at least ``min_steps`` steps an epoch (the model's ``min_steps_per_epoch``)."""
    train = n_rows - int(round(val_fraction * n_rows))
    if math.ceil(train / batch_size) >= min_steps:
        return batch_size
    return int(max(16, math.ceil(train / max(1, min_steps))))


def training_threads(options: FitOptions, device):
    """Set the training's CPU threads (``--threads``, else the default for the CPUs this process may use) and
    return the :class:`archetool.threads.EpochThreads` to call after each epoch; None on an accelerator."""
    if device.type != "cpu":
        return None
    from archetool.threads import EpochThreads, apply_threads

    apply_threads(options.threads, "training")
    return EpochThreads(options.threads)


def _train_restarts(options: FitOptions, hparams: dict, data, prep, device, dist_info, out: Path, groups=None,
                    retune=None):
    """Train ``options.restarts`` models, restart r initialised with seed ``options.seed + r`` (same
    validation split and batch order), and keep the lowest best-validation loss.

    Returns (module, TrainResult, TrainConfig, per-restart summaries), the first three of the kept
    restart. Restart r checkpoints to ``checkpoint.pt`` (r = 0) or ``checkpoint-r<r>.pt``; with
    ``--resume`` finished restarts are read back, not rerun. ``retune`` (:func:`training_threads`): called after
    every epoch.
    """
    import torch

    from archetool.model import CHECKPOINT
    from archetool.models import build_model, model_class
    from archetool.progress import EpochReporter
    from archetool.training.loop import TrainConfig

    module_class = model_class(options.model)
    config = TrainConfig(
        epochs=options.epochs, lr=options.lr, val_fraction=options.val_fraction,
        batch_size=options.batch_size,
        patience=default_patience(options, data) if options.patience is None else options.patience, seed=options.seed,
        final_lr_fraction=module_class.final_lr_fraction if options.final_lr_fraction is None else options.final_lr_fraction,
    )
    # the decoder's condition is detached, so training it beside the main model only pre-trains it (50k MOSES: 0.006
    # nats of validation token loss) while it made the main stage's step ~7x dearer: with a stage of its own it waits
    arrays = training_arrays(data, module_class.needs, tokens=decoder_stage_epochs(options) <= 0)
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
            module.init_from_data(arrays)  # a resumed checkpoint overwrites it
            resumed = options.resume and checkpoint.exists()
            done_epochs = [_checkpoint_epoch(checkpoint) if resumed else 0]  # of this restart, for an interrupt

            def on_epoch_end(record, r=r, done_epochs=done_epochs):
                done_epochs[0] = record["epoch"]
                if retune is not None:
                    retune()
                reporter(record if n_restarts == 1 else {**record, "restart": r + 1})
            result = _guarded_train(module, arrays, config, device, dist_info, checkpoint, on_epoch_end, groups,
                                    options, data, prep, out, done_epochs, (r + 1, n_restarts))
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


def _guarded_train(module, arrays, config, device, dist_info, checkpoint: Path, on_epoch_end, groups, options: FitOptions,
                   data, prep, out: Path, done_epochs: list, run: tuple[int, int]):
    """:func:`archetool.training.loop.train` with a fit's failures turned into one-line errors: Ctrl-C or SIGTERM
    into :class:`FitInterrupted` (naming the checkpoint kept), non-finite training into the culprit rows' message,
    a checkpoint of other options under ``--resume`` into a line saying so. ``run``: (this run, runs) for messages;
    ``done_epochs[0]``: epochs finished (on_epoch_end keeps it)."""
    from archetool.training.loop import NonFiniteTraining, train

    try:
        return train(module, arrays, config, device, dist_info, checkpoint_path=checkpoint, resume=options.resume,
                     on_epoch_end=on_epoch_end, groups=groups)
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM turned into one by the CLI
        import signal

        kept = _checkpoint_epoch(checkpoint) if done_epochs[0] and checkpoint.exists() else 0
        # the epoch in progress is the one after the checkpoint's (resume reruns it)
        raise FitInterrupted(getattr(err, "signum", signal.SIGINT), kept + 1, options.epochs, kept, checkpoint,
                             *run) from None
    except NonFiniteTraining as err:  # nothing is saved: fit() never reaches model.save
        raise _nonfinite_error(err, options, data, prep, out, checkpoint) from None
    except RuntimeError as err:
        if "size mismatch" in str(err) or "Missing key" in str(err):
            raise ArchetoolError(f"{checkpoint}: --resume checkpoint does not match these options; "
                                 "use the same options as the interrupted run, or drop --resume") from None
        raise


#: the refit's checkpoint, beside the restarts' ``checkpoint*.pt``
REFIT_CHECKPOINT = "checkpoint-refit.pt"


def wants_refit(options: FitOptions, data) -> bool:
    """Whether the fit ends with a refit on all rows: ``options.refit``, or (None) for a class model (nvae,
    svqvae) on a table with few rows per class (:func:`archetool.models.svqvae.few_rows_per_class`), where the
    validation split holds a large share of each class (the LINCS plate: 1 of 5 rows of every perturbagen), or
    with fewer rows than the model's ``refit_below_rows`` (nvae: 2,000)."""
    if options.refit is not None:
        return bool(options.refit)
    from archetool.models import model_class
    from archetool.models.svqvae import few_rows_per_class

    module_class = model_class(options.model)
    if "label" not in module_class.needs or data.label is None:
        return False
    n = len(data.ids)
    return few_rows_per_class(n, len(np.unique(data.label))) or n < module_class.refit_below_rows


def _refit_all_rows(options: FitOptions, hparams: dict, data, prep, config, result, device, dist_info, out: Path,
                    retune=None):
    """A fresh model (the kept restart's initial seed) trained on every row, validation rows included, for the
    schedule's first ``result.best_epoch`` epochs (the epoch early stopping chose), keeping the last weights;
    ``retune`` (see :func:`training_threads`) after every epoch. Returns (module, TrainResult)."""
    import torch
    from dataclasses import replace

    from archetool.models import build_model, model_class
    from archetool.progress import EpochReporter

    refit_config = replace(config, val_fraction=0.0, patience=0, stop_epoch=max(1, int(result.best_epoch)))
    arrays = training_arrays(data, model_class(options.model).needs, tokens=decoder_stage_epochs(options) <= 0)
    torch.manual_seed(options.seed + result.restart)
    module = build_model(options.model, **hparams)
    module.init_from_data(arrays)
    log.info("refit on all %d rows (validation rows included) for the %d epochs early stopping chose "
             "(--no-refit, in Python refit=False, keeps the model trained without them)", len(data.ids), refit_config.stop_epoch)
    done_epochs = [0]
    with EpochReporter(refit_config.stop_epoch, enabled=dist_info.is_main, bar=options.progress_bar) as reporter:
        def on_epoch_end(record):
            done_epochs[0] = record["epoch"]
            if retune is not None:
                retune()
            reporter({**record, "refit": True})

        refit = _guarded_train(module, arrays, refit_config, device, dist_info, out / REFIT_CHECKPOINT, on_epoch_end,
                               None, options, data, prep, out, done_epochs, (1, 1))
    return module, refit


def _checkpoint_epoch(path: Path) -> int:
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"]) + 1
    except Exception:
        raise ArchetoolError(f"{path}: the checkpoint is unreadable; delete it or drop --resume") from None


def _nonfinite_error(err, options: FitOptions, data, prep, out: Path, checkpoint: Path) -> ArchetoolError:
    """One line for a training run stopped by a non-finite loss or gradient: where, which row and feature
    (in the input's units), what to do, and what is left in ``out``."""
    # a library's words on a failed forward pass ("index -1 is out of bounds") help only when no row is to blame
    what = (f"the {err.what} failed" + (f" ({err.detail})" if not len(err.rows) else "") if err.detail
            else f"the {err.what} is not finite")
    when = f"after epoch {err.epoch}" if err.what == "validation loss" else f"at epoch {err.epoch}, step {err.step}"
    text = f"{options.data_name()}: training stopped {when}: {what}; "
    extreme = ""
    if err.feature is not None:
        key, row, col = err.feature
        scaled = float((data.x if key == "x" else data.side)[row, col])
        if key == "x":
            name = f"feature {prep.feature_names[col]!r}"
            raw = scaled * prep.x_std[col] + prep.x_mean[col] if prep.x_mean is not None else scaled
        else:
            name, raw = f"side column {prep.side_names[col]!r}", float(data.side_raw[row, col])
        extreme = f"{name} is {raw:.4g} at row {str(data.ids[row])!r}, {abs(scaled):.3g} standard deviations from its mean"
    if len(err.rows):
        ids = ", ".join(repr(str(data.ids[r])) for r in err.rows[:3]) + (f" and {len(err.rows) - 3} more" if len(err.rows) > 3 else "")
        text += f"row{'s' if len(err.rows) > 1 else ''} {ids} make{'' if len(err.rows) > 1 else 's'} the model's output non-finite"
        text += f" ({extreme}): correct or remove {'them' if len(err.rows) > 1 else 'it'}"
    else:
        text += (f"the model's output is not finite for every row of the batch: the weights diverged (try a lower "
                 f"--lr, now {options.lr:g}) or a feature is off scale")
        if extreme:
            text += f" (the most extreme value: {extreme})"
    kept = f" ({checkpoint.name} of epoch {err.epoch - 1} is kept)" if err.epoch > 1 and checkpoint.exists() else ""
    return ArchetoolError(f"{text}; no model was saved to {out}{kept}")

"""A fitted model: the PyTorch module plus its preprocessing state, saved as a model directory.

Directory layout (DESIGN §3)::

    config.json          model kind, hyper-parameters, training settings, archetool version, seed, summary
    weights.pt           state_dict, loadable with torch.load(weights_only=True)
    preprocessing.json   featuriser settings, feature names / gene order, scaling, side names, classes
    history.csv          one row per epoch
    decoder_history.csv  molecules: one row per epoch of the decoder stage (train/val token loss, seconds)
    refit_history.csv    after a refit on all rows (fit --refit): one row per epoch of the kept model
    training_rows.parquet  ids (+ SMILES, side values, labels, split) and embeddings of the training rows
    checkpoint.pt        last training state, for ``fit --resume``
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from archetool._settings import reports
from archetool.atomic import atomic_path, write_text_atomic
from archetool.data.prepare import InferenceChunk, Preprocessing, infinite_value_error, iter_inference_chunks
from archetool.errors import InputError, ModelDirError, first_line

log = logging.getLogger("archetool")

CONFIG, WEIGHTS, PREPROCESSING, HISTORY, TRAINING_ROWS, CHECKPOINT = (
    "config.json", "weights.pt", "preprocessing.json", "history.csv", "training_rows.parquet", "checkpoint.pt",
)
FORMAT = "archetool-model"


class ArchetoolModel:
    """module: an ArchetoolModule in eval mode; prep: its Preprocessing; config: the JSON config dict."""

    def __init__(self, module, prep: Preprocessing, config: dict, history: list[dict] | None = None,
                 training_rows: pd.DataFrame | None = None, directory: Path | None = None):
        self.module = module.eval()
        self.prep = prep
        self.config = config
        self.history = history or []
        self.training_rows = training_rows
        #: a generation.Reference that sample() judges novelty against while it runs (None: the training molecules)
        self.reference_set = None
        self.directory = directory

    @property
    def kind(self) -> str:
        return self.module.kind

    def __repr__(self) -> str:
        """Model kind, directory, the data it was fitted on and its held-out scores (config summary and history)."""
        summary = self.config.get("summary") or {}
        n_params = sum(p.numel() for p in self.module.parameters())
        lines = [f"ArchetoolModel: {self.kind}, {len(self.prep.feature_names):,} features -> latent "
                 f"{self.module.latent_dim} ({n_params:,} parameters)",
                 f"    directory: {self.directory if self.directory is not None else 'not saved (model.save(DIR))'}"]
        if self.config.get("data") is not None:
            rows = (f", {summary['rows']:,} rows ({summary.get('train_rows', 0):,} train, {summary.get('val_rows', 0):,} "
                    "held out)") if "rows" in summary else ""
            epochs = (f", {summary['epochs_run']} epochs (best {summary.get('best_epoch')})"
                      if "epochs_run" in summary else "")
            if "refit_rows" in summary:  # the kept model is the refit; the held-out scores are the first model's
                epochs += f"; kept: a refit on all {summary['refit_rows']:,} rows for {summary['refit_epochs']} epochs"
            lines.append(f"    fitted on: {self.config['data']}{rows}{epochs}")
        best = next((r for r in self.history if r.get("epoch") == summary.get("best_epoch")), None)
        scores = {k: best[k] for k in ("val_loss", "val_recon_mse") if best is not None and k in best}
        scores.update((k, v) for k, v in summary.items() if k.startswith("val_") and k != "val_rows")
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in scores.items())
        refit = " (of the model before the refit)" if "refit_rows" in summary and shown else ""
        lines.append(f"    held-out scores{refit}: {shown or 'none recorded'}")
        return "\n".join(lines)

    @property
    def device(self):
        return next(self.module.parameters()).device

    def to(self, device) -> "ArchetoolModel":
        self.module.to(device)
        return self

    # --- persistence --------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the model directory; every file atomically, ``config.json`` last (it marks completeness)."""
        import torch

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / WEIGHTS) as tmp:
            torch.save({k: v.detach().cpu() for k, v in self.module.state_dict().items()}, tmp)
        write_text_atomic(directory / PREPROCESSING, json.dumps(self.prep.to_dict(), indent=1))
        if self.history:
            with atomic_path(directory / HISTORY) as tmp:
                pd.DataFrame(self.history).to_csv(tmp, index=False)
        if self.training_rows is not None:
            with atomic_path(directory / TRAINING_ROWS) as tmp:
                self.training_rows.to_parquet(tmp, index=False)
        write_text_atomic(directory / CONFIG, json.dumps(self.config, indent=1, default=str))
        self.directory = directory
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str | None = "cpu") -> "ArchetoolModel":
        """Load a model directory; refuse anything that is not a complete, consistent archetool model."""
        import torch

        from archetool.models import MODEL_REGISTRY, model_class

        directory = Path(directory)
        config = _read_config(directory, MODEL_REGISTRY)
        kind = config["model"]
        hparams = config.get("hparams")
        if not isinstance(hparams, dict):
            raise ModelDirError(f"{directory / CONFIG}: \"hparams\" must be an object")
        prep_dict = _read_json(directory / PREPROCESSING)
        try:
            prep = Preprocessing.from_dict(prep_dict)
            module = model_class(kind).from_hparams(hparams)
        except (TypeError, ValueError, KeyError) as err:
            raise ModelDirError(f"{directory}: invalid configuration ({err}); the model directory is corrupt or from another version") from None
        if len(prep.feature_names) != module.n_features:
            raise ModelDirError(f"{directory}: config says {module.n_features} features but preprocessing.json lists {len(prep.feature_names)}")
        weights_path = directory / WEIGHTS
        if not weights_path.is_file():
            raise ModelDirError(f"{directory}: {WEIGHTS} is missing; re-run 'archetool fit'")
        try:
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
        except Exception as err:  # UnpicklingError for pickle payloads, RuntimeError for corrupt zips
            raise ModelDirError(f"{weights_path}: refused to load (only plain tensors are accepted: {first_line(err)})") from None
        if not isinstance(state, dict):
            raise ModelDirError(f"{weights_path}: expected a state dict of tensors")
        try:
            module.load_state_dict(state)
        except RuntimeError as err:
            detail = " ".join(str(err).split())[:240]
            raise ModelDirError(f"{weights_path}: weights do not match the config's shapes ({detail})") from None
        history = pd.read_csv(directory / HISTORY).to_dict("records") if (directory / HISTORY).is_file() else []
        rows = pd.read_parquet(directory / TRAINING_ROWS) if (directory / TRAINING_ROWS).is_file() else None
        model = cls(module, prep, config, history, rows, directory)
        if device is not None:
            from archetool.training.device import resolve_device

            model.to(resolve_device(device))
        return model

    # --- inference ----------------------------------------------------------------------------
    def transform(self, x: np.ndarray, batch_size: int = 4096, pool=None) -> dict[str, np.ndarray]:
        """Run ``module.embed`` on model-space rows x (n, p); returns numpy arrays keyed like ``embed``.

        ``pool``: an executor (see :func:`archetool.threads.forward_pool`) that runs the batches in
        parallel; the results are put together in row order either way.
        """
        return self._gather(self._start_transform(x, batch_size, pool))

    def _forward_rows(self, x: np.ndarray, start: int, batch_size: int, scaling=None, monitor=None
                      ) -> dict[str, np.ndarray]:
        """``module.embed`` on rows start:start+batch_size of x, as numpy (runs in any thread).

        ``scaling``: (mean, std) tensors on the device when x is still in input units; the batch is then
        standardised here, while it is in cache, with the same float32 operations as
        ``Preprocessing.scale_x`` (same values, NaN -> 0, i.e. the training mean).
        ``monitor``: a :class:`~archetool.shift.ShiftMonitor`; its figures of the batch come back under "_shift".
        """
        import torch

        with torch.inference_mode():  # per thread
            block = torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size])).to(self.device)
            if scaling is not None:
                finite = bool(torch.isfinite(block.sum()))  # a finite sum that overflows just means "check"
                infinite = torch.isinf(block).nonzero() if not finite else ()
                if len(infinite):
                    row, col = (int(i) for i in infinite[0])
                    raise _InfiniteValue(start + row, col)
                block = (block - scaling[0]) / scaling[1]
                if not finite:
                    block = torch.nan_to_num(block, nan=0.0)  # missing -> the training mean
            try:
                outputs = self.module.embed(block)
                finite = all(bool(torch.isfinite(value.sum())) for value in outputs.values())
            except RuntimeError:  # e.g. sparsemax meeting NaN activations
                finite = False
            if not finite:  # a row the model cannot represent (an extreme value): refuse, naming it
                from archetool.training.loop import _culprits

                rows, feature = _culprits(self.module, {"x": block})
                row = int(rows[0]) if len(rows) else (feature[1] if feature else 0)
                raise _NonFiniteOutput(start + row, feature[2] if feature else 0)
            outputs = {key: value.cpu().numpy() for key, value in outputs.items()}
            if monitor is not None:
                outputs["_shift"] = monitor.batch_figures(block)
            return outputs

    def _start_transform(self, x: np.ndarray, batch_size: int, pool, scaling=None, monitor=None) -> list:
        """The forward passes of x's batches: submitted to ``pool`` (futures), or deferred calls that
        :meth:`_gather` runs when it is None."""
        starts = range(0, len(x), batch_size)
        if pool is None:
            return [partial(self._forward_rows, x, start, batch_size, scaling, monitor) for start in starts]
        return [pool.submit(self._forward_rows, x, start, batch_size, scaling, monitor) for start in starts]

    def _scaling_tensors(self):
        """(mean, std) of the standardised features as float32 tensors on the device, or None."""
        import torch

        if self.prep.x_mean is None:
            return None
        return tuple(torch.as_tensor(np.asarray(v, np.float32), device=self.device) for v in (self.prep.x_mean, self.prep.x_std))

    @staticmethod
    def _gather(parts: list) -> dict[str, np.ndarray]:
        """Results of :meth:`_start_transform` (waiting for futures) concatenated in row order."""
        parts = [part.result() if hasattr(part, "result") else part() for part in parts]
        if not parts:
            return {key: np.zeros((0,)) for key in ("z",)}
        outputs = {key: np.concatenate([part[key] for part in parts]) for key in parts[0] if key != "_shift"}
        if "_shift" in parts[0]:
            outputs["_shift"] = [part["_shift"] for part in parts]
        return outputs

    def embedding_frame(self, ids: np.ndarray, outputs: dict[str, np.ndarray]) -> pd.DataFrame:
        """The embedding table: the id column first, then z0..z{d-1}, then the model's own columns."""
        from archetool.analysis import adapter

        id_name = self.prep.id_column or "id"
        columns: dict[str, np.ndarray] = {id_name: np.asarray(ids)}
        z = outputs["z"]
        columns.update({f"z{j}": z[:, j] for j in range(z.shape[1])})
        columns.update(adapter(self.kind).embedding_columns(self, outputs))
        return pd.DataFrame(columns)

    def iter_embeddings(self, data: str | Path, batch_rows: int = 65536, batch_size: int = 4096,
                        threads: int | None = None, obs_columns: tuple[str, ...] | None = None,
                        read_options=None, allow_missing_features: bool = False, shift_check: bool = True,
                        ) -> Iterator[tuple[InferenceChunk, pd.DataFrame]]:
        """Yield (chunk, embedding table) for consecutive chunks of ``data``; memory stays flat.

        Three stages overlap: a background thread reads and scales the next chunk; on the CPU, ``threads``
        single-threaded workers (default: torch's thread count, i.e. ``OMP_NUM_THREADS`` or the cores; see
        :mod:`archetool.threads`) run the model on the current one; the caller writes the one before.
        ``obs_columns``: the columns wanted in ``chunk.obs`` (None: all). ``read_options`` (``--layer``,
        ``--sep``) and ``allow_missing_features``: see :func:`~archetool.data.prepare.iter_inference_chunks`.
        ``shift_check``: warn when the data lie far from the training distribution (:mod:`archetool.shift`).
        """
        import torch

        from archetool.threads import forward_pool, prefetch

        workers = int(threads or torch.get_num_threads())
        step = max(1, min(batch_size, -(-batch_rows // workers)))  # a batch per worker even in small (wide) chunks
        # features are standardised batch by batch in the forward pass (cache-hot), not chunk by chunk
        monitor = self.shift_monitor() if shift_check else None
        chunks = prefetch(iter_inference_chunks(data, self.prep, batch_rows, read_options=read_options, obs_columns=obs_columns,
                                                scale=False, allow_missing_features=allow_missing_features))
        scaling = self._scaling_tensors()
        try:
            with forward_pool(self.device, workers) as pool:
                # with workers, chunk i's table is built and handed out while they already run chunk i+1
                # (and chunk i+2 is read): no core waits for the writer. At most three chunks are alive.
                pending = None
                for chunk in chunks:
                    running = (chunk, self._start_transform(chunk.x, step, pool, None if chunk.scaled else scaling, monitor))
                    del chunk
                    if pool is None:  # computed in the calling thread, now
                        yield self._finish_chunk(data, *running, monitor=monitor)
                        continue
                    if pending is not None:
                        yield self._finish_chunk(data, *pending, monitor=monitor)
                    pending = running
                if pending is not None:
                    yield self._finish_chunk(data, *pending, monitor=monitor)
        finally:
            chunks.close()
        warning = monitor.warning(data) if monitor is not None else None
        if warning:
            log.warning("%s", warning)

    def shift_monitor(self):
        """A :class:`~archetool.shift.ShiftMonitor` on the model's training reference, or None (models
        saved without one)."""
        from archetool.shift import ShiftMonitor

        reference = getattr(self.prep, "reference", None)
        return ShiftMonitor(reference) if reference and "row_ms_q99" in reference else None

    def _finish_chunk(self, data, chunk: InferenceChunk, parts: list, monitor=None) -> tuple[InferenceChunk, pd.DataFrame]:
        try:
            outputs = self._gather(parts) if parts else self._empty_outputs()
        except _InfiniteValue as err:
            raise infinite_value_error(data, chunk.ids, self.prep.feature_names, err.row, err.col) from None
        except _NonFiniteOutput as err:
            raise self._nonfinite_output_error(data, chunk, err.row, err.col) from None
        figures = outputs.pop("_shift", None)
        if monitor is not None and figures:
            monitor.add(figures)
        return chunk, self.embedding_frame(chunk.ids, outputs)

    def _nonfinite_output_error(self, data, chunk: InferenceChunk, row: int, col: int) -> InputError:
        """The one-line error for a row whose embedding is not finite, naming its most extreme feature."""
        value = float(chunk.x[row, col])
        mean = std = None
        if self.prep.x_mean is not None:
            mean, std = float(self.prep.x_mean[col]), float(self.prep.x_std[col])
            if chunk.scaled:
                value = value * std + mean
        sds = f", {abs(value - mean) / std:.3g} standard deviations from the training mean {mean:.4g}" if std else ""
        return InputError(f"{data}: the row with id {str(chunk.ids[row])!r} gives a non-finite embedding; its most extreme "
                          f"feature is {self.prep.feature_names[col]!r} = {value:.4g}{sds}; correct or remove that row")

    def _empty_outputs(self) -> dict[str, np.ndarray]:
        """``module.embed``'s outputs for zero rows (a chunk whose every SMILES is invalid), with their widths."""
        probe = np.zeros((1, len(self.prep.feature_names)), np.float32)
        return {key: value[:0] for key, value in self._forward_rows(probe, 0, 1).items()}

    @reports
    def embed(self, data, batch_size: int = 4096, inplace: bool = True, shift_check: bool = True) -> pd.DataFrame:
        """Embed ``data`` (a file path, an AnnData, a DataFrame or an array with the model's feature
        columns) and return the embedding table: id column, z0.., the model's columns (Python API).

        An AnnData also gets, unless ``inplace=False``, the same annotations ``embed --out x.h5ad`` writes:
        obsm["X_<model>"] (n, d), obsm["deepaa_weights"] (deepaa) and obs["<model>_pred_label"] (categorical)
        / obs["<model>_pred_<side>"]. ``shift_check=False``: no distribution-shift warning.
        """
        frames = [frame for _, frame in self.iter_embeddings(data, batch_size=batch_size, shift_check=shift_check)]
        table = pd.concat(frames, ignore_index=True)
        from archetool.data.readers.memory import is_anndata

        if inplace and is_anndata(data):
            from archetool.embedding import anndata_annotations

            obsm, obs, categories = anndata_annotations(self, table)
            for key, value in obsm.items():
                data.obsm[key] = value
            for key, value in obs.items():
                if key in categories:
                    value = pd.Categorical(value, categories=[str(c) for c in categories[key]])
                data.obs[key] = value  # positional: one value per cell, in order
        return table

    # --- analyses (the CLI commands call these) -----------------------------------------------
    def analysis_rows(self, data=None) -> pd.DataFrame | None:
        """The rows analyses use: the embedding table of ``data`` (+ SMILES, side values, labels), else
        the stored training rows (None when there are none)."""
        from archetool.analysis.base import analysis_rows

        if data is None and self.training_rows is None:
            return None
        return analysis_rows(self, data)

    @reports
    def archetypes(self, data=None) -> pd.DataFrame:
        """The archetypes (deepaa: a0..; nvae/svqvae: one row per class code) with their latent points,
        nearest real molecules where the rows hold SMILES, predicted side values and decoded features in
        the input's units -- ``archetypes.csv`` of ``archetool archetypes``. ``data``: rows for the per-class
        counts and nearest molecules (default: the training rows)."""
        from archetool.analysis import adapter
        from archetool.analysis.base import analysis_rows

        return adapter(self.kind).archetypes_table(self, analysis_rows(self, data))

    @reports
    def interpolate(self, start: str | None = None, end: str | None = None, steps: int = 10,
                    grid: int | None = None, data=None, distinct: bool = True) -> pd.DataFrame:
        """Decode ``steps`` points on the straight latent line from ``start`` to ``end`` (an archetype a0..,
        a class label, or a sample id of ``data`` / the training rows), or, deepaa only, a barycentric
        ``grid`` with that many steps per edge (``archetool interpolate``). Molecule models: ``distinct``
        (default) gives a point whose greedy molecule an earlier point has the most likely new one sampled at
        it; False keeps every greedy decode (``--allow-repeats``)."""
        from archetool.analysis import adapter
        from archetool.errors import ArchetoolError

        analysis = adapter(self.kind)
        rows = self.analysis_rows(data)
        if grid is not None:
            if not hasattr(analysis, "grid"):
                raise ArchetoolError(f"--grid applies to deepaa models; {self.directory or 'this model'} is {self.kind}")
            return analysis.grid(self, grid, rows, distinct=distinct)
        if start is None or end is None:
            raise ArchetoolError("interpolate needs --start and --end (or --grid N for deepaa)")
        return analysis.interpolate(self, start, end, steps, rows, distinct=distinct)

    @reports
    def sample(self, n: int = 10, label: str | None = None, temperature: float | None = None, archetype: str | None = None,
               spread: float = 0.2, weights: list[float] | None = None, seed: int = 0,
               data: str | Path | None = None, target: dict | list[str] | None = None,
               reference: str | Path | None = None, prior: str = "posterior") -> pd.DataFrame:
        """Draw ``n`` points from the model's prior and decode them (what ``archetool sample`` writes).

        Molecule models with a sequence decoder generate one new molecule per row (``smiles``, ``novel``, the
        most similar training molecule and its Tanimoto similarity); the set's validity, uniqueness, novelty
        and internal diversity are in ``table.attrs["generation"]`` and logged. deepaa: ``archetype`` ("aI",
        near that vertex, ``spread`` in [0, 1]) or ``weights`` (a point of the simplex); nvae/svqvae: ``label``.
        ``temperature`` scales the latent noise and the token sampling (None: the model kind's default, deepaa
        with a sequence decoder 0.7, else 1.0). ``data``: real rows for the nearest
        neighbours (default: the training rows). Seeded by ``seed``. deepaa ``prior``: "posterior" (default:
        the training rows' mixture weights, where the decoder was trained) or "dirichlet".

        ``target`` ({"logp": 3.5}, or ["logp=3.5"]): targeted design (deepaa): points whose predicted side
        values are nearest the target, 4·n decoded, re-predicted, and the n nearest returned, ranked by ``distance``
        of the re-prediction to the target; columns ``pred_<side>`` (predicted at the latent point) and ``repred_<side>`` (the decoded
        molecule embedded again). ``reference``: a SMILES file or CSV that ``novel`` and the most similar
        molecule are judged against (default: the training molecules).
        """
        import torch

        from archetool.analysis import adapter, generation
        from archetool.errors import ArchetoolError

        extra = {}
        if archetype is not None or weights is not None:
            if self.kind != "deepaa":
                flag = "--archetype" if archetype is not None else "--weights"
                raise ArchetoolError(f"{flag} applies to deepaa models (points of the archetype simplex); this model is "
                                     f"{self.kind}: choose a class with --label")
            extra = {"archetype": archetype, "spread": spread, "weights": weights}
        if temperature is None:
            temperature = adapter(self.kind).default_temperature(self)
        if not np.isfinite(temperature) or temperature < 0:
            raise ArchetoolError(f"--temperature {temperature}: must be a finite number >= 0")
        if self.kind == "deepaa" and target is None:
            extra["prior"] = prior
        if target is not None:
            if label is not None or extra:
                raise ArchetoolError("--target chooses where to sample by itself; drop --label, --archetype and --weights")
            target = generation.parse_targets(self, target)
        ref = generation.Reference.read(reference) if reference is not None else None
        rows = self.analysis_rows(data)
        torch.manual_seed(seed)
        self.reference_set = ref
        try:
            if target is not None:
                table = adapter(self.kind).target_sample(self, n, target, temperature, rows)
            else:
                table = adapter(self.kind).sample(self, n, label, temperature, rows, **extra)
        finally:
            self.reference_set = None
        if "generation" in table.attrs:
            log.info(generation.metrics_line(table.attrs["generation"]))
        elif generation.is_molecule_model(self):
            log.warning(generation.no_decoder_reason(self))
        return table

    # --- helpers for analyses -----------------------------------------------------------------
    def decode_features(self, x_model: np.ndarray) -> pd.DataFrame:
        """Model-space feature means (m, p) -> DataFrame in original units under the input's feature names."""
        return pd.DataFrame(self.prep.unscale_x(np.asarray(x_model, np.float32)), columns=self.prep.feature_names)

    def info(self) -> dict:
        """A summary for ``archetool info``."""
        n_params = sum(p.numel() for p in self.module.parameters())
        return _info(self.config, self.prep, self.directory, self.module.latent_dim, n_params)


def describe(directory: str | Path) -> dict:
    """The ``archetool info`` summary of a model directory, read from its JSON files alone (no torch, so
    no thread pools to outlive the interpreter) when config.json records ``latent_dim`` and ``parameters``
    (as ``fit`` does since this version); older models are loaded."""
    from archetool.analysis import ADAPTERS

    directory = Path(directory)
    config = _read_config(directory, ADAPTERS)
    if not {"latent_dim", "parameters"} <= set(config):
        return ArchetoolModel.load(directory).info()
    try:
        prep = Preprocessing.from_dict(_read_json(directory / PREPROCESSING))
        prep.feature_names  # noqa: B018 -- a KeyError here means a corrupt file
    except (TypeError, ValueError, KeyError) as err:
        raise ModelDirError(f"{directory}: invalid configuration ({err}); the model directory is corrupt or from another version") from None
    import zipfile

    if not (directory / WEIGHTS).is_file():
        raise ModelDirError(f"{directory}: {WEIGHTS} is missing; re-run 'archetool fit'")
    if not zipfile.is_zipfile(directory / WEIGHTS):  # torch.save writes a zip archive
        raise ModelDirError(f"{directory / WEIGHTS}: not a saved torch state dict (truncated or corrupt); re-run 'archetool fit'")
    return _info(config, prep, directory, config["latent_dim"], config["parameters"])


def _info(config: dict, prep: Preprocessing, directory: Path | None, latent_dim: int, n_params: int) -> dict:
    return {
        "model": config.get("model"),
        "directory": str(directory) if directory else None,
        "archetool_version": config.get("archetool_version"),
        "data": config.get("data"),
        "features": f"{len(prep.feature_names)} ({prep.featurizer['name']}, {prep.likelihood} likelihood)",
        "side": ", ".join(prep.side_names) or None,
        "label": prep.label_column,
        "classes": len(prep.classes) or None,
        "latent_dim": latent_dim,
        "decoder": (f"{prep.sequence.get('kind', 'selfies')} ({len(prep.sequence['symbols'])} symbols, up to {prep.sequence['max_length']})"
                    if prep.sequence and (config.get("hparams") or {}).get("sequence_decoder") else None),
        "parameters": n_params,
        "hparams": config.get("hparams"),
        "train": config.get("train"),
        "summary": config.get("summary"),
    }


class _RowProblem(Exception):
    """A forward pass's complaint about (row of the chunk, feature column); :meth:`_finish_chunk` words it."""

    def __init__(self, row: int, col: int):
        super().__init__(row, col)
        self.row, self.col = row, col


class _InfiniteValue(_RowProblem):
    """The input holds +-inf at (row, col)."""


class _NonFiniteOutput(_RowProblem):
    """The output is not finite for row; its most extreme feature is col."""


def _read_config(directory: Path, kinds) -> dict:
    """config.json of a model directory, checked: it exists, is an archetool config of a kind in ``kinds``."""
    if not directory.exists():
        raise ModelDirError(f"{directory}: no such model directory; pass the --out directory of 'archetool fit'")
    if not directory.is_dir() or not (directory / CONFIG).is_file():
        raise ModelDirError(f"{directory}: not an archetool model directory (no {CONFIG}); pass the --out directory of 'archetool fit'")
    config = _read_json(directory / CONFIG)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelDirError(f"{directory / CONFIG}: not an archetool model config (missing \"format\": \"{FORMAT}\")")
    kind = config.get("model")
    if kind not in kinds:
        raise ModelDirError(f"{directory / CONFIG}: unknown model kind {kind!r}; known kinds: {', '.join(kinds)}")
    return config


def _read_json(path: Path):
    if not path.is_file():
        raise ModelDirError(f"{path}: missing; the model directory is incomplete (re-run 'archetool fit')")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelDirError(f"{path}: not valid JSON ({err}); the model directory is corrupt") from None

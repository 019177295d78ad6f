"""Shared analysis machinery: which rows to analyse, latent endpoints, nearest molecules, interpolation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from archetool.errors import ArchetoolError, InputError, preview


def analysis_rows(model, data: str | Path | None = None, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Embedding table (+ smiles, side values, labels when known) of ``data``, or of the training rows.

    Columns: the id column first, z0.., model columns, then ``smiles``, side and label columns if present,
    then the requested per-row ``columns`` of ``data`` that it has (e.g. an obs key to colour a plot by).
    """
    if data is None:
        if model.training_rows is None:
            raise ArchetoolError(f"{model.directory}: the model has no stored training rows; pass --data DATA")
        return model.training_rows
    from archetool.data.readers.memory import describe
    from archetool.progress import RowProgress

    frames = []
    prep = model.prep
    name = Path(data).name if isinstance(data, (str, os.PathLike)) else describe(data)
    with RowProgress(f"embed {name}") as progress:  # a bar on a terminal, else rows/s lines
        for chunk, frame in model.iter_embeddings(data):
            progress.update(len(frame) + len(chunk.rejects))
            if chunk.smiles is not None:
                frame.insert(1, "smiles", chunk.smiles)
            for name in prep.side_names:
                if name in chunk.obs.columns:
                    frame[name] = pd.to_numeric(chunk.obs[name], errors="coerce").to_numpy()
            if prep.label_column and prep.label_column in chunk.obs.columns:
                frame[prep.label_column] = chunk.obs[prep.label_column].astype(str).to_numpy()
            for name in columns:
                if name in chunk.obs.columns and name not in frame.columns:
                    frame[name] = chunk.obs[name].to_numpy()
            frames.append(frame)
    rows = pd.concat(frames, ignore_index=True)
    if len(rows) == 0:
        raise InputError(f"{data}: no usable rows")
    if isinstance(data, (str, Path)):
        rows.attrs["data"] = str(data)  # lets an analysis re-read the rows' features (nvae's KL detector)
    return rows


def exemplar_legends(exemplars: pd.DataFrame, group: str) -> tuple[list[str], list[str]]:
    """(SMILES, legends '<group> #<rank> <id>') of an exemplars table; empty lists without a smiles column."""
    if "smiles" not in exemplars.columns or not len(exemplars):
        return [], []
    legends = [f"{r[group]} #{r['rank']} {r['id']}" for _, r in exemplars.iterrows()]
    return exemplars["smiles"].tolist(), legends


def latent_matrix(rows: pd.DataFrame, latent_dim: int) -> np.ndarray:
    """The (n, d) latent means z0..z{d-1} of an embedding table."""
    return rows[[f"z{j}" for j in range(latent_dim)]].to_numpy(np.float32)


def id_column(model) -> str:
    return model.prep.id_column or "id"


def find_row(model, rows: pd.DataFrame, sample_id: str) -> int | None:
    matches = np.flatnonzero(rows[id_column(model)].astype(str).to_numpy() == str(sample_id))
    return int(matches[0]) if len(matches) else None


def nearest_rows(model, rows: pd.DataFrame, latent: np.ndarray, n: int = 1) -> pd.DataFrame:
    """For each latent point (m, d): the ``n`` nearest rows (id, smiles if any, distance), as flat columns."""
    import torch

    z = torch.from_numpy(latent_matrix(rows, model.module.latent_dim))
    dist = torch.cdist(torch.from_numpy(np.asarray(latent, np.float32)), z)
    d, idx = dist.topk(min(n, z.shape[0]), largest=False)
    out = {}
    ids = rows[id_column(model)].astype(str).to_numpy()
    for r in range(idx.shape[1]):
        suffix = "" if n == 1 else f"_{r + 1}"
        out[f"nearest_id{suffix}"] = ids[idx[:, r].numpy()]
        if "smiles" in rows.columns:
            out[f"nearest_smiles{suffix}"] = rows["smiles"].to_numpy()[idx[:, r].numpy()]
        out[f"nearest_distance{suffix}"] = d[:, r].numpy()
    return pd.DataFrame(out)


def line_between(start: np.ndarray, end: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` evenly spaced points on the segment start -> end: (fractions (steps,), points (steps, d))."""
    if steps < 2:
        raise ArchetoolError(f"--steps must be at least 2, got {steps}")
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    return t, (1 - t)[:, None] * start[None, :] + t[:, None] * end[None, :]


def unknown_endpoint(spec: str, what: str, choices, total: int | None = None) -> ArchetoolError:
    """``choices``: the first few valid endpoints; ``total``: how many there are in all."""
    return ArchetoolError(f"endpoint {spec!r} is neither {what}; use one of: {preview(choices, 8, total)}")


def check_class_model_options(options, kind: str, module_cls, purpose: str) -> None:
    """Option checks shared by the class-conditioned models (nvae, svqvae), made before any data are read:
    a --label (or --labels) is required, --side is refused, and --set keys must be hyper-parameters."""
    import inspect

    if options.label is None and options.labels_file is None:
        raise ArchetoolError(f"--model {kind} needs --label COL: the class column (obs key for .h5ad, "
                             "column-metadata field such as pert_iname for .gctx), or --labels FILE")
    if options.side:
        raise ArchetoolError(f"--side {' '.join(options.side)}: side variables apply to deepaa; "
                             f"{kind} {purpose} (drop --side)")
    fixed = ("self", "n_features", "n_classes", "likelihood")
    allowed = [n for n in inspect.signature(module_cls.__init__).parameters if n not in fixed]
    unknown = [k for k in options.model_options if k not in allowed]
    if unknown:
        raise ArchetoolError(f"--set {unknown[0]}: not an {kind} hyper-parameter; choose from {', '.join(allowed)}")


class ModelAnalysis:
    """Defaults shared by the adapters; subclasses override what differs.

    Each adapter provides ``codes(model)`` (K, d): the latent points of its archetypes or classes, named by
    :meth:`code_names`, and ``decode_table(model, latent (m, d), ...)``: an (m, ·) table of decoded features.
    """

    #: what a named ``interpolate`` endpoint is, for the error message
    code_kind = "a class label"
    #: SequenceDecoder settings for this model's molecules (fit --decoder smiles|selfies)
    decoder_defaults: dict = {}

    def check_options(self, options) -> None:
        pass

    def default_temperature(self, model) -> float:
        """``sample``'s temperature when none is given."""
        return 1.0

    def target_sample(self, model, n: int, target: dict, temperature: float = 1.0, rows=None) -> pd.DataFrame:
        """Targeted design needs a side head; class-conditioned models have none (deepaa overrides this)."""
        raise ArchetoolError(f"--target needs a model fitted with --side (deepaa); {model.directory or 'this model'} is "
                             f"{model.kind}, which predicts classes: choose a class with --label instead")

    #: module attributes that :meth:`held_out_summary` fits on the validation rows (calibration); a refit on all
    #: rows (``fit --refit``) takes them from the model before it, which never saw those rows
    calibration: tuple[str, ...] = ()

    def after_training(self, module, data, train_index, val_index, chosen: dict | None = None) -> dict:
        """Fit what is fitted outside the training loop once the weights are trained (``train_index``: the rows the module
        trained on; ``val_index``: its held-out rows, may be empty; ``chosen``: what this returned for the model
        before a refit, whose choices the refit keeps). Returns figures for config.json's summary."""
        return {}

    def summary(self, model, data, val_index) -> dict:
        """config.json's model figures: :meth:`fit_summary` and :meth:`held_out_summary`."""
        return {**self.fit_summary(model, data), **self.held_out_summary(model, data, val_index)}

    def fit_summary(self, model, data) -> dict:
        """Figures of the kept model over all of its rows (nothing held out)."""
        return {}

    def held_out_summary(self, model, data, val_index) -> dict:
        """Figures on the validation rows ``val_index`` (and the :attr:`calibration` fitted on them)."""
        return {}

    def carry_calibration(self, source, target) -> None:
        """Copy :attr:`calibration` from module ``source`` (fitted on held-out rows) to module ``target``."""
        for name in self.calibration:
            setattr(target, name, getattr(source, name))

    def label_column(self, model) -> str:
        return model.prep.label_column or "label"

    def classes(self, model) -> list[str]:
        return [str(c) for c in model.prep.classes]

    def class_index(self, model, label) -> int | None:
        classes = self.classes(model)
        return classes.index(str(label)) if str(label) in classes else None

    def code_names(self, model) -> list[str]:
        """Names of the rows of ``codes(model)``: the classes (deepaa: a0..)."""
        return self.classes(model)

    def endpoint(self, model, spec: str, rows: pd.DataFrame | None) -> np.ndarray:
        """The latent point (d,) an ``interpolate`` endpoint names: a code (see :meth:`code_names`), else a row id."""
        names = self.code_names(model)
        if str(spec) in names:
            return self.codes(model)[names.index(str(spec))]
        if rows is not None:
            i = find_row(model, rows, spec)
            if i is not None:
                return latent_matrix(rows, model.module.latent_dim)[i]
        choices = names + (rows[id_column(model)].astype(str).head(8 - min(len(names), 3)).tolist() if rows is not None else [])
        total = len(names) + (len(rows) if rows is not None else 0)
        raise unknown_endpoint(spec, f"{self.code_kind} nor a sample id of the data", choices, total)

    def points_table(self, model, front: pd.DataFrame, latent: np.ndarray, rows: pd.DataFrame | None = None,
                     n_nearest: int = 1, molecules: str | None = None, temperature: float = 0.0,
                     distinct: bool = False, **decode) -> pd.DataFrame:
        """One row per latent point (m, d): the ``front`` columns (m rows: index, class, weights ...), then the
        generated molecules when the model has a sequence decoder and ``molecules`` is "smiles" (``smiles``,
        ``novel``) or "full" (also the most similar training molecule and its Tanimoto similarity; the set's
        metrics go to ``table.attrs["generation"]``), decoded at ``temperature`` (0: greedy; with ``distinct``, for
        the archetypes, an ``interpolate`` line or a grid, a repeat of an earlier point's molecule is replaced as
        :func:`generation.generate_smiles` says); then, when
        ``rows`` hold molecules, the ``n_nearest`` nearest real ones in latent space (:func:`nearest_rows`);
        then ``decode_table(model, latent, **decode)`` (``pred_<side>``: predicted at the latent point), with
        ``repred_<side>`` (the generated molecule embedded again and predicted) after the predictions."""
        from archetool.analysis import generation

        parts = [front]
        metrics, smiles = None, None
        if molecules is not None and generation.has_decoder(model):
            smiles = generation.generate_smiles(model, latent, decode.get("labels"), temperature, distinct=distinct)
            reference = generation.Reference.of(model, rows)
            # the molecules come right after the index column (sample, step, archetype or class)
            parts = [front.iloc[:, :1], generation.molecule_columns(smiles, reference, full=molecules == "full"),
                     front.iloc[:, 1:]]
            if molecules == "full":
                metrics = generation.generation_metrics(smiles, reference)
        if rows is not None and "smiles" in rows.columns:
            parts.append(nearest_rows(model, rows, latent, n=n_nearest))
        decoded = self.decode_table(model, latent, **decode)
        if smiles is not None and model.prep.side_names:  # beside each pred_<side>: the decoded molecule's own
            at = max(decoded.columns.get_loc(f"pred_{s}") for s in model.prep.side_names) + 1
            decoded = pd.concat([decoded.iloc[:, :at], generation.repredict(model, smiles), decoded.iloc[:, at:]], axis=1)
        parts.append(decoded)
        table = pd.concat(parts, axis=1)
        if metrics is not None:
            table.attrs["generation"] = metrics
        return table

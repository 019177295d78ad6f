"""``embed``: stream a data file through a fitted model into an embedding file (or stdout)."""

from __future__ import annotations

import logging
import sys
import time
from contextlib import closing, nullcontext
from pathlib import Path

import numpy as np

from archetool.errors import ArchetoolError

log = logging.getLogger("archetool")

#: most bytes of float32 features in one chunk; ``chunk_rows`` is lowered for wide inputs to stay under it
CHUNK_BYTES = 32 << 20


def effective_chunk_rows(chunk_rows: int, n_features: int, batch_size: int) -> int:
    """Rows per chunk: ``chunk_rows``, lowered so a chunk holds at most :data:`CHUNK_BYTES` of features
    (978 genes: 8,192 rows; 20,000 genes: 419), rounded down to whole forward passes of ``batch_size``.

    Peak memory is then flat and small whatever the width (a 65,536-row chunk of a 20k-gene h5ad
    would be 5 GB; two chunks are alive while the next is read ahead), and smaller blocks read faster:
    blocks under 32 MiB reuse heap memory instead of fresh pages (8,192 rows of 978 genes: about 10 % less
    CPU per row to read than 16,384).
    """
    cap = max(1, CHUNK_BYTES // (4 * max(int(n_features), 1)))
    if cap >= batch_size:
        cap -= cap % batch_size
    return max(1, min(int(chunk_rows), cap))


def embed_to(model_dir: str | Path, data: str | Path, out: str | Path | None, batch_size: int = 1024,
             chunk_rows: int = 65536, device: str = "auto", threads: int | None = None,
             read_options=None, allow_missing_features: bool = False) -> int:
    """Embed ``data`` chunk by chunk; write CSV/TSV/Parquet/.npy as it goes, or an .h5ad with obsm.

    ``chunk_rows`` is an upper bound: see :func:`effective_chunk_rows`. ``threads``: CPU workers for the
    forward passes (default: torch's thread count, i.e. ``OMP_NUM_THREADS`` or the cores); the next chunk
    is read meanwhile. Returns the number of rows written. Invalid SMILES are reported and listed in
    ``<out>.rejects.csv``. ``read_options``: a :class:`~archetool.data.source.ReadOptions` (``--layer``,
    ``--sep``); ``allow_missing_features``: fill missing features with the training mean (a warning)
    instead of refusing.
    """
    from archetool.data.readers import data_extension, open_source
    from archetool.io_tables import TableWriter, output_format
    from archetool.model import ArchetoolModel
    from archetool.progress import RowProgress

    model = ArchetoolModel.load(model_dir, device=device)
    rows = effective_chunk_rows(chunk_rows, len(model.prep.feature_names), batch_size)
    if rows < chunk_rows:
        log.debug("reading %d rows at a time (%d features: chunks stay under %d MiB)", rows,
                  len(model.prep.feature_names), CHUNK_BYTES >> 20)
    chunk_rows = rows
    out = Path(out) if out is not None else None
    fmt = output_format(out) if out is not None else ".csv"
    if fmt == ".h5ad":
        if data_extension(Path(data)) != ".h5ad":
            raise ArchetoolError(f"{out}: .h5ad output needs .h5ad input (the embedding is added to its obsm); use .parquet or .csv")
        return _embed_to_h5ad(model, Path(data), out, batch_size, chunk_rows, threads, read_options, allow_missing_features)
    n_rows = open_source(data).n_rows if fmt == ".npy" else None
    tic, written, rejects = time.perf_counter(), 0, []
    # embed needs no per-row metadata (LINCS fields); the next chunk is read while the model runs
    with closing(model.iter_embeddings(data, chunk_rows, batch_size, threads, obs_columns=(), read_options=read_options,
                                       allow_missing_features=allow_missing_features)) as chunks, \
            (TableWriter(out, n_rows=n_rows) if out is not None else nullcontext()) as writer, \
            RowProgress("embed", total=n_rows) as progress:
        for chunk, frame in chunks:
            rejects.append(chunk.rejects)
            progress.update(len(frame) + len(chunk.rejects))
            if len(frame) == 0:  # every SMILES of the chunk invalid: nothing to write (yet)
                continue
            if writer is None:
                frame.to_csv(sys.stdout, index=False, header=not written)
            elif fmt == ".npy" and sum(len(r) for r in rejects):
                raise ArchetoolError(f"{data}: {sum(len(r) for r in rejects)} invalid SMILES; .npy output cannot keep ids aligned, use .parquet or .csv")
            else:
                writer.write(frame)
            written += len(frame)
            del chunk, frame  # memory: only the chunk being read stays alive meanwhile
        if written == 0:  # raised inside the writer: nothing is left at --out
            raise _nothing_to_embed(data, rejects)
    _report_rejects(data, out, rejects, written)
    seconds = time.perf_counter() - tic
    log.info("embedded %d rows in %.1fs (%.0f rows/s)%s", written, seconds, written / max(seconds, 1e-9),
             f" -> {out}" if out else "")
    return written


def _nothing_to_embed(data, rejects) -> ArchetoolError:
    """The error for an input without a single row that can be embedded."""
    import pandas as pd

    from archetool.errors import InputError, preview

    frames = [r for r in rejects if len(r)]
    if not frames:
        return InputError(f"{data}: no rows to embed; the file holds a header but no data rows")
    table = pd.concat(frames, ignore_index=True)
    shown = preview([f"{smi!r} (row {row})" for row, smi in zip(table["row"], table["smiles"])], 3)
    return InputError(f"{data}: none of the {len(table)} SMILES could be parsed by RDKit ({shown}); "
                      "check the SMILES column (--smiles-column) and the file's delimiter; nothing was written")


def _report_rejects(data, out: Path | None, rejects, written: int) -> None:
    import pandas as pd

    from archetool.io_tables import write_table

    frames = [r for r in rejects if len(r)]
    if not frames:
        return
    table = pd.concat(frames, ignore_index=True)
    target = (out.with_name(out.name.split(".")[0] + ".rejects.csv") if out else Path(str(Path(data).name).split(".")[0] + ".rejects.csv"))
    write_table(table, target)
    log.warning("%s: %d of %d SMILES could not be parsed and were skipped; rows and SMILES written to %s",
                data, len(table), len(table) + written, target)


def anndata_annotations(model, frame) -> tuple[dict, dict, dict]:
    """What an embedding table adds to an AnnData (``embed --out x.h5ad`` and ``model.embed(adata)``):
    obsm {'X_<kind>': z (n, d) float32, '<kind>_weights': deepaa's a0.. (n, k)}, obs {'<kind>_pred_*': (n,)}
    and, for obs columns of class labels, their categories in class order."""
    kind = model.kind
    z = [c for c in frame.columns if c.startswith("z") and c[1:].isdigit()]
    weights = [c for c in frame.columns if c.startswith("a") and c[1:].isdigit()]
    obsm = {f"X_{kind}": frame[z].to_numpy(np.float32)}
    if weights:
        obsm[f"{kind}_weights"] = frame[weights].to_numpy(np.float32)
    preds = {f"{kind}_{c}": frame[c].to_numpy() for c in frame.columns if c.startswith("pred_")}
    labels = {f"{kind}_pred_label": model.prep.classes} if f"{kind}_pred_label" in preds else {}
    return obsm, preds, labels


def _embed_to_h5ad(model, data: Path, out: Path, batch_size: int, chunk_rows: int, threads: int | None,
                   read_options=None, allow_missing_features: bool = False) -> int:
    """A copy of the input .h5ad with obsm['X_<kind>'] (z), obsm['<kind>_weights'] (deepaa's a0..) and
    obs['<kind>_pred_*'], written chunk by chunk (memory flat, see :mod:`archetool.io_h5ad`)."""
    from archetool.atomic import atomic_path
    from archetool.data.readers import open_source
    from archetool.io_h5ad import H5adAnnotator

    n_rows = open_source(data).n_rows
    kind, written, z_dim = model.kind, 0, 0
    tic = time.perf_counter()
    with atomic_path(out) as tmp, H5adAnnotator(data, tmp, n_rows) as annotator, \
            closing(model.iter_embeddings(data, chunk_rows, batch_size, threads, obs_columns=(), read_options=read_options,
                                          allow_missing_features=allow_missing_features)) as chunks:
        for _, frame in chunks:
            obsm, preds, labels = anndata_annotations(model, frame)
            annotator.write(obsm, preds, labels or None)
            written, z_dim = written + len(frame), obsm[f"X_{kind}"].shape[1]
    seconds = time.perf_counter() - tic
    log.info("embedded %d rows in %.1fs (%.0f rows/s) -> %s with obsm['X_%s'] (%d x %d)", written, seconds,
             written / max(seconds, 1e-9), out, kind, written, z_dim)
    return written

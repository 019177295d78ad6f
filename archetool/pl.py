"""Figures for notebooks (``archetool.pl``), in the style of ``scanpy.pl``: each function returns a
matplotlib Figure and draws on ``ax`` when one is given.

They are the figures ``archetool archetypes`` and ``fit --k 2-8`` save as PNGs, built by the same code
(:mod:`archetool.analysis.plots`) from the same tables. ``data`` is the data to show (a path or an in-memory
AnnData / DataFrame / array); by default the model's training rows.

    archetool.pl.simplex(model)              # deepaa: samples in the archetype simplex
    archetool.pl.exemplar_grid(model)        # molecules nearest each archetype / class code
    archetool.pl.code_heatmap(model)         # nvae / svqvae: class codes' correlations
    archetool.pl.kl_bars(model)              # nvae: KL per latent dimension (class-dependent factors)
    archetool.pl.k_sweep("x.k-sweep/k_sweep.csv")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from archetool.errors import ArchetoolError


def _rows(model, data, columns: tuple[str, ...] = ()):
    from archetool.analysis.base import analysis_rows

    return analysis_rows(model, data, columns)


def _adapter(model):
    from archetool.analysis import adapter

    return adapter(model.kind)


def simplex(model, data=None, color: str | None = None, ax=None):
    """deepaa: every sample placed by its archetype weights in the k-gon whose corners are the archetypes,
    coloured by ``color``: a side, label or pred_* column, or any column / obs key of ``data`` (default:
    the first side variable, else the label, as ``archetool archetypes`` draws it)."""
    if model.kind != "deepaa":
        raise ArchetoolError(f"simplex: needs a deepaa model, this one is {model.kind}")
    from archetool.analysis import plots

    rows = _rows(model, data, (color,) if color and data is not None else ())
    args = _adapter(model).simplex_inputs(model, rows, color)
    return plots.simplex_figure(*args, ax=ax)


def exemplar_grid(model, data=None, n_exemplars: int = 5, ax=None):
    """Molecule drawings of the exemplars of each archetype (deepaa) or class code (nvae, svqvae), one row each."""
    from archetool.analysis import plots

    smiles, legends = _adapter(model).exemplar_molecules(model, _rows(model, data), n_exemplars)
    if not smiles:
        raise ArchetoolError("exemplar_grid: draws molecules, but the rows hold no SMILES")
    return plots.molecule_grid_figure(smiles, legends, n_exemplars, ax=ax)


def code_heatmap(model, what: str = "correlations", ax=None):
    """nvae / svqvae: clustered heatmap of the class codes' ``what``: "correlations", "distances", or
    "prototypes" (correlations of the decoded class prototypes)."""
    from archetool.analysis import plots
    from archetool.analysis.svqvae import code_correlations, code_distances

    if model.kind not in ("nvae", "svqvae"):
        raise ArchetoolError(f"code_heatmap: needs a class model (nvae, svqvae), this one is {model.kind}")
    analysis = _adapter(model)
    codes, classes = analysis.codes(model), analysis.classes(model)
    label = analysis.label_column(model)
    if what == "correlations":
        return plots.heatmap_figure(code_correlations(codes), classes, f"{model.kind}: correlation of the class codes ({label})",
                                    vmin=-1.0, vmax=1.0, ax=ax)
    if what == "distances":
        return plots.heatmap_figure(code_distances(codes), classes, f"{model.kind}: distance between the class codes ({label})",
                                    cmap="viridis_r", vmin=0.0, ax=ax)
    if what == "prototypes":
        proto = _prototypes(model, analysis, codes)
        return plots.heatmap_figure(code_correlations(proto), classes,
                                    f"{model.kind}: correlation of the decoded class prototypes ({label})",
                                    vmin=-1.0, vmax=1.0, ax=ax)
    raise ArchetoolError(f"code_heatmap: what={what!r}; choose correlations, distances or prototypes")


def _prototypes(model, analysis, codes: np.ndarray) -> np.ndarray:
    """The decoded class prototypes in model space (K, p)."""
    if model.kind == "nvae":
        return analysis.decode_latent(model, codes, np.arange(len(codes)))
    import torch

    with torch.no_grad():
        return model.module.decode(torch.from_numpy(codes).to(model.device)).cpu().numpy()


def kl_bars(model, data=None, ax=None):
    """nvae: mean KL of each latent dimension (class latent z_c and shared latent z_s); high bars are the
    factors the model uses. Measured on ``data`` when given (its labels, else the predicted classes), else
    the record made on the training rows."""
    from archetool.analysis import plots

    if model.kind != "nvae":
        raise ArchetoolError(f"kl_bars: needs an nvae model, this one is {model.kind}")
    rows = pd.DataFrame()  # the detector streams ``data`` itself (any input the model can embed)
    if data is not None:
        rows.attrs["data"] = data
    table, note = _adapter(model).kl_detector(model, rows)
    bars, ticks = _adapter(model).kl_bar_values(table)
    return plots.bar_figure(bars, f"nvae: mean KL per latent dimension ({note})", "KL (nats)", tick_labels=ticks, ax=ax)


def k_sweep(table, columns: list[str] | None = None, axes=None):
    """The k sweep (``fit --k 2-8``): held-out errors against k, mean +- sd over the seeds. ``table``: the
    k_sweep.csv path or DataFrame (one row per k and seed, plus mean/sd rows)."""
    from archetool.analysis import plots

    if isinstance(table, (str, Path)):
        table = pd.read_csv(table, dtype={"seed": str})
    per_seed = table[~table["seed"].astype(str).isin(["mean", "sd"])] if "seed" in table.columns else table
    per_seed = per_seed.copy()
    if columns is None:
        columns = [c for c in ("val_side_mse", "val_recon_mse") if c in per_seed.columns]
    return plots.k_sweep_figure(per_seed, columns, axes=axes)

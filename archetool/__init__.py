"""archetool: interpretable representations of molecules, expression profiles and tables.

Python API (heavy libraries load on first use)::

    import archetool
    model = archetool.fit("molecules.smi", side=["heat_capacity"], k=4, epochs=50)
    model = archetool.load("molecules.deepaa.archetool")
    table = model.embed("more_molecules.smi")

    model = archetool.fit(adata, model="nvae", label="bulk_labels")   # an AnnData in memory
    model.embed(adata)              # fills adata.obsm["X_nvae"], adata.obs["nvae_pred_label"]
    archetool.pl.kl_bars(model)     # figures: archetool.pl

    archetool.settings.verbosity = "warning"   # quiet (default "info"); or fit(..., verbose=False)
"""

from __future__ import annotations

import os as _os

__version__ = "0.1.0"

# OpenMP threads that wait sleep instead of spinning (unless the user chose a policy): with other jobs on
# the cores, spinning waiters took 725 s against 51 s for the same 2-thread fit (benchmarks/results/threads.md).
# The old default (2 spinning threads) took 286 s for the README's main job at load 5, against 21 s now.
# It must be set before torch loads its OpenMP runtime; archetool imports torch only later.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from archetool._settings import settings  # noqa: E402  (logging only: no heavy import)


def fit(data, verbose=None, **options):
    """Train a model on ``data``; keywords are the :class:`archetool.fitting.FitOptions` fields
    (model, side, label, k, epochs, out, layer, likelihood, device, ...). Returns an
    :class:`archetool.model.ArchetoolModel`; its ``repr`` shows its directory and held-out scores.

    Like the CLI it reports on stderr where the model was saved, the epoch losses (a progress bar on a
    terminal or in a notebook) and the scores. ``verbose``: False (or ``"warning"``) for warnings only,
    True / ``"info"`` / ``"debug"``; None: :data:`archetool.settings` ``.verbosity``. Under configured
    logging (``logging.basicConfig``, pytest) the ``"archetool"`` logger's records go there instead.

    ``data``: a file path; an AnnData (``X`` or ``layer=``; ``side``/``label`` are ``obs`` keys); a pandas
    DataFrame (numeric columns are the features, or a SMILES column holds molecules); or a 2-D numpy array
    with ``feature_names=``. In-memory data without ``out=`` are saved to a new temporary directory.
    """
    import os

    from archetool.fitting import FitOptions, fit as _fit
    from archetool._settings import api_logging

    if isinstance(options.get("side"), str):
        options["side"] = [options["side"]]
    if isinstance(data, os.PathLike):
        data = str(data)
    with api_logging(verbose):
        return _fit(FitOptions(data=data, **options))


def __getattr__(name):
    if name == "pl":  # figures; imports matplotlib on first use
        import importlib

        return importlib.import_module("archetool.pl")
    raise AttributeError(f"module 'archetool' has no attribute {name!r}")


def load(directory, device: str = "cpu"):
    """Load a model directory written by ``fit``."""
    from archetool.model import ArchetoolModel

    return ArchetoolModel.load(directory, device=device)


def set_threads(threads: int | None) -> None:
    """torch CPU threads for this process's later fits, embeddings and samples (None: the default, chosen
    when each fit starts: the CPUs this process may use less those other jobs keep busy; see
    :func:`archetool.threads.default_threads`). ``fit(threads=N)`` sets it for one fit."""
    from archetool.threads import set_threads as _set

    _set(threads)


__all__ = ["fit", "load", "pl", "set_threads", "settings", "__version__"]

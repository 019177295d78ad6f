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

__version__ = "0.1.0"

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


__all__ = ["fit", "load", "pl", "settings", "__version__"]

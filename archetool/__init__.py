"""archetool: interpretable representations of molecules, expression profiles and tables.

Python API (heavy libraries load on first use)::

    import archetool
    model = archetool.fit("molecules.smi", side=["heat_capacity"], k=4, epochs=50)
    model = archetool.load("molecules.deepaa.archetool")
    table = model.embed("more_molecules.smi")
"""

__version__ = "0.1.0"


def fit(data, **options):
    """Train a model on ``data``; keywords are the :class:`archetool.fitting.FitOptions` fields
    (model, side, label, k, epochs, out, device, ...). Returns an :class:`archetool.model.ArchetoolModel`."""
    from archetool.fitting import FitOptions, fit as _fit

    if isinstance(options.get("side"), str):
        options["side"] = [options["side"]]
    return _fit(FitOptions(data=str(data), **options))


def load(directory, device: str = "cpu"):
    """Load a model directory written by ``fit``."""
    from archetool.model import ArchetoolModel

    return ArchetoolModel.load(directory, device=device)


__all__ = ["fit", "load", "__version__"]

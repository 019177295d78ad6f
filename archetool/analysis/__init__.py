"""Per-model analyses (embedding columns, archetypes/codes, samples, interpolation), chosen by model kind.

Each model has one adapter module here; the CLI and the Python API call them through :func:`adapter`.
"""

from __future__ import annotations

import importlib

ADAPTERS = {
    "deepaa": "archetool.analysis.deepaa:DeepAAAnalysis",
    "nvae": "archetool.analysis.nvae:NVAEAnalysis",
    "svqvae": "archetool.analysis.svqvae:SVQVAEAnalysis",
}


def adapter(kind: str):
    """An instance of the analysis adapter for model ``kind``."""
    module_name, cls_name = ADAPTERS[kind].split(":")
    return getattr(importlib.import_module(module_name), cls_name)()

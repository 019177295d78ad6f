"""Model registry: kind name -> ArchetoolModule subclass (imported lazily)."""

from __future__ import annotations

import importlib

from archetool.models.base import ArchetoolModule

#: kind -> "module:Class"; add a model by adding one line here.
MODEL_REGISTRY: dict[str, str] = {
    "deepaa": "archetool.models.deepaa:DeepAA",
    "nvae": "archetool.models.nvae:NVAE",
    "svqvae": "archetool.models.svqvae:SVQVAE",
}


def model_class(kind: str) -> type[ArchetoolModule]:
    """The module class registered under ``kind`` (KeyError if unknown)."""
    module_name, cls_name = MODEL_REGISTRY[kind].split(":")
    return getattr(importlib.import_module(module_name), cls_name)


def build_model(kind: str, **hparams) -> ArchetoolModule:
    return model_class(kind).build(hparams)


__all__ = ["ArchetoolModule", "MODEL_REGISTRY", "model_class", "build_model"]

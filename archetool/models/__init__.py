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
    """An untrained module; a ValueError names any keyword that is not one of the class's hyper-parameters
    (``"sequence_decoder"`` describes the molecule decoder, see ``ArchetoolModule.build``)."""
    import inspect

    cls = model_class(kind)
    accepted = [n for n in inspect.signature(cls.__init__).parameters if n != "self"]
    unknown = [n for n in hparams if n not in accepted and n != "sequence_decoder"]
    if unknown:
        fixed = ("n_features", "n_classes", "n_side", "likelihood")
        raise ValueError(f"unknown hyper-parameter {unknown[0]!r} (--set {unknown[0]}=...); choose from "
                         f"{', '.join(n for n in accepted if n not in fixed)}")
    return cls.build(hparams)


__all__ = ["ArchetoolModule", "MODEL_REGISTRY", "model_class", "build_model"]

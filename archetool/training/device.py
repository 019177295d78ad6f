"""Device selection: ``auto`` -> CUDA, then Apple MPS, then CPU; any torch device string otherwise."""

from __future__ import annotations

import os

import torch

from archetool.errors import ArchetoolError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            return torch.device(f"cuda:{local % torch.cuda.device_count()}")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ArchetoolError(f"--device {name!r} is not a device torch knows; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ArchetoolError(f"--device {name}: CUDA is not available on this machine; use --device auto or cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ArchetoolError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ArchetoolError(f"--device {name}: Apple MPS is not available on this machine; use --device auto or cpu")
    return device

"""Choosing the torch device a model runs on."""

from __future__ import annotations

import re

from embsel_mlflow.errors import ConfigError, ModelError

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def resolve_device(name: str) -> str:
    """Turn ``model.device`` into a concrete torch device string.

    ``auto`` picks cuda if available, else mps if available, else cpu. An explicit device
    that this machine does not have is refused up front rather than failing mid-run.
    """
    import torch

    name = name.strip().lower()
    if not _DEVICE_PATTERN.match(name):
        raise ConfigError(f"model.device={name!r} is not a device; use auto, cpu, cuda, cuda:N or mps")

    cuda = torch.cuda.is_available()
    mps = torch.backends.mps.is_available()
    if name == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if name.startswith("cuda"):
        if not cuda:
            raise ModelError(
                f"model.device={name} but CUDA is not available here; set model.device=auto or cpu"
            )
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ModelError(
                f"model.device={name} but only {torch.cuda.device_count()} CUDA device(s) exist; "
                "set model.device=cuda:0 or auto"
            )
    if name == "mps" and not mps:
        raise ModelError("model.device=mps but MPS is not available here; set model.device=auto or cpu")
    return name

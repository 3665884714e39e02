"""Where work runs: the device a user asked for (checked), and the words a summary records for it."""

from __future__ import annotations

import os
import platform

import torch

from e2gan.errors import E2GANError


def hardware_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
           f"{torch.get_num_threads()} torch threads)"


def resolve_device(device: str = "auto") -> torch.device:
    """The device inference and evaluation run on (training's is Accelerate's choice)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise E2GANError("CUDA was requested but no GPU is available")
    return torch.device(device)

"""Checks of plain values that need neither torch nor a model: an adapter's strength, LoRA ranks,
an edit's size, a model folder's files.

The engine runs them before it allocates anything; the CLI runs them before it imports torch
(seconds and a gigabyte), so a typo like `--scale nan` is answered at once. Keep this module free
of torch: importing it must stay cheap.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path

from e2gan.errors import E2GANError
from e2gan.limits import MAX_LORA_RANK

# Past a few times the trained strength the generator's output saturates and edits are noise; a
# scale of 1e30 (or NaN) only turns every image black or grey, so it is refused.
MAX_ADAPTER_SCALE = 10.0


def check_ranks(ranks: dict[str, int]) -> None:
    """Every rank a whole number from 1 to the rank limit (`E2GAN_MAX_LORA_RANK`)."""
    for name, rank in ranks.items():
        if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or rank < 1:
            raise E2GANError(f"LoRA rank of layer {name} must be a whole number of at least 1, "
                             f"got {rank!r}")
        MAX_LORA_RANK.check(rank, f"LoRA rank {rank} of layer {name} is too large")


def check_adapter_scale(scale: float) -> float:
    """An adapter strength must be a finite number within +-MAX_ADAPTER_SCALE."""
    if (not isinstance(scale, numbers.Real) or not math.isfinite(scale)
            or abs(scale) > MAX_ADAPTER_SCALE):
        raise E2GANError(f"adapter scale must be a finite number from {-MAX_ADAPTER_SCALE:g} to "
                         f"{MAX_ADAPTER_SCALE:g} (1 is the trained strength), got {scale!r}")
    return float(scale)


def check_edit_size(size: float | None) -> int | None:
    """An edit's short side: None (keep the image's size) or a finite number of at least
    MIN_IMAGE_SIDE pixels (the studio's API may send 256.0, or NaN)."""
    from e2gan.files import MIN_IMAGE_SIDE  # numpy and PIL: only where a size is asked for

    if size is None:
        return None
    if (isinstance(size, bool) or not isinstance(size, numbers.Real)
            or not math.isfinite(size) or size < MIN_IMAGE_SIDE):
        raise E2GANError(f"size must be a number of at least {MIN_IMAGE_SIDE} pixels, got {size!r}")
    return int(size)


def check_model_folder(folder: str | os.PathLike) -> Path:
    """A folder written by `e2gan.checkpoint.save_generator` has its config and its weights."""
    folder = Path(folder)
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise E2GANError(f"{folder} is not a model folder (needs config.json and model.safetensors)")
    return folder

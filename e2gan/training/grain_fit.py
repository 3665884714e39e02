"""After a fine-tune: fit the concept's grain on its training pairs (see models.grain).

The generator's outputs and the teacher's edits of the same sources, at the training size, are
all a fit needs. Sixteen pairs at 128 px hold a quarter of a million pixels, plenty for eight 3x3
covariances and one spectrum, and cost a few seconds of forward passes on a CPU; the pairs are
the training ones (the fit never sees held-out pairs, which judge the result).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from e2gan.models.grain import GRAIN_KERNEL_SIZE, GrainStatistics, fit_grain
from e2gan.precision import autocast
from e2gan.text import TextEncoder

GRAIN_FIT_PAIRS = 16
BATCH_SIZE = 8


@torch.no_grad()
def fit_concept_grain(generator: nn.Module, text_encoder: TextEncoder | None, prompt: str,
                      pairs: Dataset, precision: str = "fp32",
                      limit: int = GRAIN_FIT_PAIRS) -> GrainStatistics | None:
    """The grain the teacher's edits in `pairs` (items with "source" and "edited" in [-1, 1])
    have and `generator`'s edits of the same sources lack, or None when they lack none."""
    device = next(generator.parameters()).device
    count = min(limit, len(pairs))
    if count == 0:
        return None
    was_training = generator.training
    generator.eval()
    outputs, targets = [], []
    try:
        for start in range(0, count, BATCH_SIZE):
            items = [pairs[i] for i in range(start, min(start + BATCH_SIZE, count))]
            sources = torch.stack([item["source"] for item in items]).to(device)
            text = None
            if getattr(generator, "uses_text", False):
                text = text_encoder([prompt] * len(items)).to(device)
            with autocast(precision, device):
                outputs.append(generator(sources, text).float().cpu())
            targets.append(torch.stack([item["edited"] for item in items]))
    finally:
        generator.train(was_training)
    side = min(outputs[0].shape[-2:])
    kernel_size = min(GRAIN_KERNEL_SIZE, side - 1 + side % 2)  # odd, and no wider than the pairs
    return fit_grain(torch.cat(outputs), torch.cat(targets), kernel_size=kernel_size)

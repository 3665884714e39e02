"""The loss of Eq. 1: a conditional adversarial term plus a weighted L1 reconstruction term."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def adversarial_loss(logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """The log-likelihood GAN loss of Eq. 1 on patch logits (BCE with logits, numerically stable)."""
    logits = logits.float()  # under bf16 autocast: the loss itself stays fp32
    target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def reconstruction_loss(fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the generator's edit and the teacher's edit (pix2pix's choice: sharper than L2)."""
    return F.l1_loss(fake, target)

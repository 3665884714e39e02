"""The loss of Eq. 1: a conditional adversarial term plus a weighted L1 reconstruction term, and
pix2pixHD's feature matching on the discriminator."""

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


def feature_matching_loss(fake_features: list[torch.Tensor],
                          real_features: list[torch.Tensor]) -> torch.Tensor:
    """pix2pixHD's term: L1 between D's activations on the generator's edit and on the teacher's,
    averaged over D's layers. Where pairs differ in detail (grain, strokes, a diffusion teacher's
    texture), L1 on pixels is least by drawing their average, no texture at all; D's features
    describe the texture's statistics in each patch, so matching them asks for texture of the
    same kind rather than the same pixels. Computed offline from our own D (never the judge's
    Inception network). `real_features` are constants (detached)."""
    return sum(F.l1_loss(fake.float(), real.detach().float())
               for fake, real in zip(fake_features, real_features)) / len(fake_features)

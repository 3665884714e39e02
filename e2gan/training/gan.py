"""One paired-GAN training step, written as its two named phases.

`PairedGANStep` holds references to what a step touches (the generator, the discriminator, their
optimisers, the Accelerator) and owns nothing: the `Trainer` builds and checkpoints them. The
generator may be trained whole (base training, full fine-tuning, pix2pix) or only through its LoRA
parameters; that choice is made by which parameters its optimiser holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from e2gan.precision import autocast
from e2gan.training.losses import adversarial_loss, feature_matching_loss, reconstruction_loss


@dataclass
class GANHyperparameters:
    learning_rate: float = 2e-4
    discriminator_learning_rate: float | None = None  # None: same as the generator's
    betas: tuple[float, float] = (0.5, 0.999)
    l1_weight: float = 100.0  # Eq. 1's lambda; pix2pix's value
    feature_matching_weight: float = 0.0  # pix2pixHD's term (their weight: 10); 0: Eq. 1 alone
    max_grad_norm: float | None = None  # clip each network's gradient norm to this; None: off


class ConditionedGenerator(nn.Module):
    """The generator and its text encoder as one module.

    Under several processes one DDP wrapper around this module averages the gradients of both, so
    a learned concept table trains exactly as the generator's own weights do. The text encoder may
    be None (pix2pix) or frozen (CLIP); generators with `uses_text = False` get no tokens.
    """

    def __init__(self, generator: nn.Module, text_encoder: nn.Module | None) -> None:
        super().__init__()
        self.generator = generator
        self.text_encoder = text_encoder

    def encode(self, prompts: list[str], device: torch.device) -> torch.Tensor | None:
        if self.text_encoder is None or not getattr(self.generator, "uses_text", False):
            return None
        return self.text_encoder(prompts).to(device)

    @property
    def noise_channels(self) -> int:
        return getattr(getattr(self.generator, "config", None), "noise_channels", 0)

    def forward(self, source: torch.Tensor, prompts: list[str],
                noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        text = self.encode(prompts, source.device)
        return self.generator(source, text, noise), text


class PairedGANStep:
    """Eq. 1 as two phases: teach D to tell the teacher's edit from G's, then teach G to fool D
    while staying close to the teacher's edit."""

    def __init__(self, accelerator, generator: nn.Module, discriminator: nn.Module,
                 generator_optimizer: torch.optim.Optimizer,
                 discriminator_optimizer: torch.optim.Optimizer,
                 hyperparameters: GANHyperparameters, precision: str = "fp32") -> None:
        self.accelerator = accelerator
        self.precision = precision  # "bf16": forward passes under autocast (e2gan.precision)
        self.generator = generator  # a prepared ConditionedGenerator (DDP-wrapped under N processes)
        self.discriminator = discriminator  # prepared: its backward syncs D's gradients
        # The bare D, for the generator phase: G needs D's verdict, not D's gradients, and a
        # second forward through the DDP wrapper would ask DDP to sync gradients D never gets.
        self.bare_discriminator = accelerator.unwrap_model(discriminator)
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer
        self.hyperparameters = hyperparameters

    def _autocast(self):
        return autocast(self.precision, self.accelerator.device)

    def _clip(self, parameters) -> None:
        if self.hyperparameters.max_grad_norm:
            self.accelerator.clip_grad_norm_(parameters, self.hyperparameters.max_grad_norm)

    @property
    def matches_features(self) -> bool:
        return self.hyperparameters.feature_matching_weight > 0

    def discriminator_step(self, source: torch.Tensor, target: torch.Tensor, fake: torch.Tensor,
                           text: torch.Tensor | None
                           ) -> tuple[dict[str, float], list[torch.Tensor] | None]:
        """Teach D to tell the teacher's edit (real) from the generator's (fake), given the source.
        Also returns D's activations on the real edit when feature matching wants them (taken
        from this pass, as pix2pixHD does, rather than paying for another forward)."""
        text = text.detach() if text is not None else None
        self.bare_discriminator.requires_grad_(True)
        self.discriminator_optimizer.zero_grad(set_to_none=True)
        real_features = None
        with self._autocast():
            if self.matches_features:
                real_logits, real_features = self.discriminator(source, target, text,
                                                                return_features=True)
                real_features = [features.detach() for features in real_features]
            else:
                real_logits = self.discriminator(source, target, text)
            loss_real = adversarial_loss(real_logits, True)
            loss_fake = adversarial_loss(self.discriminator(source, fake.detach(), text), False)
            loss = 0.5 * (loss_real + loss_fake)
        self.accelerator.backward(loss)
        self._clip(self.bare_discriminator.parameters())
        self.discriminator_optimizer.step()
        return {"d_real": loss_real.item(), "d_fake": loss_fake.item()}, real_features

    def generator_step(self, source: torch.Tensor, target: torch.Tensor, fake: torch.Tensor,
                       text: torch.Tensor | None,
                       real_features: list[torch.Tensor] | None = None) -> dict[str, float]:
        """Fool D while staying close to the teacher's edit (Eq. 1), and, with feature matching,
        draw what D sees in the teacher's edit."""
        self.bare_discriminator.requires_grad_(False)  # D's weights are not G's to change
        self.generator_optimizer.zero_grad(set_to_none=True)
        # Nor is D's condition: G learns the concept tokens through its own cross-attention only,
        # not by moving the tokens D is shown until any image looks real to it.
        condition = text.detach() if text is not None else None
        hp = self.hyperparameters
        losses = {}
        with self._autocast():
            if real_features is not None:
                fake_logits, fake_features = self.bare_discriminator(source, fake, condition,
                                                                     return_features=True)
            else:
                fake_logits = self.bare_discriminator(source, fake, condition)
            loss_adversarial = adversarial_loss(fake_logits, True)
            loss_l1 = reconstruction_loss(fake.float(), target)
            loss = loss_adversarial + hp.l1_weight * loss_l1
            if real_features is not None:
                loss_features = feature_matching_loss(fake_features, real_features)
                loss = loss + hp.feature_matching_weight * loss_features
                losses["g_fm"] = loss_features.item()
        self.accelerator.backward(loss)
        self._clip([p for group in self.generator_optimizer.param_groups for p in group["params"]])
        self.generator_optimizer.step()
        return {"g_adv": loss_adversarial.item(), "g_l1": loss_l1.item(), **losses}

    def __call__(self, batch: dict[str, Any], noise: torch.Tensor | None = None) -> dict[str, float]:
        """One step on `batch`; `noise` is Eq. 1's z (None: the generator draws its own)."""
        source, target = batch["source"], batch["edited"]
        with self._autocast():
            fake, text = self.generator(source, list(batch["prompt"]), noise)
        losses, real_features = self.discriminator_step(source, target, fake, text)
        losses.update(self.generator_step(source, target, fake, text, real_features))
        return losses

"""One paired-GAN training step, written as its two named phases.

`PairedGAN` owns the two optimisers and nothing else: models stay plain `nn.Module`s, data
loading and checkpoints belong to the loop. The generator may be the whole network (base
training, full fine-tuning, pix2pix) or only its LoRA parameters; that choice arrives as the list
of trainable parameters.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import nn

from e2gan.training.losses import adversarial_loss, reconstruction_loss


@dataclass
class GANHyperparameters:
    learning_rate: float = 2e-4
    discriminator_learning_rate: float | None = None  # None: same as the generator's
    betas: tuple[float, float] = (0.5, 0.999)
    l1_weight: float = 100.0  # Eq. 1's lambda; pix2pix's value


class PairedGAN:
    def __init__(self, generator: nn.Module, discriminator: nn.Module,
                 text_encoder: nn.Module | None, generator_parameters: Iterable[nn.Parameter],
                 hyperparameters: GANHyperparameters | None = None,
                 device: torch.device | str = "cpu", mixed_precision: bool = True) -> None:
        self.hyperparameters = hp = hyperparameters or GANHyperparameters()
        self.device = torch.device(device)
        self.generator = generator.to(self.device).train()
        self.discriminator = discriminator.to(self.device).train()
        self.text_encoder = text_encoder.to(self.device) if text_encoder is not None else None
        self.generator_parameters = [p for p in generator_parameters if p.requires_grad]
        if not self.generator_parameters:
            raise ValueError("no trainable generator parameters")
        self.generator_optimizer = torch.optim.Adam(self.generator_parameters,
                                                    lr=hp.learning_rate, betas=hp.betas)
        self.discriminator_optimizer = torch.optim.Adam(
            self.discriminator.parameters(),
            lr=hp.discriminator_learning_rate or hp.learning_rate, betas=hp.betas)
        # bf16 autocast on CUDA: no loss scaler needed, and GAN losses stay in range.
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16)
                         if mixed_precision and self.device.type == "cuda" else nullcontext())

    def encode_text(self, prompts: list[str]) -> torch.Tensor | None:
        if self.text_encoder is None or not getattr(self.generator, "uses_text", False):
            return None
        return self.text_encoder(prompts).to(self.device)

    def discriminator_step(self, source: torch.Tensor, target: torch.Tensor, fake: torch.Tensor,
                           text: torch.Tensor | None) -> dict[str, float]:
        """Teach D to tell the teacher's edit (real) from the generator's (fake), given the source."""
        text = text.detach() if text is not None else None
        self.discriminator.requires_grad_(True)
        self.discriminator_optimizer.zero_grad(set_to_none=True)
        with self.autocast:
            loss_real = adversarial_loss(self.discriminator(source, target, text), True)
            loss_fake = adversarial_loss(self.discriminator(source, fake.detach(), text), False)
            loss = 0.5 * (loss_real + loss_fake)
        loss.backward()
        self.discriminator_optimizer.step()
        return {"d_real": loss_real.item(), "d_fake": loss_fake.item()}

    def generator_step(self, source: torch.Tensor, target: torch.Tensor, fake: torch.Tensor,
                       text: torch.Tensor | None) -> dict[str, float]:
        """Fool D while staying close to the teacher's edit (Eq. 1)."""
        self.discriminator.requires_grad_(False)  # D's weights are not G's to change
        self.generator_optimizer.zero_grad(set_to_none=True)
        # Nor is D's condition: G learns the concept tokens through its own cross-attention only,
        # not by moving the tokens D is shown until any image looks real to it.
        condition = text.detach() if text is not None else None
        with self.autocast:
            loss_adversarial = adversarial_loss(self.discriminator(source, fake, condition), True)
            loss_l1 = reconstruction_loss(fake.float(), target)
            loss = loss_adversarial + self.hyperparameters.l1_weight * loss_l1
        loss.backward()
        self.generator_optimizer.step()
        return {"g_adv": loss_adversarial.item(), "g_l1": loss_l1.item()}

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        source = batch["source"].to(self.device, non_blocking=True)
        target = batch["edited"].to(self.device, non_blocking=True)
        text = self.encode_text(list(batch["prompt"]))
        with self.autocast:
            fake = self.generator(source, text)
        losses = self.discriminator_step(source, target, fake, text)
        losses.update(self.generator_step(source, target, fake, text))
        return losses

    def state_dict(self) -> dict[str, Any]:
        return {"generator_optimizer": self.generator_optimizer.state_dict(),
                "discriminator_optimizer": self.discriminator_optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator_optimizer.load_state_dict(state["generator_optimizer"])
        self.discriminator_optimizer.load_state_dict(state["discriminator_optimizer"])

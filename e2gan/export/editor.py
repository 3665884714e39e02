"""A deployable editor: one concept's generator as a pure function of the image.

`ConceptEditor` wraps a generator with the concept's text tokens stored as a constant buffer, so
an exported graph's only input is the image and a device needs no text encoder. At inference the
generator's noise input (Eq. 1's z) is zeros; `fold_zero_noise` removes that channel from the first
conv (its weights multiply zeros), which is exact and leaves the graph without the zeros tensor.

`deployable_editor` builds two editors from the same `EditPipeline` state: the *reference* (the
model exactly as `EditPipeline` runs it: LoRA layers active, noise channel fed zeros) and the
*deployable* one (adapter merged into the weights, LoRA layers removed, noise folded). Exports are
checked against the reference, so a merge or folding mistake shows up as a difference.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from e2gan import lora
from e2gan.errors import E2GANError


class ConceptEditor(nn.Module):
    """image (B, 3, H, W) in [-1, 1] -> edited image (B, 3, H, W) in [-1, 1]."""

    def __init__(self, generator: nn.Module, text_tokens: torch.Tensor | None) -> None:
        super().__init__()
        self.generator = generator.eval()
        if getattr(generator, "uses_text", False):
            if text_tokens is None or text_tokens.dim() != 3 or text_tokens.shape[0] != 1:
                raise E2GANError("a text-conditioned generator needs (1, tokens, dim) text tokens")
            self.register_buffer("text_tokens", text_tokens.detach().clone().float())
        else:
            self.text_tokens = None

    @property
    def size_multiple(self) -> int:
        return self.generator.size_multiple

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        text = None
        if self.text_tokens is not None:
            text = self.text_tokens.expand(image.shape[0], -1, -1)
        return self.generator(image, text)


def fold_zero_noise(generator: nn.Module) -> bool:
    """Drop the always-zero noise channels from the stem conv; True when something was folded."""
    config = getattr(generator, "config", None)
    channels = getattr(config, "noise_channels", 0)
    stem = getattr(getattr(generator, "stem", None), "conv", None)
    if not channels or not isinstance(stem, nn.Conv2d):
        return False
    folded = nn.Conv2d(stem.in_channels - channels, stem.out_channels, stem.kernel_size,
                       stride=stem.stride, padding=stem.padding, bias=stem.bias is not None)
    with torch.no_grad():
        # the generator concatenates [source, noise]: the noise channels are the last inputs
        folded.weight.copy_(stem.weight[:, :stem.in_channels - channels])
        if stem.bias is not None:
            folded.bias.copy_(stem.bias)
    generator.stem.conv = folded
    generator.config = dataclasses.replace(config, noise_channels=0)
    return True


def deployable_editor(pipeline, prompt: str | None) -> tuple[ConceptEditor, ConceptEditor, str]:
    """(reference, deployable, prompt) from an `EditPipeline` with at most one active adapter."""
    generator = pipeline.generator
    prompt = pipeline.default_prompt(prompt)
    text = None
    if getattr(generator, "uses_text", False):
        with torch.no_grad():
            text = pipeline.text_encoder([prompt]).detach().cpu().float()
    generator = generator.cpu().eval()
    reference = ConceptEditor(generator, text)
    plain = lora.remove_adapters(copy.deepcopy(generator), merge=True)
    fold_zero_noise(plain)
    for parameter in plain.parameters():
        parameter.requires_grad_(False)
    return reference, ConceptEditor(plain, text), prompt

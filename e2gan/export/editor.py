"""A deployable editor: one concept's generator as a pure function of the image.

`ConceptEditor` wraps a generator with the concept's text tokens stored as a constant buffer, so
an exported graph's only input is the image and a device needs no text encoder. The generator's
noise input (Eq. 1's z) is its fixed inference pattern (see `models.generator`), which the graph
carries as a 256x256 constant tile (256 KB per noise channel) repeated to the image's size.

`deployable_editor` builds two editors from the same `EditPipeline` state: the *reference* (the
model exactly as `EditPipeline` runs it: LoRA layers active) and the *deployable* one (adapter
merged into the weights, LoRA layers removed). Exports are checked against the reference, so a
merge mistake shows up as a difference.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from e2gan.models import lora
from e2gan.models.grain import Grain
from e2gan.errors import E2GANError


class ConceptEditor(nn.Module):
    """image (B, 3, H, W) in [-1, 1] -> edited image (B, 3, H, W) in [-1, 1]: the generator, then
    the concept's grain (models.grain) at the adapter's strength when it has one, as
    `EditPipeline` runs it."""

    def __init__(self, generator: nn.Module, text_tokens: torch.Tensor | None,
                 grain: Grain | None = None, grain_strength: float = 1.0) -> None:
        super().__init__()
        self.generator = generator.eval()
        self.grain = grain
        self.grain_strength = float(grain_strength)
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
        edited = self.generator(image, text)
        if self.grain is not None:
            edited = self.grain(edited, self.grain_strength)
        return edited


def deployable_editor(pipeline, prompt: str | None) -> tuple[ConceptEditor, ConceptEditor, str]:
    """(reference, deployable, prompt) from an `EditPipeline` with at most one active adapter."""
    generator = pipeline.generator
    prompt = pipeline.default_prompt(prompt)
    text = None
    if getattr(generator, "uses_text", False):
        with torch.no_grad():
            text = pipeline.text_encoder([prompt]).detach().cpu().float()
    generator = generator.cpu().eval()
    grain = copy.deepcopy(pipeline.grain).cpu() if pipeline.grain is not None else None
    strength = pipeline.active[1]
    reference = ConceptEditor(generator, text, grain, strength)
    plain = lora.remove_adapters(copy.deepcopy(generator), merge=True)
    for parameter in plain.parameters():
        parameter.requires_grad_(False)
    return reference, ConceptEditor(plain, text, grain, strength), prompt

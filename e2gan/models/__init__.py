"""Models: the E2GAN generator, the pix2pix baseline and the conditional PatchGAN discriminator.

`ARCHITECTURES` maps an architecture name to its (config class, model class), so a checkpoint's
json config rebuilds the right model without unpickling any code.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from torch import nn

from e2gan.errors import E2GANError
from e2gan.models.discriminator import DiscriminatorConfig, PatchDiscriminator
from e2gan.models.generator import E2GANConfig, E2GANGenerator
from e2gan.models.pix2pix import Pix2PixConfig, Pix2PixGenerator
from e2gan.registry import Registry

ARCHITECTURES: Registry[tuple[type, type[nn.Module]]] = Registry("architecture")
ARCHITECTURES.add("e2gan", (E2GANConfig, E2GANGenerator))
ARCHITECTURES.add("pix2pix", (Pix2PixConfig, Pix2PixGenerator))
ARCHITECTURES.add("patchgan", (DiscriminatorConfig, PatchDiscriminator))


def build_model(arch: str, config: dict[str, Any] | None = None) -> nn.Module:
    """Build an architecture from a (possibly partial) config dict; unknown keys are an error."""
    config_class, model_class = ARCHITECTURES.get(arch)
    config = dict(config or {})
    known = {field.name for field in fields(config_class)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise E2GANError(f"unknown {arch} config field(s): {', '.join(unknown)}")
    return model_class(config_class(**config))


def architecture_of(model: nn.Module) -> str:
    for name in ARCHITECTURES:
        if type(model) is ARCHITECTURES.get(name)[1]:
            return name
    raise ValueError(f"{type(model).__name__} is not a registered architecture")


def config_of(model: nn.Module) -> dict[str, Any]:
    return asdict(model.config)


__all__ = [
    "ARCHITECTURES", "DiscriminatorConfig", "E2GANConfig", "E2GANGenerator", "PatchDiscriminator",
    "Pix2PixConfig", "Pix2PixGenerator", "architecture_of", "build_model", "config_of",
]

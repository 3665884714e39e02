"""The pix2pix / CycleGAN ResNet generator (9 residual blocks), the paper's baseline.

Same module names as the E2GAN generator (`stem`, `downsample`, `upsample`, `head`) so the
same LoRA targets, profiling and export code apply. It does not read the text: a pix2pix model
is trained for one concept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from e2gan.models.blocks import ConvNormAct, ResidualBlock, UpNormAct


@dataclass
class Pix2PixConfig:
    in_channels: int = 3
    out_channels: int = 3
    num_filters: int = 64
    num_downsamplings: int = 2
    num_residual_blocks: int = 9


class Pix2PixGenerator(nn.Module):
    uses_text = False

    def __init__(self, config: Pix2PixConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or Pix2PixConfig()
        filters = config.num_filters
        self.stem = ConvNormAct(config.in_channels, filters, 7, reflect_padding=3)
        self.downsample = nn.ModuleList(
            ConvNormAct(filters * 2 ** i, filters * 2 ** (i + 1), 3, stride=2, padding=1)
            for i in range(config.num_downsamplings))
        width = filters * 2 ** config.num_downsamplings
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(config.num_residual_blocks)))
        self.upsample = nn.ModuleList(
            UpNormAct(filters * 2 ** (config.num_downsamplings - i),
                      filters * 2 ** (config.num_downsamplings - i - 1))
            for i in range(config.num_downsamplings))
        self.head = nn.Sequential(nn.ReflectionPad2d(3),
                                  nn.Conv2d(filters, config.out_channels, 7), nn.Tanh())

    @property
    def size_multiple(self) -> int:
        return 2 ** self.config.num_downsamplings

    def forward(self, source: torch.Tensor, text: torch.Tensor | None = None,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        h = self.stem(source)
        for layer in self.downsample:
            h = layer(h)
        h = self.blocks(h)
        for layer in self.upsample:
            h = layer(h)
        return self.head(h)

"""Conditional PatchGAN discriminator (pix2pix's 70x70 "basic" D) that also knows the concept.

It sees the source and a candidate image concatenated, as in pix2pix. For multi-concept training
it must also judge "is this the edit *for this concept*", so the concept's pooled text embedding
enters through a projection term (Miyato & Koyama, 2018): the patch logit gets
<features(x), W text>, which is cheap and keeps D a plain PatchGAN when there is one concept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class DiscriminatorConfig:
    in_channels: int = 6  # source + candidate
    num_filters: int = 64
    num_layers: int = 3
    text_dim: int = 0  # 0: unconditional on the concept (single-concept training)


class PatchDiscriminator(nn.Module):
    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DiscriminatorConfig()
        filters = config.num_filters
        layers: list[nn.Module] = [nn.Conv2d(config.in_channels, filters, 4, 2, 1),
                                   nn.LeakyReLU(0.2)]
        channels = filters
        for index in range(1, config.num_layers + 1):
            stride = 2 if index < config.num_layers else 1
            out_channels = filters * min(2 ** index, 8)
            layers += [nn.Conv2d(channels, out_channels, 4, stride, 1),
                       nn.InstanceNorm2d(out_channels), nn.LeakyReLU(0.2)]
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.to_logit = nn.Conv2d(channels, 1, 4, 1, 1)
        # A 4x4 kernel with padding 1 shrinks the map by one pixel; the projection follows it.
        # Only a concept-conditioned D has them: an unused parameter would stall DDP's reducer.
        self.feature_pool = (nn.Conv2d(channels, channels, 4, 1, 1, groups=channels, bias=False)
                             if config.text_dim else None)
        self.text_projection = nn.Linear(config.text_dim, channels) if config.text_dim else None

    def forward(self, source: torch.Tensor, image: torch.Tensor,
                text: torch.Tensor | None = None, return_features: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Patch logits (B, 1, h, w). `text`: (B, T, text_dim), pooled over tokens.
        `return_features`: also each layer's activations (what feature matching compares)."""
        features = torch.cat([source, image], dim=1)
        activations = []
        for layer in self.features:
            features = layer(features)
            if isinstance(layer, nn.LeakyReLU):
                activations.append(features)
        logits = self.to_logit(features)
        if self.text_projection is not None:
            if text is None:
                raise ValueError("this discriminator is concept-conditioned and needs `text`")
            direction = self.text_projection(text.mean(dim=1))[:, :, None, None]
            logits = logits + (self.feature_pool(features) * direction).sum(dim=1, keepdim=True)
        return (logits, activations) if return_features else logits

"""The E2GAN generator: a ResNet generator with 3 residual blocks and 1 transformer block.

Layout at the default config (input 256x256):

    source (3) + noise (1) --7x7--> 64 @256
    --stride-2--> 128 @128 --stride-2--> 256 @64          (downsample.0/1)
    --stride-2 conv--> 256 @32                            (bottleneck_in)
    residual, residual, transformer(self + cross-attn), residual      @32
    --transposed conv--> 256 @64                          (bottleneck_out)
    --transposed--> 128 @128 --transposed--> 64 @256      (upsample.0/1)
    --7x7--> 3, tanh

The paper runs the transformer block at half the feature resolution behind a stride-2 conv and a
transposed conv to keep its attention cheap. We put the residual blocks inside that half-resolution
bottleneck too: with them outside, the generator costs 0.47x pix2pix's MACs instead of the paper's
0.41x (23.6G vs 56.9G), and the residual blocks dominate the cost. The counts, widths and positions
are config fields, so the paper's other variants (3RB+2TB, TB after RB1, ...) are one config away.

Decoder variants (config fields; the defaults are the paper's layout above, so a config.json written
before these fields existed rebuilds exactly the model it was trained as):

- `upsampling`: "transposed" (the paper: stride-2 3x3 transposed convs, whose uneven kernel overlap
  prints a 2x2 checkerboard), "resize_conv" (nearest 2x then a 3x3 conv, 4x the transposed conv's
  arithmetic) or "conv_resize" (a 3x3 conv then bilinear 2x, the transposed conv's arithmetic).
  See `ResizeConvNormAct`.
- `skip_connections`: add the encoder's features to the decoder's at each matching resolution
  (stem -> last upsample, downsample.i -> the decoder layer that restores its size). Additive, so
  no parameters and a few adds; it gives fine detail a path around the 1/8-resolution bottleneck.
- `residual_output`: the head predicts a change, output = clamp(source + delta, -1, 1), instead of
  tanh of a fresh image; the head starts at zero, so an untrained model is the identity edit.

Encoder variant:

- `downsample_padding`: "zeros" (the paper) or "reflect" for the stride-2 3x3 convs. On an even
  size a stride-2, padding-1 conv reads its padding only at the top and left border (output pixel i
  reads inputs 2i-1..2i+1), so with zeros the top-left corner sees black that no other pixel sees,
  at each of the three downsampling levels; the base printed a corner artefact there (per-pixel
  error 83-97 grey levels at (0, 0) against a mean of 22). Reflect padding gives that border real
  image values. Same weights and names, so it is a layout choice, not a new model size.

Normalisation variant:

- `norm_after_transformer`: the normalisation of the residual blocks after the transformer block
  and of the decoder: "instance" (the paper: InstanceNorm in every conv unit), "pixel" (each
  pixel's features scaled to unit RMS, ProGAN's PixelNorm, with ProGAN's LeakyReLU 0.2; the
  shipped base's choice) or "none". A per-image, per-channel normalisation lets a generator set
  a channel's scale by planting one huge value in it, which StyleGAN2 (Karras et al. 2020,
  Sec. 2) traced its "droplet" artefacts to.
  Measured on our bases (`experiments/norm_spikes.py`, 16 faces at 128 px): in the layers after the
  transformer 25-94 % of channels carry a spike above 8 sigma at their input, at most 10 % before
  it. With zero padding 79-99 % of those peaks sit on the border (the corner artefact); with
  reflect padding 11-59 % lie inside the image, and the edits print round bright droplets.
  "none" removes the reason but did not train at the base recipe: over stage 1 its L1 stayed
  where it started (0.41; "instance" 0.28), and the base barely edits.
  "pixel" keeps each pixel's scale without statistics across the image; with ReLU it died the
  same way (no centring, so the decoder's units all went negative), hence the LeakyReLU. The
  encoder keeps its InstanceNorm. No choice holds state, so all three have the same weights and
  names.

Noise (Eq. 1's z) enters as extra input channels: fresh N(0, 1) draws while training; at inference
one fixed N(0, 1) pattern (`inference_noise`), unless the caller passes its own. Not zeros: the
stem's InstanceNorm and every layer after it were trained on inputs whose noise channel carries
unit variance, and a model fed zeros runs off the distribution it learned. Measured on a winter
LoRA (the shipped base, 30 held-out pairs, 128 px): zeros 16.0 dB PSNR against the teacher, a fixed
pattern 19.8 dB (three seeds within 0.03 dB), zeros with the noise's variance added back into the
stem's normalisation 18.1 dB. A fixed pattern keeps an edit reproducible and exportable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from e2gan.models.blocks import (NORM_KINDS, ConvNormAct, ResidualBlock, ResizeConvNormAct,
                                 TransformerBlock, UpNormAct)

UPSAMPLING_KINDS = ("transposed", "resize_conv", "conv_resize")
PADDING_KINDS = ("zeros", "reflect")
# The inference noise is one seeded tile, repeated to cover any image: 256 px is larger than the
# training crops, so within what the model saw at training time the pattern does not repeat.
NOISE_TILE, NOISE_SEED = 256, 0


@dataclass
class E2GANConfig:
    in_channels: int = 3
    out_channels: int = 3
    num_filters: int = 64
    num_downsamplings: int = 2
    num_residual_blocks: int = 3
    num_transformer_blocks: int = 1
    transformer_after_block: int = 2  # the paper's best position: after the second residual block
    num_heads: int = 4
    mlp_mult: int = 4
    text_dim: int = 768
    noise_channels: int = 1
    # Decoder variants; the defaults are the paper's layout (see the module docstring).
    upsampling: str = "transposed"  # "transposed" | "resize_conv" | "conv_resize"
    skip_connections: bool = False
    residual_output: bool = False
    downsample_padding: str = "zeros"  # "zeros" (the paper) | "reflect" (see the module docstring)
    norm_after_transformer: str = "instance"  # the paper | "pixel" | "none" (module docstring)


class E2GANGenerator(nn.Module):
    uses_text = True

    def __init__(self, config: E2GANConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or E2GANConfig()
        if not 0 <= config.transformer_after_block <= config.num_residual_blocks:
            raise ValueError("transformer_after_block must lie between 0 and num_residual_blocks")
        if config.upsampling not in UPSAMPLING_KINDS:
            raise ValueError(f"upsampling must be one of {UPSAMPLING_KINDS}, "
                             f"got {config.upsampling!r}")
        if config.downsample_padding not in PADDING_KINDS:
            raise ValueError(f"downsample_padding must be one of {PADDING_KINDS}, "
                             f"got {config.downsample_padding!r}")
        if config.norm_after_transformer not in NORM_KINDS:
            raise ValueError(f"norm_after_transformer must be one of {NORM_KINDS}, "
                             f"got {config.norm_after_transformer!r}")
        if config.residual_output and config.in_channels != config.out_channels:
            raise ValueError("residual_output needs in_channels == out_channels")
        filters = config.num_filters
        if config.noise_channels:
            # Not persistent: rebuilt from the seed, so checkpoints and their hashes do not change.
            tile = torch.randn((1, config.noise_channels, NOISE_TILE, NOISE_TILE),
                               generator=torch.Generator().manual_seed(NOISE_SEED))
            self.register_buffer("noise_tile", tile, persistent=False)
        self.stem = ConvNormAct(config.in_channels + config.noise_channels, filters, 7,
                                reflect_padding=3)
        self.downsample = nn.ModuleList()
        for index in range(config.num_downsamplings):
            multiplier = 2 ** index
            self.downsample.append(self._down(filters * multiplier, filters * multiplier * 2))
        width = filters * 2 ** config.num_downsamplings
        self.bottleneck_in = self._down(width, width)
        self.blocks_before = nn.ModuleList(
            ResidualBlock(width) for _ in range(config.transformer_after_block))
        self.transformer = nn.ModuleList(
            TransformerBlock(width, config.num_heads, config.text_dim, config.mlp_mult)
            for _ in range(config.num_transformer_blocks))
        self.blocks_after = nn.ModuleList(
            ResidualBlock(width, norm=config.norm_after_transformer)
            for _ in range(config.num_residual_blocks - config.transformer_after_block))
        self.bottleneck_out = self._up(width, width)
        self.upsample = nn.ModuleList()
        for index in range(config.num_downsamplings):
            multiplier = 2 ** (config.num_downsamplings - index)
            self.upsample.append(self._up(filters * multiplier, filters * multiplier // 2))
        head_conv = nn.Conv2d(filters, config.out_channels, 7)
        if config.residual_output:
            # A zero head makes the untrained model the identity edit, the natural start for a
            # change predicted on top of the source.
            nn.init.zeros_(head_conv.weight)
            nn.init.zeros_(head_conv.bias)
            self.head = nn.Sequential(nn.ReflectionPad2d(3), head_conv)
        else:
            self.head = nn.Sequential(nn.ReflectionPad2d(3), head_conv, nn.Tanh())

    def _down(self, in_channels: int, out_channels: int) -> nn.Module:
        if self.config.downsample_padding == "reflect":
            return ConvNormAct(in_channels, out_channels, 3, stride=2, reflect_padding=1)
        return ConvNormAct(in_channels, out_channels, 3, stride=2, padding=1)

    def _up(self, in_channels: int, out_channels: int) -> nn.Module:
        norm = self.config.norm_after_transformer
        if self.config.upsampling == "transposed":
            return UpNormAct(in_channels, out_channels, norm=norm)
        return ResizeConvNormAct(in_channels, out_channels, order=self.config.upsampling, norm=norm)

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this (every stride-2 step halves them)."""
        return 2 ** (self.config.num_downsamplings + 1)

    def inference_noise(self, source: torch.Tensor) -> torch.Tensor:
        """The fixed noise pattern for `source`'s batch and size: the seeded tile, repeated and cut."""
        height, width = source.shape[2], source.shape[3]
        repeats = (1, 1, (height + NOISE_TILE - 1) // NOISE_TILE, (width + NOISE_TILE - 1) // NOISE_TILE)
        noise = self.noise_tile.repeat(repeats)[:, :, :height, :width]
        return noise.expand(source.shape[0], -1, -1, -1).to(source.dtype)

    def forward(self, source: torch.Tensor, text: torch.Tensor,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        """source: (B, 3, H, W) in [-1, 1]; text: (B, T, text_dim) -> (B, 3, H, W) in [-1, 1]."""
        if self.config.noise_channels:
            if noise is None:
                shape = (source.shape[0], self.config.noise_channels, *source.shape[2:])
                noise = (torch.randn(shape, device=source.device, dtype=source.dtype)
                         if self.training else self.inference_noise(source))
            inputs = torch.cat([source, noise], dim=1)
        else:
            inputs = source
        h = self.stem(inputs)
        # Encoder features from the finest resolution down; the decoder adds them back in reverse.
        skips = [h]
        for layer in self.downsample:
            h = layer(h)
            skips.append(h)
        h = self.bottleneck_in(h)
        for block in self.blocks_before:
            h = block(h)
        for block in self.transformer:
            h = block(h, text)
        for block in self.blocks_after:
            h = block(h)
        decoder = [self.bottleneck_out, *self.upsample]
        for layer, skip in zip(decoder, reversed(skips)):
            h = layer(h)
            if self.config.skip_connections:
                h = h + skip
        if self.config.residual_output:
            return (source + self.head(h)).clamp(-1.0, 1.0)
        return self.head(h)

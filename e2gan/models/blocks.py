"""Building blocks shared by the generators: residual and transformer blocks, sampling convs.

Each sampling layer is a small module with a `.conv` child so LoRA can target it by name
(`downsample.0.conv`, `upsample.1.conv`, ...) independently of the norm and activation around it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvNormAct(nn.Module):
    """conv -> InstanceNorm -> ReLU, the unit of the pix2pix/CycleGAN ResNet generator.

    InstanceNorm without affine parameters, as in the reference ResNet generator: it keeps batch-size-1
    inference identical to training and adds no parameters.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, reflect_padding: int = 0) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(reflect_padding) if reflect_padding else nn.Identity()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        self.norm = nn.InstanceNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(self.pad(x))))


NORM_KINDS = ("instance", "pixel", "none")


class PixelNorm(nn.Module):
    """Each pixel's feature vector scaled to unit RMS over the channels (Karras et al. 2018,
    ProGAN). Its statistics are per pixel, none across the image, so no single value can rescale
    a whole channel the way it can under InstanceNorm. Unlike InstanceNorm it does not centre a
    channel, so nothing keeps half of a ReLU's inputs positive: with ReLU our decoder died (every
    unit of the last upsampling layer at zero after stage 1). ProGAN pairs it with LeakyReLU 0.2,
    and so do we (`activation`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


def activation(norm: str) -> nn.Module:
    """The activation after a conv normalised by `norm`: LeakyReLU 0.2 after PixelNorm (see
    there), ReLU otherwise (the ResNet generator's)."""
    return nn.LeakyReLU(0.2) if norm == "pixel" else nn.ReLU()


def normalization(kind: str, channels: int) -> nn.Module:
    """"instance" (InstanceNorm2d: no affine, no running statistics), "pixel" or "none". None of
    them holds state, so layouts that differ only here share checkpoints' names."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    if kind == "pixel":
        return PixelNorm()
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"normalization must be one of {NORM_KINDS}, got {kind!r}")


class UpNormAct(nn.Module):
    """Stride-2 transposed conv -> norm -> activation (InstanceNorm and ReLU unless `norm` says
    otherwise: see `normalization`, `activation`): exactly doubles height and width."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "instance") -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=3, stride=2,
                                       padding=1, output_padding=1)
        self.norm = normalization(norm, out_channels)
        self.activation = activation(norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.norm(self.conv(x)))


class ResizeConvNormAct(nn.Module):
    """Checkerboard-free 2x upsampling: resize and a reflect-padded 3x3 conv -> norm -> activation
    (InstanceNorm and ReLU unless `norm` says otherwise).

    A stride-2 3x3 transposed conv gives its four output phases different numbers of kernel taps
    (1, 2, 2 and 4), so even a constant input comes out as a 2x2 checkerboard that training has to
    learn away (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts"). Two orders avoid it:

    - `resize_conv`: nearest-neighbour 2x, then the conv at the output resolution (Odena's fix;
      every output pixel sees 9 taps, so 4x the arithmetic of the transposed conv it replaces);
    - `conv_resize`: the conv at the input resolution, then bilinear 2x (the transposed conv's
      arithmetic; the resize adds no detail of its own, so pair it with skip connections).

    The conv stays the `.conv` child, a plain `nn.Conv2d`, so LoRA targets it under the same name.
    """

    def __init__(self, in_channels: int, out_channels: int, order: str = "resize_conv",
                 norm: str = "instance") -> None:
        super().__init__()
        if order not in ("resize_conv", "conv_resize"):
            raise ValueError(f"unknown resize order {order!r}")
        self.order = order
        self.conv = nn.Conv2d(in_channels, out_channels, 3)
        self.norm = normalization(norm, out_channels)
        self.activation = activation(norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.order == "resize_conv":
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = self.activation(self.norm(self.conv(F.pad(x, (1, 1, 1, 1), mode="reflect"))))
        if self.order == "conv_resize":
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return x


class ResidualBlock(nn.Module):
    """Two reflect-padded 3x3 convs with a skip connection (no activation after the sum); norm and
    activation as `norm` says (InstanceNorm and ReLU by default)."""

    def __init__(self, channels: int, norm: str = "instance") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3)
        self.norm1 = normalization(norm, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3)
        self.norm2 = normalization(norm, channels)
        self.activation = activation(norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.activation(self.norm1(self.conv1(F.pad(x, (1, 1, 1, 1), mode="reflect"))))
        h = self.norm2(self.conv2(F.pad(h, (1, 1, 1, 1), mode="reflect")))
        return x + h


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v/out projections (LoRA targets them by name)."""

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        context_dim = context_dim or dim
        self.num_heads = num_heads
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(context_dim, dim)
        self.to_v = nn.Linear(context_dim, dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        batch, length, dim = x.shape
        heads = self.num_heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, -1, heads, dim // heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.to_q(x)), split(self.to_k(context)),
                                             split(self.to_v(context)))
        return self.to_out(out.transpose(1, 2).reshape(batch, length, dim))


class FeedForward(nn.Module):
    """GEGLU MLP (as in Stable Diffusion's transformer blocks): gelu-gated hidden layer."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        hidden = dim * mult
        self.proj_in = nn.Linear(dim, hidden * 2)
        self.proj_out = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj_in(x).chunk(2, dim=-1)
        return self.proj_out(value * F.gelu(gate))


class TransformerBlock(nn.Module):
    """Self-attention, cross-attention on the concept's text tokens, then an MLP, on a feature map.

    Pre-norm residual layout. The 1x1 `proj_in`/`proj_out` let the block learn its own basis
    for the tokens; no positional encoding is added, because the convolutions before it already
    make features position-aware (as in Stable Diffusion's Transformer2DModel).
    """

    def __init__(self, channels: int, num_heads: int, text_dim: int, mlp_mult: int = 4) -> None:
        super().__init__()
        self.norm_in = nn.GroupNorm(32 if channels % 32 == 0 else 1, channels)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.norm_self = nn.LayerNorm(channels)
        self.self_attention = Attention(channels, num_heads)
        self.norm_cross = nn.LayerNorm(channels)
        self.cross_attention = Attention(channels, num_heads, context_dim=text_dim)
        self.norm_mlp = nn.LayerNorm(channels)
        self.feed_forward = FeedForward(channels, mlp_mult)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        h = self.proj_in(self.norm_in(x))
        tokens = h.flatten(2).transpose(1, 2)
        tokens = tokens + self.self_attention(self.norm_self(tokens))
        tokens = tokens + self.cross_attention(self.norm_cross(tokens), context=text)
        tokens = tokens + self.feed_forward(self.norm_mlp(tokens))
        h = tokens.transpose(1, 2).reshape(batch, channels, height, width)
        return x + self.proj_out(h)

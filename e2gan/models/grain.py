"""Grain: the fine texture a concept's teacher draws and its generator leaves out.

Why it exists. A teacher draws per-image texture at random: a risograph's stencil grain, a
diffusion model's brush noise and film grain differ from pair to pair even when the look is one.
A generator trained with an L1-led loss predicts the mean edit, and the mean of independent grain
is flat: the studio's risograph adapter printed the right two inks as a smooth wash. Neither the
adversarial term nor feature matching put the grain back in a 5-minute fine-tune (the looks
issue's trials). The split here is the one video codecs make for film grain (AV1's grain
synthesis): the generator learns the deterministic part, and the random part is modelled by its
second-order statistics and synthesised.

The statistics are what the teacher's edits have and the generator's outputs lack, measured on
the training pairs after the fine-tune (`fit_grain`):
- how strong and in which colour direction, as a 3x3 covariance of the high-passed edit per
  brightness band of the generator's output (grain lives in the mid-tones of a print, not on its
  paper or in full ink): the teacher's covariance minus the generator's, so only the missing
  detail is added, and nothing where the generator already draws it;
- how fine, as the spectrum of that missing detail, turned into a small zero-phase filter.

`Grain` adds it: a fixed, seeded pattern of filtered noise (tiled, so any image size works and an
export is deterministic) coloured per pixel by the covariance of the pixel's brightness band.
Everything is torch operations, so the exported editors carry it. It works at pixel scale, like
the generator's own convolutions: an image edited at its own size gets grain of the size it had
in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from e2gan.errors import E2GANError

GRAIN_BANDS = 8  # brightness bands, each with its own grain covariance
GRAIN_KERNEL_SIZE = 15  # the spectrum's filter, in pixels
# Detail finer than this (a Gaussian blur's sigma, pixels) is what the statistics describe; the
# rest of the teacher's edit is the generator's to learn.
HIGH_PASS_SIGMA = 2.0
# The generator must lack at least this fraction of the teacher's fine-detail energy before grain
# is added at all: below it, the difference is estimation noise and the generator's own detail
# placed differently, not missing texture. Measured on validation photos: the risograph's
# adapter lacked 51-60% (grain then took FID from 226 to 130), a vampire tone edit 0% or less
# (where per-band grain from noise alone cost FID 2.4).
MIN_DEFICIT = 0.25
GRAIN_TILE = 256  # the pattern's period in pixels: far above the grain's size, so no visible repeat
GRAIN_TENSORS = ("grain.covariances", "grain.kernel")
# Rec. 601 luma, as the brightness bands are measured.
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class GrainStatistics:
    """What a fit found: per-band 3x3 covariances (bands, 3, 3) in the generator's [-1, 1] units,
    the unit-energy spatial filter (k, k), and the fraction of the teacher's fine detail the
    generator lacked."""

    covariances: torch.Tensor
    kernel: torch.Tensor
    deficit: float

    def tensors(self) -> dict[str, torch.Tensor]:
        return dict(zip(GRAIN_TENSORS, (self.covariances, self.kernel)))

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], deficit: float = float("nan")
                     ) -> "GrainStatistics | None":
        """The statistics stored among an adapter's tensors, or None when it has none."""
        if not all(name in tensors for name in GRAIN_TENSORS):
            return None
        covariances, kernel = (tensors[name].float() for name in GRAIN_TENSORS)
        if (covariances.dim() != 3 or covariances.shape[1:] != (3, 3) or kernel.dim() != 2
                or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0):
            raise E2GANError(f"grain tensors have the wrong shapes: covariances "
                             f"{tuple(covariances.shape)}, kernel {tuple(kernel.shape)}")
        return cls(covariances, kernel, deficit)

    @property
    def strength(self) -> float:
        """The grain's overall standard deviation in [0, 1] grey units, averaged over bands."""
        return float(self.covariances.diagonal(dim1=1, dim2=2).sum(-1).clamp(min=0).sqrt().mean() / 2)


def luminance(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W) brightness in [0, 1]."""
    weights = images.new_tensor(LUMA).view(1, 3, 1, 1)
    return (((images + 1) / 2) * weights).sum(1).clamp(0, 1)


def high_pass(images: torch.Tensor, sigma: float = HIGH_PASS_SIGMA) -> torch.Tensor:
    size = 2 * int(3 * sigma) + 1
    return images - gaussian_blur(images, [size, size], [sigma, sigma])


def fit_grain(outputs: torch.Tensor, targets: torch.Tensor, bands: int = GRAIN_BANDS,
              kernel_size: int = GRAIN_KERNEL_SIZE, min_deficit: float = MIN_DEFICIT
              ) -> GrainStatistics | None:
    """The grain the teacher's edits (`targets`) have and the generator's (`outputs`) lack, both
    (N, 3, H, W) in [-1, 1] for the same sources at one size; None when the generator lacks less
    than `min_deficit` of the teacher's fine detail."""
    if outputs.shape != targets.shape or outputs.dim() != 4 or outputs.shape[1] != 3:
        raise E2GANError(f"grain is fitted on matching (N, 3, H, W) batches, got "
                         f"{tuple(outputs.shape)} and {tuple(targets.shape)}")
    if kernel_size % 2 == 0 or kernel_size > min(outputs.shape[-2:]):
        raise E2GANError(f"the grain filter's size must be odd and at most the images' side, "
                         f"got {kernel_size} for {tuple(outputs.shape[-2:])}")
    outputs, targets = outputs.detach().float(), targets.detach().float()
    detail_out, detail_target = high_pass(outputs), high_pass(targets)
    energy_target = detail_target.pow(2).mean()
    deficit = float(1 - detail_out.pow(2).mean() / energy_target.clamp(min=1e-12))
    if not deficit >= min_deficit:  # also when the teacher has no detail at all (NaN-safe)
        return None
    # Per band of the generator's brightness (what is known when grain is added): the teacher's
    # detail covariance minus the generator's, kept positive semi-definite.
    band = (luminance(outputs) * bands).long().clamp(0, bands - 1)
    pixels_out = detail_out.permute(0, 2, 3, 1)
    pixels_target = detail_target.permute(0, 2, 3, 1)
    covariances = torch.zeros(bands, 3, 3)
    for index in range(bands):
        inside = band == index
        count = int(inside.sum())
        if count < 64:  # too few pixels in this band to say anything: no grain there
            continue
        target, output = pixels_target[inside], pixels_out[inside]
        difference = target.T @ target / count - output.T @ output / count
        covariances[index] = _positive_part(difference)
    # The missing detail's spectrum (on brightness), as a zero-phase filter of unit energy.
    missing = (_mean_power(detail_target) - _mean_power(detail_out)).clamp(min=0)
    if not float(missing.sum()) > 0:
        return None
    kernel = torch.fft.fftshift(torch.fft.ifft2(missing.sqrt()).real)
    centre_y, centre_x, half = kernel.shape[0] // 2, kernel.shape[1] // 2, kernel_size // 2
    kernel = kernel[centre_y - half:centre_y + half + 1, centre_x - half:centre_x + half + 1]
    kernel = kernel / kernel.pow(2).sum().sqrt()
    return GrainStatistics(covariances, kernel.contiguous(), round(deficit, 4))


def luminance_detail(detail: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) high-passed colour -> (N, H, W) its luma part (no offset: detail is signed)."""
    return (detail * detail.new_tensor(LUMA).view(1, 3, 1, 1)).sum(1)


def _mean_power(detail: torch.Tensor) -> torch.Tensor:
    """The power spectrum of the detail's luma, averaged over the batch: (H, W)."""
    return torch.fft.fft2(luminance_detail(detail)).abs().pow(2).mean(0)


def _positive_part(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return vectors @ torch.diag(values.clamp(min=0)) @ vectors.T


def _square_root(covariances: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(covariances)
    return vectors @ torch.diag_embed(values.clamp(min=0).sqrt()) @ vectors.transpose(-1, -2)


def blend_grain(first: GrainStatistics | None, second: GrainStatistics | None,
                weight: float) -> GrainStatistics | None:
    """The grain of `weight` x first + (1 - weight) x second: covariances mixed by weight, and the
    two spectra mixed by the energy each brings (a missing grain counts as none)."""
    parts = [(g, w) for g, w in ((first, weight), (second, 1 - weight)) if g is not None and w > 0]
    if not parts:
        return None
    size = max(g.kernel.shape[0] for g, _ in parts)
    covariances = sum(w * g.covariances for g, w in parts)
    spectrum = sum(w * g.covariances.diagonal(dim1=1, dim2=2).sum().clamp(min=1e-12)
                   * torch.fft.fft2(F.pad(g.kernel, [(size - g.kernel.shape[0]) // 2] * 4)).abs().pow(2)
                   for g, w in parts)
    kernel = torch.fft.fftshift(torch.fft.ifft2(spectrum.sqrt()).real)
    kernel = kernel / kernel.pow(2).sum().sqrt()
    deficit = sum(w * g.deficit for g, w in parts) / sum(w for _, w in parts)
    return GrainStatistics(covariances, kernel.contiguous(), deficit)


class Grain(nn.Module):
    """image (N, 3, H, W) in [-1, 1] -> the same with the concept's grain added, clamped.

    `strength` scales the grain's standard deviation (the adapter's strength, so a half-strength
    edit has half the grain); `offset` shifts the pattern (a video moves it between frames, as
    film grain moves; a still uses 0, so the same photo gives the same edit)."""

    def __init__(self, statistics: GrainStatistics, seed: int = 0, tile: int = GRAIN_TILE) -> None:
        super().__init__()
        bands = statistics.covariances.shape[0]
        self.register_buffer("roots", _square_root(statistics.covariances.float()).reshape(bands, 9))
        self.register_buffer("band_centres", torch.arange(bands, dtype=torch.float32))
        kernel = statistics.kernel.float()
        half = kernel.shape[0] // 2
        generator = torch.Generator().manual_seed(seed)
        white = torch.randn(1, 3, tile, tile, generator=generator)
        # Circular padding: the filtered pattern wraps seamlessly, so tiling shows no seams.
        pattern = F.conv2d(F.pad(white, [half] * 4, mode="circular"),
                           kernel.expand(3, 1, -1, -1), groups=3)
        self.register_buffer("pattern", pattern[0])
        self.tile = tile

    def forward(self, image: torch.Tensor, strength: float = 1.0,
                offset: tuple[int, int] = (0, 0)) -> torch.Tensor:
        height, width = image.shape[-2:]
        # Index arithmetic rather than repeat-and-crop: it exports with symbolic sizes.
        rows = (torch.arange(height, device=image.device) + offset[0]) % self.tile
        columns = (torch.arange(width, device=image.device) + offset[1]) % self.tile
        noise = self.pattern.index_select(1, rows).index_select(2, columns).to(image.dtype)
        # Each pixel's colour transform, interpolated linearly between brightness bands.
        position = luminance(image) * self.roots.shape[0] - 0.5
        weights = torch.relu(1 - (position.unsqueeze(-1) - self.band_centres).abs())
        weights = weights / weights.sum(-1, keepdim=True).clamp(min=1e-6)  # the outer half-bands
        roots = (weights @ self.roots.to(image.dtype)).unflatten(-1, (3, 3))  # (N, H, W, 3, 3)
        grain = torch.einsum("nhwij,jhw->nihw", roots, noise)
        return (image + strength * grain).clamp(-1, 1)

"""What one diffusion teacher edit costs, counted from its architecture without its weights.

A concept's generator exists to replace its teacher, so Compare shows what it replaces. Where a
diffusion teacher's weights are loaded its time is measured; elsewhere (the built-in teacher, a
machine without the weights) the studio estimates it: the teacher's multiply-adds, counted here,
over the multiply-adds per second this device just achieved on the generator's own edit.

The count is exact for the architecture, not a rule of thumb: diffusers builds the UNet, the VAE
(and the ControlNet) on PyTorch's meta device, with shapes but no memory or weights, and torch's
`FlopCounterMode` counts one pass of each from the shapes alone. Stable Diffusion 1.x's UNet at
512 px counts 402 G multiply-adds per pass, its VAE decoder 1,257 G and encoder 558 G. The passes
per edit follow diffusers' pipelines: img2img runs int(steps x strength) steps, each one pass, two
with classifier-free guidance (guidance scale above 1); InstructPix2Pix runs three (text, image
and unconditioned); a ControlNet adds its own network to every pass.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from e2gan.errors import E2GANError
from e2gan.files import atomic_write_json
from e2gan.paths import cache_root

# The UNet of each teacher's default model family. SD 2.x (sd-turbo's base) has a 1024-d text
# encoder, per-block head dimensions and linear attention projections.
_UNET_FAMILIES: dict[str, dict[str, Any]] = {
    "sd1": {"cross_attention_dim": 768},
    "sd2": {"cross_attention_dim": 1024, "attention_head_dim": (5, 10, 20, 20),
            "use_linear_projection": True},
}
# teacher -> (UNet family, the UNet's input channels: InstructPix2Pix reads the photo's latent
# beside the noisy one), for its default model.
TEACHER_ARCHITECTURES = {"instruct-pix2pix": ("sd1", 8), "sd-img2img": ("sd1", 4),
                         "sd-turbo": ("sd2", 4), "controlnet": ("sd1", 4)}
LATENT_FACTOR = 8  # the VAE's downsampling
TEXT_TOKENS = 77


@dataclass(frozen=True)
class TeacherCost:
    """One edit of a square photo at `resolution` px by a diffusion teacher, in multiply-adds."""

    teacher: str
    resolution: int
    denoising_steps: int
    unet_passes: int
    unet_macs_per_pass: float
    controlnet_macs_per_pass: float
    vae_macs: float  # encode the photo, decode the edit

    @property
    def macs(self) -> float:
        return self.unet_passes * (self.unet_macs_per_pass + self.controlnet_macs_per_pass) + self.vae_macs

    def describe(self) -> str:
        return (f"{self.teacher}, {self.denoising_steps} denoising steps at {self.resolution} px: "
                f"{self.macs / 1e12:.1f} T multiply-adds")


def teacher_cost(name: str, settings: dict[str, Any]) -> TeacherCost:
    """The cost of one edit by teacher `name` with its `settings` (the teacher's defaults with
    the user's changes: num_inference_steps, strength, guidance_scale, image_guidance_scale,
    resolution)."""
    if name not in TEACHER_ARCHITECTURES:
        raise E2GANError(f"no cost model for teacher {name!r} (known: {', '.join(TEACHER_ARCHITECTURES)})")
    family, in_channels = TEACHER_ARCHITECTURES[name]
    resolution = int(settings.get("resolution", 512))
    steps = int(settings.get("num_inference_steps", 30))
    guidance = float(settings.get("guidance_scale", 7.5))
    if name == "instruct-pix2pix":
        # diffusers: guidance on when guidance_scale > 1 and image_guidance_scale >= 1.
        guided = guidance > 1 and float(settings.get("image_guidance_scale", 1.5)) >= 1
        denoising, per_step = steps, (3 if guided else 1)
    else:
        denoising = max(1, int(steps * float(settings.get("strength", 0.6))))
        per_step = 2 if guidance > 1 else 1
    latent = resolution // LATENT_FACTOR
    unet, controlnet, vae = _network_macs(family, in_channels, latent, name == "controlnet")
    return TeacherCost(name, resolution, denoising, denoising * per_step, unet, controlnet, vae)


@functools.lru_cache(maxsize=8)
def _network_macs(family: str, in_channels: int, latent: int,
                  with_controlnet: bool) -> tuple[float, float, float]:
    """(UNet per pass, ControlNet per pass, VAE encode + decode) multiply-adds. Counting builds
    the networks (5-10 s on a CPU core), so a count is kept on disk and done once per machine."""
    from importlib.metadata import version

    key = f"{family}|{in_channels}|{latent}|{with_controlnet}|diffusers {version('diffusers')}"
    cache = cache_root() / "teacher-macs.json"
    try:
        known = json.loads(cache.read_text())
        assert isinstance(known, dict)
    except (OSError, ValueError, AssertionError):
        known = {}
    if isinstance(known.get(key), list) and len(known[key]) == 3:
        return tuple(float(value) for value in known[key])
    counted = _count_network_macs(family, in_channels, latent, with_controlnet)
    try:
        atomic_write_json(cache, {**known, key: list(counted)})
    except OSError:
        pass  # a read-only cache costs a recount next time, nothing else
    return counted


def _count_network_macs(family: str, in_channels: int, latent: int,
                        with_controlnet: bool) -> tuple[float, float, float]:
    # Here, not at the top: diffusers takes seconds to import and only a count needs it.
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    unet_config = _UNET_FAMILIES[family]

    def count(run) -> float:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            run()
        return counter.get_total_flops() / 2

    with torch.device("meta"):
        unet = UNet2DConditionModel(in_channels=in_channels, **unet_config)
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                            down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4)
        noisy = torch.zeros(1, in_channels, latent, latent)
        text = torch.zeros(1, TEXT_TOKENS, unet_config["cross_attention_dim"])
        timestep = torch.ones(1)
        image = torch.zeros(1, 3, latent * LATENT_FACTOR, latent * LATENT_FACTOR)
        unet_macs = count(lambda: unet(noisy, timestep, text))
        vae_macs = count(lambda: vae.encode(image)) + count(lambda: vae.decode(noisy[:, :4]))
        controlnet_macs = 0.0
        if with_controlnet:
            controlnet = ControlNetModel(in_channels=in_channels, **unet_config)
            controlnet_macs = count(lambda: controlnet(noisy, timestep, text, controlnet_cond=image))
    return unet_macs, controlnet_macs, vae_macs

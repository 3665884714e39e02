"""Diffusion teachers: InstructPix2Pix, Stable Diffusion img2img, SD-Turbo and ControlNet (canny).

Each wraps one diffusers pipeline behind the `Teacher` interface. Weights come from a local folder
or the local Hugging Face cache (`e2gan.teachers.weights`), loaded lazily on the first `prepare`
or `edit`, so listing teachers never loads a model. On CUDA the pipeline runs in float16 with VAE
slicing, and with model CPU offload when the pipeline would not fit in free GPU memory. Noise comes
from per-image CPU generators seeded with the pair's seed, so an edit is the same whichever batch
it is made in and on whichever device. `stop_requested` is polled after every denoising step
(InstructPix2Pix has no `_interrupt` flag, so the step callback raises `GenerationStopped`).
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

from PIL import Image

from e2gan.errors import E2GANError
from e2gan.files import to_rgb
from e2gan.teachers.base import TEACHERS, GenerationStopped, Teacher
from e2gan.teachers.weights import resolve_model_folder, weights_present

# Every knob a diffusion teacher may take; each teacher declares which it uses and its defaults.
KNOB_TYPES: dict[str, type] = {
    "num_inference_steps": int, "guidance_scale": float, "image_guidance_scale": float,
    "strength": float, "resolution": int, "negative_prompt": str,
    "controlnet_conditioning_scale": float,
}
# How much more memory than its weights a pipeline needs on the GPU (activations, workspace).
MEMORY_HEADROOM = 1.3
MEMORY_RESERVE_BYTES = 1.5 * 2**30


class _LoadedPipeline:
    """Shared by a teacher and its candidate variants, so N candidates load one model."""

    def __init__(self) -> None:
        self.pipeline: Any = None
        self.offloaded = False


class DiffusionTeacher(Teacher):
    """Base of the diffusers-backed teachers. Subclasses set `name`, `phrasing`, `default_model`,
    `defaults` (their knobs) and `candidate_grid`, and build their pipeline in `_from_pretrained`."""

    default_model: str = ""
    defaults: dict[str, Any] = {}
    # Knob overrides that candidate i uses (cycled): a small spread around the defaults.
    candidate_grid: list[dict[str, Any]] = [{}]

    def __init__(self, model: str | None = None, device: str = "auto", dtype: str = "auto",
                 allow_download: bool = False, **knobs: Any) -> None:
        self.model = model or self.default_model
        self.device = device
        self.dtype = dtype
        self.allow_download = allow_download
        if dtype not in ("auto", "float32", "float16", "bfloat16"):
            raise E2GANError(f"dtype must be auto, float32, float16 or bfloat16, got {dtype!r}")
        self.settings = dict(self.defaults)
        self._update_settings(knobs)
        self._loaded = _LoadedPipeline()

    def _update_settings(self, knobs: dict[str, Any]) -> None:
        unknown = sorted(set(knobs) - set(self.defaults))
        if unknown:
            raise E2GANError(f"teacher {self.name!r} has no setting {', '.join(unknown)}; its "
                             f"settings: {', '.join(sorted(self.defaults))}")
        for knob, value in knobs.items():
            if value is None:
                continue  # "use the default", as an unset CLI flag passes it
            try:
                self.settings[knob] = KNOB_TYPES[knob](value)
            except (TypeError, ValueError):
                raise E2GANError(f"teacher {self.name!r}: {knob} must be a "
                                 f"{KNOB_TYPES[knob].__name__}, got {value!r}") from None
        self._check_settings()

    def _check_settings(self) -> None:
        s = self.settings
        if s["num_inference_steps"] < 1:
            raise E2GANError(f"num_inference_steps must be at least 1, got {s['num_inference_steps']}")
        if s["resolution"] < 32:
            raise E2GANError(f"resolution must be at least 32 pixels, got {s['resolution']}")
        if s.get("guidance_scale", 0.0) < 0:
            raise E2GANError(f"guidance_scale must be >= 0, got {s['guidance_scale']}")
        if "strength" in s:
            if not 0.0 < s["strength"] <= 1.0:
                raise E2GANError(f"strength must be in (0, 1], got {s['strength']}")
            if int(s["num_inference_steps"] * s["strength"]) < 1:
                # diffusers runs int(steps * strength) steps; zero would return the input.
                raise E2GANError(f"num_inference_steps x strength must be at least 1 "
                                 f"({s['num_inference_steps']} x {s['strength']}); raise either")

    # --- Teacher interface ----------------------------------------------------------------

    @classmethod
    def available(cls) -> tuple[bool, str]:
        missing = [name for name in ("diffusers", "transformers") if importlib.util.find_spec(name) is None]
        if missing:
            return False, f"{' and '.join(missing)} not installed (pip install diffusers transformers)"
        return True, ""

    @classmethod
    def weights_present(cls, model: str | None = None) -> tuple[bool, str]:
        """Whether the model's weights are on this machine (the teacher may still be importable):
        (True, its folder) or (False, what to fetch)."""
        return weights_present(model or cls.default_model)

    @classmethod
    def fetch_weights(cls, model: str | None = None, on_progress=None, should_stop=None) -> list[str]:
        return [str(resolve_model_folder(model or cls.default_model, allow_download=True,
                                         on_progress=on_progress, should_stop=should_stop))]

    def parameters(self) -> dict:
        import diffusers

        return {"teacher": self.name, "model": self.model, **self.settings, "dtype": self.dtype,
                "diffusers": diffusers.__version__}

    def prepare(self) -> None:
        self._pipeline()

    def variants(self, count: int) -> list[Teacher]:
        if count < 1:
            raise E2GANError(f"the number of candidates must be at least 1, got {count}")
        return [self.with_settings(**self.candidate_grid[i % len(self.candidate_grid)])
                for i in range(count)]

    def with_settings(self, **knobs: Any) -> DiffusionTeacher:
        """A copy with some knobs changed that shares this teacher's loaded pipeline."""
        twin = copy.copy(self)
        twin.settings = dict(self.settings)
        twin._update_settings(knobs)
        return twin

    def edit(self, images: list[Image.Image], prompt: str, seeds: list[int]) -> list[Image.Image]:
        if len(images) != len(seeds):
            raise ValueError(f"got {len(images)} images but {len(seeds)} seeds")
        if not images:
            return []
        pipeline = self._pipeline()
        images = [to_rgb(image, name=f"image {number}") for number, image in enumerate(images)]
        multiple = self._size_multiple(pipeline)
        working = [self._working_size(image.size, multiple) for image in images]
        results: list[Image.Image | None] = [None] * len(images)
        # Images of one working size go through the pipeline together; sizes differ only when a
        # source mixes aspect ratios.
        for size in dict.fromkeys(working):
            indices = [i for i, other in enumerate(working) if other == size]
            batch = [images[i].resize(size, Image.Resampling.LANCZOS) for i in indices]
            outputs = self._run(pipeline, batch, prompt, [seeds[i] for i in indices])
            for i, output in zip(indices, outputs):
                results[i] = output.convert("RGB").resize(images[i].size, Image.Resampling.LANCZOS)
        return results  # type: ignore[return-value]

    # --- running ----------------------------------------------------------------------------

    def _run(self, pipeline, batch: list[Image.Image], prompt: str, seeds: list[int]) -> list[Image.Image]:
        import torch

        # CPU generators: the same seed gives the same noise on every device and in every batch.
        generators = [torch.Generator("cpu").manual_seed(int(seed) % 2**63) for seed in seeds]
        arguments = {"prompt": [prompt] * len(batch), "image": batch, "generator": generators,
                     "output_type": "pil", "callback_on_step_end": self._step_callback,
                     **self._call_arguments(batch)}
        with torch.inference_mode():
            return pipeline(**arguments).images

    def _step_callback(self, pipeline, step: int, timestep, callback_kwargs: dict) -> dict:
        if self.stop_requested is not None and self.stop_requested():
            raise GenerationStopped(f"{self.name} stopped at denoising step {step}")
        return callback_kwargs

    def _call_arguments(self, batch: list[Image.Image]) -> dict[str, Any]:
        """The pipeline's knobs for one call (all settings but resolution, an empty negative
        prompt left out)."""
        arguments = {k: v for k, v in self.settings.items() if k != "resolution"}
        if "negative_prompt" in arguments:
            negative = arguments.pop("negative_prompt")
            if negative:
                arguments["negative_prompt"] = [negative] * len(batch)
        return arguments

    def _working_size(self, size: tuple[int, int], multiple: int) -> tuple[int, int]:
        """The input scaled so its short side is `resolution` (long side capped at twice that),
        each side a multiple the UNet can halve down to its bottom level."""
        width, height = size
        resolution = self.settings["resolution"]
        scale = min(resolution / min(width, height), 2 * resolution / max(width, height))
        return tuple(max(multiple, int(round(side * scale / multiple)) * multiple)
                     for side in (width, height))  # type: ignore[return-value]

    @staticmethod
    def _size_multiple(pipeline) -> int:
        vae_factor = 2 ** (len(pipeline.vae.config.block_out_channels) - 1)
        unet_factor = 2 ** (len(pipeline.unet.config.block_out_channels) - 1)
        return vae_factor * unet_factor

    # --- loading ----------------------------------------------------------------------------

    def _pipeline(self):
        if self._loaded.pipeline is None:
            import torch

            device = _pick_device(self.device)
            dtype = {"float32": torch.float32, "float16": torch.float16,
                     "bfloat16": torch.bfloat16}.get(self.dtype)
            if dtype is None:  # auto: half precision where it is fast and halves the memory
                dtype = torch.float16 if device.type == "cuda" else torch.float32
            folder = resolve_model_folder(self.model, self.allow_download)
            try:
                pipeline = self._from_pretrained(str(folder), dtype)
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise E2GANError(f"cannot load {self.name} pipeline from {self.model} ({folder}): "
                                 f"{str(error).splitlines()[0][:300]}") from None
            self._check_pipeline(pipeline)
            pipeline.set_progress_bar_config(disable=True)
            self._loaded.offloaded = _place(pipeline, device)
            pipeline.vae.enable_slicing()  # decode a batch one image at a time: far less memory
            self._loaded.pipeline = pipeline
        return self._loaded.pipeline

    def _from_pretrained(self, folder: str, dtype):
        raise NotImplementedError

    def _check_pipeline(self, pipeline) -> None:
        in_channels = pipeline.unet.config.in_channels
        if in_channels != 4:
            raise E2GANError(f"{self.model} is not a text-to-image Stable Diffusion model (its UNet "
                             f"takes {in_channels} channels); for an InstructPix2Pix model use "
                             "--teacher instruct-pix2pix")


def _pipeline_class_name(folder: str) -> str:
    import json

    try:
        return str(json.loads((Path(folder) / "model_index.json").read_text()).get("_class_name", ""))
    except (OSError, ValueError):
        return ""


def _pick_device(device: str):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise E2GANError(f"unknown device {device!r}") from None


def _place(pipeline, device) -> bool:
    """Move the pipeline to `device`; on a GPU too small for all of it at once, let accelerate
    keep each model on the CPU until it runs (model CPU offload). True when offloaded."""
    import torch

    if device.type == "cuda":
        free_bytes, _ = torch.cuda.mem_get_info(device)
        weight_bytes = sum(p.numel() * p.element_size() for component in pipeline.components.values()
                           if isinstance(component, torch.nn.Module) for p in component.parameters())
        if weight_bytes * MEMORY_HEADROOM + MEMORY_RESERVE_BYTES > free_bytes:
            pipeline.enable_model_cpu_offload(device=device)
            return True
    pipeline.to(device)
    return False


@TEACHERS.register("instruct-pix2pix")
class InstructPix2PixTeacher(DiffusionTeacher):
    """InstructPix2Pix: follows an instruction ("make it winter") while keeping the photo."""

    name = "instruct-pix2pix"
    phrasing = "instruction"
    default_model = "timbrooks/instruct-pix2pix"
    defaults = {"num_inference_steps": 20, "guidance_scale": 7.5, "image_guidance_scale": 1.5,
                "resolution": 512, "negative_prompt": ""}
    # The two guidances trade edit strength against faithfulness to the photo; the paper's own
    # sweeps span text 5-10 and image 1.0-2.0.
    candidate_grid = [{}, {"guidance_scale": 10.0, "image_guidance_scale": 1.2},
                      {"guidance_scale": 5.0, "image_guidance_scale": 1.8},
                      {"guidance_scale": 7.5, "image_guidance_scale": 1.2},
                      {"guidance_scale": 10.0, "image_guidance_scale": 1.5}]

    def _from_pretrained(self, folder: str, dtype):
        from diffusers import StableDiffusionInstructPix2PixPipeline

        return StableDiffusionInstructPix2PixPipeline.from_pretrained(
            folder, dtype=dtype, safety_checker=None, requires_safety_checker=False)

    def _check_pipeline(self, pipeline) -> None:
        if pipeline.unet.config.in_channels != 8:
            raise E2GANError(f"{self.model} is not an InstructPix2Pix model (its UNet takes "
                             f"{pipeline.unet.config.in_channels} channels, not 8); for an SD model "
                             "use --teacher sd-img2img")


@TEACHERS.register("sd-img2img")
class StableDiffusionImg2ImgTeacher(DiffusionTeacher):
    """Stable Diffusion img2img (SD 1.x / 2.x / XL): re-noises the photo part way
    (`strength`) and denoises it towards a description ("a snowy winter landscape")."""

    name = "sd-img2img"
    phrasing = "description"
    default_model = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    defaults = {"num_inference_steps": 30, "strength": 0.6, "guidance_scale": 7.5,
                "resolution": 512, "negative_prompt": ""}
    candidate_grid = [{}, {"strength": 0.5}, {"strength": 0.75}, {"guidance_scale": 5.0},
                      {"strength": 0.7, "guidance_scale": 10.0}]

    def _from_pretrained(self, folder: str, dtype):
        from diffusers import AutoPipelineForImage2Image

        if "InstructPix2Pix" in _pipeline_class_name(folder):
            raise E2GANError(f"{self.model} is an InstructPix2Pix model, not a text-to-image "
                             "Stable Diffusion model; use --teacher instruct-pix2pix")
        return AutoPipelineForImage2Image.from_pretrained(
            folder, dtype=dtype, safety_checker=None, requires_safety_checker=False)


@TEACHERS.register("sd-turbo")
class TurboTeacher(StableDiffusionImg2ImgTeacher):
    """SD-Turbo / SDXL-Turbo img2img: adversarially distilled, one to four steps without
    classifier-free guidance: the diffusion teacher a CPU-only user can afford."""

    name = "sd-turbo"
    default_model = "stabilityai/sd-turbo"
    defaults = {"num_inference_steps": 2, "strength": 0.5, "guidance_scale": 0.0,
                "resolution": 512, "negative_prompt": ""}
    # int(steps x strength) denoising steps run; with 2 steps every strength here runs one.
    candidate_grid = [{}, {"strength": 0.75}, {"strength": 0.6}, {"strength": 0.9},
                      {"num_inference_steps": 4, "strength": 0.5}]

    def _check_settings(self) -> None:
        super()._check_settings()
        if self.settings["num_inference_steps"] > 8:
            raise E2GANError("turbo models are made for 1-4 steps (got "
                             f"{self.settings['num_inference_steps']}); use sd-img2img for more")


@TEACHERS.register("controlnet")
class ControlNetTeacher(StableDiffusionImg2ImgTeacher):
    """SD img2img guided by a canny-edge ControlNet: stronger edits that keep the photo's lines.

    `controlnet` is a folder or repo id; by default the model folder's own `controlnet/` subfolder
    when it has one, else lllyasviel/sd-controlnet-canny."""

    name = "controlnet"
    default_controlnet = "lllyasviel/sd-controlnet-canny"
    defaults = {"num_inference_steps": 30, "strength": 0.8, "guidance_scale": 7.5,
                "controlnet_conditioning_scale": 1.0, "resolution": 512, "negative_prompt": ""}
    candidate_grid = [{}, {"strength": 0.9}, {"controlnet_conditioning_scale": 0.6},
                      {"strength": 0.7, "guidance_scale": 10.0}]

    def __init__(self, model: str | None = None, controlnet: str | None = None,
                 low_threshold: int = 100, high_threshold: int = 200, **options: Any) -> None:
        super().__init__(model, **options)
        self.controlnet = controlnet
        self.thresholds = (int(low_threshold), int(high_threshold))

    @classmethod
    def weights_present(cls, model: str | None = None) -> tuple[bool, str]:
        """Both halves: the Stable Diffusion model, and the ControlNet its folder holds or the
        default one (what `_from_pretrained` loads when no controlnet is given)."""
        present, detail = super().weights_present(model)
        if not present or (Path(detail) / "controlnet" / "config.json").is_file():
            return present, detail
        net_present, net_detail = weights_present(cls.default_controlnet)
        return (True, f"{detail} + {net_detail}") if net_present else (False, net_detail)

    @classmethod
    def fetch_weights(cls, model: str | None = None, on_progress=None, should_stop=None) -> list[str]:
        """The model, then the default ControlNet unless the model's folder holds its own."""
        folders = super().fetch_weights(model, on_progress, should_stop)
        if (Path(folders[0]) / "controlnet" / "config.json").is_file():
            return folders
        return folders + [str(resolve_model_folder(cls.default_controlnet, allow_download=True,
                                                   on_progress=on_progress, should_stop=should_stop))]

    def parameters(self) -> dict:
        return {**super().parameters(), "controlnet": self.controlnet or "auto",
                "canny_thresholds": list(self.thresholds)}

    def _from_pretrained(self, folder: str, dtype):
        from diffusers import ControlNetModel, StableDiffusionControlNetImg2ImgPipeline

        controlnet = self.controlnet
        if controlnet is None:
            own = Path(folder) / "controlnet"
            controlnet = str(own) if (own / "config.json").is_file() else self.default_controlnet
        controlnet_folder = resolve_model_folder(controlnet, self.allow_download)
        net = ControlNetModel.from_pretrained(str(controlnet_folder), dtype=dtype)
        return StableDiffusionControlNetImg2ImgPipeline.from_pretrained(
            folder, controlnet=net, dtype=dtype, safety_checker=None, requires_safety_checker=False)

    def _call_arguments(self, batch: list[Image.Image]) -> dict[str, Any]:
        import cv2
        import numpy as np

        edges = [cv2.Canny(np.asarray(image.convert("L")), *self.thresholds) for image in batch]
        control = [Image.fromarray(np.stack([edge] * 3, axis=-1)) for edge in edges]
        return {**super()._call_arguments(batch), "control_image": control}

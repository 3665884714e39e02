"""The one inference entry point: base weights + optional adapters + prompt -> edited images.

The studio, `e2gan edit`, evaluation and export all go through `EditPipeline`, so what is
measured is what users run.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image

from e2gan.checks import check_edit_size
from e2gan.checkpoint import Adapter, LoadedGenerator, apply_adapter, load_generator, read_adapter
from e2gan.data.torch_data import tensor_to_image
from e2gan.devices import resolve_device
from e2gan.errors import E2GANError
from e2gan.files import check_image_pixels, to_rgb
from e2gan.hub.adapters import resolve_adapter
from e2gan.models import lora
from e2gan.models.grain import Grain, GrainStatistics
from e2gan.precision import autocast, resolve_precision
from e2gan.text import LearnedConceptEncoder, concept_key


class EditPipeline:
    def __init__(self, loaded: LoadedGenerator, device: str | torch.device = "auto",
                 precision: str = "auto") -> None:
        self.loaded = loaded
        self.device = resolve_device(device) if isinstance(device, str) else device
        # "auto": bf16 where the device multiplies it in hardware (e2gan.precision), else fp32.
        self.precision = resolve_precision(precision, self.device)
        self.generator = loaded.generator.to(self.device).eval()
        self.text_encoder = loaded.text_encoder
        if self.text_encoder is not None:
            self.text_encoder.to(self.device).eval()
        self.adapters: dict[str, Adapter] = {}
        # Each loaded adapter's grain (models.grain), added after the generator at the active
        # adapter's strength; `use_grain=False` shows the generator's output alone.
        self.grains: dict[str, Grain] = {}
        self.use_grain = True
        self.active: tuple[str | None, float] = (None, 1.0)
        self.live_grain: Grain | None = None  # see show_grain

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, device: str = "auto",
                        precision: str = "auto") -> "EditPipeline":
        return cls(load_generator(folder), device, precision)

    @property
    def info(self) -> dict:
        return self.loaded.info

    def load_adapter(self, adapter: str | os.PathLike | Adapter, scale: float = 1.0,
                     name: str | None = None) -> str:
        """Load an adapter and make it the only active one: an `Adapter`, a file, or a Hub id
        (`org/name`, `org/name/file.safetensors`; see `e2gan.hub.adapters.resolve_adapter`)."""
        lora.check_adapter_scale(scale)  # before anything is loaded: a refusal leaves no trace
        if not isinstance(adapter, Adapter):
            adapter = read_adapter(resolve_adapter(adapter))
        name = name or adapter.concept
        if name in self.adapters:
            lora.delete_adapter(self.generator, name)
        apply_adapter(self.loaded, adapter, name=name)
        self.generator.to(self.device)
        if self.text_encoder is not None:
            self.text_encoder.to(self.device)
        self.adapters[name] = adapter
        statistics = adapter.grain
        if statistics is not None:
            self.grains[name] = Grain(statistics).to(self.device)
        else:
            self.grains.pop(name, None)
        self.use_adapter(name, scale)
        return name

    def use_adapter(self, name: str | None, scale: float = 1.0) -> None:
        """Switch to one loaded adapter at `scale` (None: the bare base model)."""
        if name is None:
            lora.set_active_adapters(self.generator, [])
            self.active = (None, 1.0)
            return
        if name not in self.adapters:
            raise E2GANError(f"adapter {name!r} is not loaded (loaded: {sorted(self.adapters)})")
        lora.set_active_adapters(self.generator, [name])
        lora.set_adapter_scale(self.generator, name, scale)
        self.active = (name, scale)

    def show_grain(self, statistics: GrainStatistics | None) -> None:
        """Add this grain to every edit at full strength (None: stop), whatever adapter is
        active: for a fine-tune that trains its adapter in place on this pipeline's model, whose
        grain is fitted each time the adapter is written and has no file loaded here."""
        self.live_grain = Grain(statistics).to(self.device) if statistics is not None else None

    @property
    def grain(self) -> Grain | None:
        """The grain edits get: the live one, else the active adapter's; none when grain is off."""
        name = self.active[0]
        if not self.use_grain:
            return None
        return self.live_grain or (self.grains.get(name) if name is not None else None)

    def default_prompt(self, prompt: str | None) -> str:
        """The prompt to use when the caller gives none: the active adapter's, else an error."""
        if prompt:
            for adapter in self.adapters.values():  # a concept's short name stands for its prompt
                if concept_key(prompt) == adapter.concept:
                    return adapter.prompt
            return prompt
        active = lora.adapter_names(self.generator)
        if len(self.adapters) == 1:
            return next(iter(self.adapters.values())).prompt
        if not getattr(self.generator, "uses_text", False):
            return ""
        raise E2GANError(f"give a prompt (adapters loaded: {active or 'none'})")

    def prompts_known(self) -> list[str]:
        encoder = self.text_encoder
        return encoder.concepts if isinstance(encoder, LearnedConceptEncoder) else []

    @torch.no_grad()
    def __call__(self, images: list[Image.Image], prompt: str, size: int | None = None,
                 batch_size: int = 8, grain_offset: tuple[int, int] = (0, 0)) -> list[Image.Image]:
        """Edit images, each coming back at exactly its own size. `size`: first resize the
        shorter side to this many pixels; None keeps each image's size. `grain_offset` shifts
        the active adapter's grain pattern (a video moves it from frame to frame).

        The generator needs sides that are multiples of its `size_multiple`: each image is padded
        (mirrored) at its bottom and right up to the next multiple and the output cropped back,
        so every pixel stays where it was (no resampling) and an image already at a multiple is
        edited exactly as before."""
        size = check_edit_size(size)
        outputs = []
        for start in range(0, len(images), batch_size):
            chunk = [to_rgb(image, f"image {start + i}") for i, image in enumerate(images[start:start + batch_size])]
            groups: dict[tuple[int, int], list[int]] = {}
            tensors = []
            for index, image in enumerate(chunk):
                tensor = self._prepare(image, size)
                tensors.append(tensor)
                groups.setdefault(tuple(tensor.shape[-2:]), []).append(index)
            results: list[Image.Image | None] = [None] * len(chunk)
            for (height, width), indices in groups.items():
                batch = torch.stack([tensors[i] for i in indices]).to(self.device)
                batch = pad_to_multiple(batch, self.generator.size_multiple)
                text = None
                if getattr(self.generator, "uses_text", False):
                    text = self.text_encoder([prompt] * len(indices)).to(self.device)
                with autocast(self.precision, self.device):
                    edited = self.generator(batch, text).float()[:, :, :height, :width]
                grain = self.grain
                if grain is not None:
                    edited = grain(edited, self.active[1], grain_offset)
                if not torch.isfinite(edited).all():
                    # tensor_to_image would turn NaN into black and metrics would judge it.
                    raise E2GANError(f"the model's output has non-finite values (NaN or inf) for "
                                     f"prompt {prompt!r}: its weights or adapter are broken")
                for i, out in zip(indices, edited):
                    results[i] = tensor_to_image(out.float().cpu())
            outputs.extend(results)
        return outputs

    def _prepare(self, image: Image.Image, size: int | None) -> torch.Tensor:
        """The image as a 3xHxW tensor in [-1, 1], resized first where `size` asks."""
        if size is not None:
            scale = size / min(image.size)
            width, height = round(image.width * scale), round(image.height * scale)
            # An upscale allocates what it asks for: the pixel limit holds for it too.
            check_image_pixels((width, height), f"at size {size}")
            if (width, height) != image.size:
                image = image.resize((width, height), Image.BICUBIC)
        array = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
        return array.float() / 127.5 - 1.0


def pad_to_multiple(batch: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad an NxCxHxW batch at the bottom and right up to the next multiple of `multiple`.

    Mirrored, not zeros: a border of black would be edited as part of the picture and bleed into
    the pixels beside it (the convolutions and attention see across it); a mirror continues the
    picture's own texture. Cropping the output back leaves every kept pixel where it was, which a
    resize to the multiple and back would blur. A side shorter than its padding (a tiny image
    with a large multiple) cannot be mirrored and repeats its last row or column instead."""
    height, width = batch.shape[-2:]
    pad_height, pad_width = -height % multiple, -width % multiple
    if not pad_height and not pad_width:
        return batch
    mode = "reflect" if pad_height < height and pad_width < width else "replicate"
    return torch.nn.functional.pad(batch, (0, pad_width, 0, pad_height), mode=mode)

"""The studio's "Try the base" tab: the shipped base's concepts and any adapter on an image.

The callbacks are plain functions (`edit`) so they can be tested and scripted without a browser;
`build_try_tab` only wires them to components.
"""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr
from PIL import Image

from e2gan.checkpoint import is_adapter_file
from e2gan.data.sources import builtin_photos
from e2gan.errors import E2GANError
from e2gan.paths import REPOSITORY, default_base_dir
from e2gan.inference.pipeline import EditPipeline
from e2gan.teachers import create_teacher, resolve_builtin_concept

from app.ui import page_error, photo_input, picture

RUNS = REPOSITORY / "runs"


class ConceptTrier:
    """Holds one base pipeline and the adapters loaded into it (loading is the slow part)."""

    def __init__(self, base_dir: str | Path | None = None, device: str = "auto") -> None:
        self.pipeline = EditPipeline.from_pretrained(base_dir or default_base_dir(), device=device)
        self.teacher = create_teacher("builtin")

    def choices(self) -> list[str]:
        """The base's own concepts, then every adapter file found under runs/."""
        adapters = sorted(str(p.relative_to(REPOSITORY)) for p in RUNS.glob("**/*.safetensors")
                          if is_adapter_file(p))
        return self.pipeline.prompts_known() + adapters

    def edit(self, image: Image.Image | None, choice: str, scale: float = 1.0,
             size: int = 256) -> tuple[Image.Image | None, Image.Image, str]:
        """(teacher's edit or None, E2GAN's edit, timing line) for one image and one concept."""
        if image is None:
            raise E2GANError("pick or upload an image first")
        if not choice:
            raise E2GANError("pick a concept")
        image = image.convert("RGB")
        if choice.endswith(".safetensors"):
            name = self.pipeline.load_adapter(REPOSITORY / choice, scale=scale)
            prompt = self.pipeline.adapters[name].prompt
        else:
            self.pipeline.use_adapter(None)
            prompt = choice
        started = time.perf_counter()
        edited = self.pipeline([image], prompt, size=size)[0]
        seconds = time.perf_counter() - started
        try:
            concept = resolve_builtin_concept(prompt.replace("_", " "))
            teacher = self.teacher.edit([image.resize(edited.size)], concept.prompt, [0])[0]
        except E2GANError:  # a concept the built-in teacher does not know (e.g. imported pairs)
            teacher = None
        return teacher, edited, f"E2GAN: {seconds * 1000:.0f} ms at {edited.size[0]}x{edited.size[1]} on {self.pipeline.device}"


def build_try_tab(trier: ConceptTrier) -> None:
    """A tab: the shipped base's concepts and any adapter under runs/, next to the teacher.
    Its `/edit` endpoint is public."""
    examples = [image for _, image in builtin_photos(4, size=256, seed=3)]

    def on_edit(path, choice, scale):
        try:
            return trier.edit(picture(path), choice, scale)
        except E2GANError as error:
            raise page_error(str(error)) from None

    with gr.Tab("Try the base", id="try"):
        gr.Markdown("The shipped base model's concepts and any adapter under `runs/` (e.g. from "
                    "`e2gan demo`), next to the built-in teacher.")
        with gr.Row():
            # A path: `picture` checks the pixel limit before anything is decoded.
            source = photo_input(label="image", value=examples[0])
            teacher = gr.Image(type="pil", label="teacher", interactive=False)
            edited = gr.Image(type="pil", label="E2GAN", interactive=False)
        with gr.Row():
            choice = gr.Dropdown(trier.choices(), value=(trier.choices() or [None])[0],
                                 label="concept or adapter")
            scale = gr.Slider(0.0, 1.5, value=1.0, step=0.05, label="adapter strength")
            run = gr.Button("Edit", variant="primary")
        timing = gr.Markdown()
        gr.Examples([[e] for e in examples], inputs=[source])
        run.click(on_edit, [source, choice, scale], [teacher, edited, timing], api_name="edit",
                  concurrency_limit=1)

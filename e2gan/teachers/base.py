"""What a teacher is: something that edits images given a prompt, deterministically per seed.

A teacher produces the training pairs the tiny GAN learns from. Every teacher, from the offline
built-in one to a diffusion editor, answers the same four questions: edit these images, what knobs
did you use (stored beside every pair so a dataset says how it was made), can you run here, and
which named concepts do you know.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from PIL import Image

from e2gan.errors import E2GANError
from e2gan.registry import Registry
from e2gan.teachers.phrasing import free_text_phrasings


@dataclass(frozen=True)
class Concept:
    """A named edit a teacher knows.

    `name` is a slug used in file and adapter names; `prompt` is the phrase fed to text
    conditioning, so adapters trained from different teachers for one concept share a prompt.
    """

    name: str
    prompt: str
    description: str
    instruction: str = ""

    def phrasing(self, kind: str) -> str:
        """The concept phrased the way a teacher wants it: "description" ("a snowy winter
        scene", for img2img teachers and text conditioning) or "instruction" ("make it winter",
        for InstructPix2Pix)."""
        if kind == "instruction":
            return self.instruction or free_text_phrasings(self.prompt)["instruction"]
        if kind == "description":
            return self.prompt
        raise E2GANError(f"unknown phrasing {kind!r}; known: {', '.join(PHRASINGS)}")

    def phrasings(self) -> dict[str, str]:
        return {kind: self.phrasing(kind) for kind in PHRASINGS}


# How a teacher wants a concept phrased; a dataset keeps every phrasing (DatasetInfo.prompts).
PHRASINGS = ("description", "instruction")


class GenerationStopped(Exception):
    """Raised inside `Teacher.edit` when its `stop_requested` callable says stop: the batch being
    made is dropped (nothing of it was written) and a rerun makes it again."""


class Teacher:
    """Base class for teachers; subclasses set `name` and implement `edit` and `parameters`."""

    name: str = ""
    # The weights a teacher loads when given no model ("" for a teacher without weights).
    default_model: str = ""
    # Which phrasing of a concept this teacher's prompt should be (see `Concept.phrasing`).
    phrasing: str = "description"
    # Set by whoever runs the teacher (generation, the studio) to cancel work inside a batch;
    # a teacher that can stop mid-batch polls it and raises `GenerationStopped`.
    stop_requested: Callable[[], bool] | None = None

    def edit(self, images: list[Image.Image], prompt: str, seeds: list[int]) -> list[Image.Image]:
        """Edit each image following `prompt`; one seed per image; RGB out, same size as in."""
        raise NotImplementedError

    def parameters(self) -> dict:
        """JSON-serialisable description of this teacher's settings, stored with every pair."""
        raise NotImplementedError

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """Whether this teacher can run on this machine, and if not, why (one line)."""
        return True, ""

    @classmethod
    def weights_present(cls, model: str | None = None) -> tuple[bool, str]:
        """Whether the weights of `model` (default: `default_model`) are on this machine:
        (True, where) or (False, why not, in one line). A teacher without weights has them."""
        return True, ""

    @classmethod
    def fetch_weights(cls, model: str | None = None,
                      on_progress: Callable[[Any], None] | None = None,
                      should_stop: Callable[[], bool] | None = None) -> list[str]:
        """Download the weights of `model` (default: `default_model`) into the Hugging Face cache
        unless they are there, reporting as `e2gan.hub.download.download_snapshot` does; their folders.
        A teacher without weights fetches nothing."""
        return []

    def concepts(self) -> list[Concept] | None:
        """The named concepts this teacher knows, or None if it takes free text."""
        return None

    def prepare(self) -> None:
        """Load whatever the teacher needs (weights), so a missing model is reported before any
        dataset is written. The default has nothing to load."""

    def variants(self, count: int) -> list[Teacher]:
        """`count` candidate settings of this teacher for candidate selection. The default is
        this teacher `count` times: candidates then differ by their seeds only."""
        if count < 1:
            raise E2GANError(f"the number of candidates must be at least 1, got {count}")
        return [self] * count


TEACHERS: Registry[type[Teacher]] = Registry("teacher")


def describe_teachers() -> dict[str, dict[str, Any]]:
    """Each registered teacher: whether it can run here (and why not), for a teacher with weights
    whether its default model is on this machine (and why not), and its named concepts (None for
    a teacher that takes free text). Loads no model and never touches the network."""
    report = {}
    for name in TEACHERS:
        teacher_class = TEACHERS.get(name)
        usable, reason = teacher_class.available()
        entry: dict[str, Any] = {"available": usable, "reason": reason}
        if teacher_class.default_model:
            # Without its libraries the weights cannot even be looked up; the reason is the same.
            present, detail = teacher_class.weights_present() if usable else (False, reason)
            entry.update(model=teacher_class.default_model, weights_present=present,
                         weights=detail if present else None, weights_reason="" if present else detail)
        concepts = teacher_class().concepts() if usable else None
        entry["concepts"] = [concept.name for concept in concepts] if concepts else None
        report[name] = entry
    return report


def create_teacher(name: str, **params) -> Teacher:
    """Build the registered teacher `name` with `params`, refusing unknown names and knobs."""
    teacher_class = TEACHERS.get(name)
    usable, reason = teacher_class.available()
    if not usable:
        raise E2GANError(f"teacher {name!r} cannot run here: {reason}")
    # Checking the signature first keeps a typo in a knob a one-line user error, while a
    # TypeError raised inside a constructor still surfaces as the bug it is.
    try:
        inspect.signature(teacher_class).bind(**params)
    except TypeError as error:
        raise E2GANError(f"teacher {name!r}: {error}") from None
    return teacher_class(**params)

"""The offline teacher: every concept is a real, reproducible, distinct image-to-image edit."""

from __future__ import annotations

import itertools
import json

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from e2gan.errors import E2GANError
from e2gan.teachers import (
    BUILTIN_CONCEPTS,
    TEACHERS,
    Concept,
    Teacher,
    create_teacher,
    resolve_builtin_concept,
)
from e2gan.teachers.builtin import BuiltinTeacher

CONCEPT_NAMES = list(BUILTIN_CONCEPTS)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A small real photo (it ships inside scikit-image), non-square so axes cannot be swapped."""
    array = cv2.resize(skimage.data.astronaut(), (80, 64), interpolation=cv2.INTER_AREA)
    return Image.fromarray(array)


@pytest.fixture(scope="module")
def teacher() -> Teacher:
    return create_teacher("builtin")


def _edit(teacher: Teacher, image: Image.Image, concept: str, seed: int) -> np.ndarray:
    [edited] = teacher.edit([image], concept, [seed])
    return np.asarray(edited)


def _mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def test_catalogue_has_at_least_forty_slugged_concepts_with_unique_prompts():
    assert len(BUILTIN_CONCEPTS) >= 40
    for name, concept in BUILTIN_CONCEPTS.items():
        assert isinstance(concept, Concept)
        assert concept.name == name
        assert name.replace("_", "").isalnum() and name == name.lower()
        assert concept.prompt and concept.description
    prompts = [concept.prompt for concept in BUILTIN_CONCEPTS.values()]
    assert len(set(prompts)) == len(prompts)


@pytest.mark.parametrize("concept", CONCEPT_NAMES)
def test_concept_is_a_same_size_rgb_edit_that_changes_the_image(teacher, photo, concept):
    edited = _edit(teacher, photo, concept, seed=0)
    assert edited.dtype == np.uint8
    assert edited.shape == (64, 80, 3)
    assert _mean_difference(edited, np.asarray(photo)) > 5.0


@pytest.mark.parametrize("concept", CONCEPT_NAMES)
def test_concept_is_deterministic_per_seed_and_varies_across_seeds(photo, concept):
    # Two separate teacher objects: nothing may depend on hidden state left by an earlier call.
    first = _edit(BuiltinTeacher(), photo, concept, seed=3)
    again = _edit(BuiltinTeacher(), photo, concept, seed=3)
    other = _edit(BuiltinTeacher(), photo, concept, seed=4)
    np.testing.assert_array_equal(first, again)
    assert _mean_difference(first, other) > 0.3


@pytest.mark.parametrize("concept", CONCEPT_NAMES)
def test_concept_keeps_a_wide_photo_wide(teacher, concept):
    # 96x40: non-square the other way from the fixture photo, and under a quarter of 256 px, so
    # filters sized by `size_scale` shrink to their minimums.
    wide = Image.fromarray(cv2.resize(skimage.data.chelsea(), (96, 40), interpolation=cv2.INTER_AREA))
    edited = _edit(teacher, wide, concept, seed=2)
    assert edited.shape == (40, 96, 3) and edited.dtype == np.uint8
    assert _mean_difference(edited, np.asarray(wide)) > 3.0


def test_the_first_eighteen_concepts_keep_their_names_and_order():
    # Datasets and adapters made before the catalogue grew are named after these.
    assert CONCEPT_NAMES[:18] == [
        "pencil_sketch", "watercolor", "cartoon", "old_photo", "black_and_white",
        "low_quality_photo", "pop_art", "autumn_foliage", "winter", "night", "oil_painting",
        "stained_glass", "thermal_camera", "silver_sculpture", "pixel_art", "neon_glow",
        "golden_hour", "blueprint",
    ]


@pytest.mark.parametrize("concept", CONCEPT_NAMES)
def test_concept_handles_odd_small_sizes(teacher, concept):
    rng = np.random.default_rng(0)
    # Smooth colour gradients plus a shape, 17 wide and 33 tall: smallest allowed side, odd sizes.
    y, x = np.mgrid[0:33, 0:17]
    array = np.stack([x * 15, y * 7, 255 - y * 7], axis=-1).astype(np.uint8)
    array[10:20, 4:12] = (40, 160, 60)
    array = np.clip(array + rng.integers(-10, 10, array.shape), 0, 255).astype(np.uint8)
    [edited] = teacher.edit([Image.fromarray(array)], concept, [1])
    assert edited.mode == "RGB"
    assert edited.size == (17, 33)


def test_concepts_are_distinct_from_each_other(teacher, photo):
    edits = {name: _edit(teacher, photo, name, seed=0) for name in CONCEPT_NAMES}
    for first, second in itertools.combinations(CONCEPT_NAMES, 2):
        difference = _mean_difference(edits[first], edits[second])
        assert difference > 8.0, f"{first} and {second} look alike ({difference:.1f})"


def test_batch_edit_matches_single_edits_and_converts_any_mode(teacher, photo):
    gray = photo.convert("L")
    rgba = photo.convert("RGBA")
    batch = teacher.edit([photo, gray, rgba], "cartoon", [0, 1, 2])
    assert [image.mode for image in batch] == ["RGB"] * 3
    assert [image.size for image in batch] == [photo.size] * 3
    np.testing.assert_array_equal(np.asarray(batch[1]), _edit(teacher, gray, "cartoon", 1))


def test_edit_needs_one_seed_per_image(teacher, photo):
    with pytest.raises(ValueError, match="seeds"):
        teacher.edit([photo, photo], "cartoon", [0])


def test_edit_refuses_images_too_small_to_train_on(teacher):
    with pytest.raises(E2GANError, match="at least 16"):
        teacher.edit([Image.new("RGB", (8, 40))], "cartoon", [0])


@pytest.mark.parametrize(
    "text",
    [
        "pencil_sketch",
        "a pencil sketch",
        "Pencil Sketch",
        "pencil-sketch",
        "  PENCIL   sketch ",
        "pencil sketch.",
    ],
)
def test_concepts_resolve_from_name_prompt_or_loose_spelling(text):
    assert resolve_builtin_concept(text).name == "pencil_sketch"


def test_every_concept_resolves_from_its_own_name_prompt_and_instruction():
    for concept in BUILTIN_CONCEPTS.values():
        assert resolve_builtin_concept(concept.name) is concept
        assert resolve_builtin_concept(concept.prompt) is concept
        assert resolve_builtin_concept(concept.instruction) is concept


@pytest.mark.parametrize("text", ["xyz", "", "a", "pencil"])
def test_unknown_concept_is_a_clear_error_listing_known_ones(teacher, photo, text):
    with pytest.raises(E2GANError, match="unknown built-in concept") as caught:
        resolve_builtin_concept(text)
    assert "pencil_sketch" in str(caught.value) and "thermal_camera" in str(caught.value)
    with pytest.raises(E2GANError, match="unknown built-in concept"):
        teacher.edit([photo], text, [0])


def test_teacher_describes_itself(teacher):
    assert TEACHERS.get("builtin") is BuiltinTeacher
    assert teacher.name == "builtin"
    parameters = teacher.parameters()
    assert parameters["teacher"] == "builtin"
    assert json.loads(json.dumps(parameters)) == parameters
    assert BuiltinTeacher.available() == (True, "")
    assert teacher.concepts() == list(BUILTIN_CONCEPTS.values())


def test_unknown_teacher_or_knob_is_a_clear_error():
    with pytest.raises(E2GANError, match="unknown teacher 'nope'.*builtin"):
        create_teacher("nope")
    with pytest.raises(E2GANError, match="teacher 'builtin'.*strength"):
        create_teacher("builtin", strength=2)


def test_registry_refuses_a_second_teacher_with_the_same_name():
    class Impostor(Teacher):
        name = "builtin"

    with pytest.raises(ValueError, match="already registered"):
        TEACHERS.add("builtin", Impostor)
    assert TEACHERS.get("builtin") is BuiltinTeacher


def test_teacher_that_cannot_run_here_says_why(monkeypatch):
    class Unavailable(Teacher):
        name = "test-unavailable"

        @classmethod
        def available(cls):
            return False, "needs a GPU"

    # Registered only for this test (the registry has no public removal, by design).
    monkeypatch.setitem(TEACHERS._entries, Unavailable.name, Unavailable)
    with pytest.raises(E2GANError, match="cannot run here: needs a GPU"):
        create_teacher(Unavailable.name)


def test_free_text_is_never_a_dead_end():
    """Text no filter knows gets the nearest names and the ways to any text."""
    with pytest.raises(E2GANError) as caught:
        resolve_builtin_concept("old person")
    message = str(caught.value)
    assert "did you mean old_photo" in message
    assert "diffusion teacher" in message and "hf download timbrooks/instruct-pix2pix" in message
    assert "e2gan import" in message

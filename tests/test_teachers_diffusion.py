"""Diffusion teachers on tiny random pipelines: the real diffusers calls, offline, in seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from e2gan.errors import E2GANError
from e2gan.teachers import TEACHERS, BUILTIN_CONCEPTS, GenerationStopped, create_teacher
from e2gan.teachers.diffusion import DiffusionTeacher
from e2gan.teachers.weights import resolve_model_folder, weights_present

KINDS = ["instruct-pix2pix", "sd-img2img", "sd-turbo", "controlnet"]
TINY = {"resolution": 32, "num_inference_steps": 2}


@pytest.fixture(scope="module")
def tiny_models(tiny_diffusion_models) -> dict[str, str]:
    return tiny_diffusion_models


def _photo(width: int = 48, height: int = 40, seed: int = 0) -> Image.Image:
    """A smooth picture with structure (edges for the ControlNet, colour for CLIP)."""
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 6.28, 3)
    rgb = np.stack([127 + 120 * np.sin(x / 6 + phase[c]) * np.cos(y / 5) for c in range(3)], -1)
    return Image.fromarray(rgb.clip(0, 255).astype(np.uint8))


def _teacher(kind: str, tiny_models, **knobs):
    return create_teacher(kind, model=tiny_models[kind], **{**TINY, **knobs})


def test_every_diffusion_teacher_is_registered_beside_the_builtin_one():
    for kind in KINDS:
        assert kind in TEACHERS
        teacher_class = TEACHERS.get(kind)
        assert issubclass(teacher_class, DiffusionTeacher)
        assert teacher_class.available() == (True, "")
        assert teacher_class().concepts() is None  # free text; constructing loads nothing
    assert TEACHERS.get("instruct-pix2pix").phrasing == "instruction"
    assert TEACHERS.get("sd-img2img").phrasing == "description"


@pytest.mark.parametrize("kind", KINDS)
def test_teacher_edits_through_the_real_pipeline_per_image_seeds_and_input_size(kind, tiny_models):
    teacher = _teacher(kind, tiny_models)
    small, wide = _photo(48, 40, 1), _photo(64, 36, 2)  # two working sizes in one batch
    edits = teacher.edit([small, wide, small], "make it winter", [7, 8, 9])
    assert [edit.size for edit in edits] == [small.size, wide.size, small.size]
    assert all(edit.mode == "RGB" for edit in edits)
    [again] = teacher.edit([small], "make it winter", [7])
    # The same seed gives the same edit whatever batch it is in (up to float batch effects).
    assert np.abs(np.asarray(again, float) - np.asarray(edits[0], float)).max() <= 2
    other_seed = np.abs(np.asarray(edits[2], float) - np.asarray(edits[0], float)).mean()
    assert other_seed > 1.0  # another seed, another edit
    changed = np.abs(np.asarray(edits[0], float) - np.asarray(small, float)).mean()
    assert changed > 1.0  # the (random) model really produced something
    parameters = teacher.parameters()
    json.dumps(parameters)
    assert parameters["teacher"] == kind and parameters["model"] == tiny_models[kind]
    assert parameters["num_inference_steps"] == 2


def test_each_teacher_has_its_own_knobs_and_defaults(tiny_models):
    ip2p = TEACHERS.get("instruct-pix2pix")()
    assert ip2p.settings["image_guidance_scale"] == 1.5 and "strength" not in ip2p.settings
    turbo = TEACHERS.get("sd-turbo")()
    assert turbo.settings["guidance_scale"] == 0.0 and turbo.settings["num_inference_steps"] <= 4
    assert TEACHERS.get("sd-img2img")().settings["strength"] == 0.6
    with pytest.raises(E2GANError, match="has no setting strength"):
        create_teacher("instruct-pix2pix", strength=0.5)
    with pytest.raises(E2GANError, match="strength must be in"):
        create_teacher("sd-img2img", strength=1.5)
    with pytest.raises(E2GANError, match="steps x strength"):
        create_teacher("sd-turbo", num_inference_steps=1, strength=0.5)
    with pytest.raises(E2GANError, match="1-4 steps"):
        create_teacher("sd-turbo", num_inference_steps=30)
    with pytest.raises(E2GANError, match="guidance_scale must be a float"):
        create_teacher("sd-img2img", guidance_scale="lots")


def test_strength_and_guidance_reach_the_pipeline(tiny_models):
    photo = _photo()
    steps_run = {}
    for strength in (0.25, 0.5, 1.0):
        teacher = _teacher("sd-img2img", tiny_models, strength=strength, num_inference_steps=4)
        polls = []
        teacher.stop_requested = lambda: polls.append(1) and False  # count denoising steps
        teacher.edit([photo], "snow", [3])
        steps_run[strength] = len(polls)
    assert steps_run == {0.25: 1, 0.5: 2, 1.0: 4}  # img2img runs int(steps x strength) steps
    guided = _teacher("instruct-pix2pix", tiny_models, guidance_scale=12.0)
    unguided = _teacher("instruct-pix2pix", tiny_models, guidance_scale=1.0)
    a, b = (np.asarray(t.edit([photo], "snow", [3])[0], float) for t in (guided, unguided))
    assert np.abs(a - b).mean() > 0.5


def test_missing_model_is_a_clear_error_naming_what_to_fetch_without_waiting(tiny_models,
                                                                            monkeypatch):
    import socket

    # Without waiting: nothing is looked up or connected to (offline, that is a timeout).
    reached = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: reached.append(args) or 1 / 0)
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: reached.append(address) or 1 / 0)
    teacher = create_teacher("instruct-pix2pix", model="someone/not-a-cached-model")
    with pytest.raises(E2GANError) as error:
        teacher.prepare()
    message = str(error.value)
    assert "someone/not-a-cached-model" in message and "download someone/not-a-cached-model" in message
    assert reached == []
    present, reason = weights_present("someone/not-a-cached-model")
    assert not present and "not on this machine" in reason
    assert TEACHERS.get("sd-img2img").weights_present(tiny_models["sd-img2img"])[0]
    with pytest.raises(E2GANError, match="model folder not found"):
        resolve_model_folder("./no/such/folder")


def test_download_is_refused_offline_even_when_allowed(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(E2GANError, match="HF_HUB_OFFLINE"):
        resolve_model_folder("someone/not-a-cached-model", allow_download=True)


def test_incomplete_folder_and_wrong_model_type_are_refused(tiny_models, tmp_path):
    with pytest.raises(E2GANError, match="not an InstructPix2Pix model"):
        create_teacher("instruct-pix2pix", model=tiny_models["sd-img2img"], **TINY).prepare()
    with pytest.raises(E2GANError, match="is an InstructPix2Pix model"):
        create_teacher("sd-img2img", model=tiny_models["instruct-pix2pix"], **TINY).prepare()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text(json.dumps({"unet": ["diffusers", "UNet2DConditionModel"]}))
    (broken / "unet").mkdir()
    with pytest.raises(E2GANError, match="no weights for its 'unet'"):
        create_teacher("sd-img2img", model=str(broken)).prepare()


@pytest.mark.parametrize("kind", ["instruct-pix2pix", "sd-turbo"])
def test_cooperative_stop_inside_a_batch(kind, tiny_models):
    teacher = _teacher(kind, tiny_models, num_inference_steps=4)
    polls = []

    def stop_after_first_step() -> bool:
        polls.append(1)
        return len(polls) >= 1

    teacher.stop_requested = stop_after_first_step
    with pytest.raises(GenerationStopped, match="step 0"):
        teacher.edit([_photo()], "make it winter", [0])
    assert len(polls) == 1  # stopped at the first step's end, not after the whole batch
    teacher.stop_requested = lambda: False
    assert teacher.edit([_photo()], "make it winter", [0])[0].size == _photo().size


def test_candidate_variants_share_one_loaded_pipeline(tiny_models):
    teacher = _teacher("instruct-pix2pix", tiny_models)
    variants = teacher.variants(3)
    settings = [(v.settings["guidance_scale"], v.settings["image_guidance_scale"]) for v in variants]
    assert len(set(settings)) == 3 and settings[0] == (7.5, 1.5)
    assert len({id(v._pipeline()) for v in variants}) == 1
    assert teacher.settings["guidance_scale"] == 7.5  # the original is untouched


def test_builtin_concepts_have_an_instruction_and_a_description():
    instructions = [concept.phrasing("instruction") for concept in BUILTIN_CONCEPTS.values()]
    assert len(set(instructions)) == len(instructions)
    winter = BUILTIN_CONCEPTS["winter"]
    assert winter.phrasings() == {"description": "a snowy winter scene", "instruction": "make it winter"}
    from e2gan.teachers import resolve_builtin_concept
    assert resolve_builtin_concept("Make it winter!").name == "winter"
    with pytest.raises(E2GANError, match="unknown phrasing"):
        winter.phrasing("haiku")


@pytest.mark.parametrize("typed, description, instruction", [
    ("old person", "old person", "make it look like old person"),
    ("a snowy forest", "a snowy forest", "turn it into a snowy forest"),
    ("Turn him into an old man", "an old man", "Turn him into an old man"),
    ("make it look like a  Van Gogh painting.", "a Van Gogh painting",
     "make it look like a Van Gogh painting"),
    ("make it winter", "winter", "make it winter"),
    ("add fireworks to the sky", "the sky with fireworks", "add fireworks to the sky"),
    ("add fireworks", "a photo with fireworks", "add fireworks"),
    ("remove the people", "a photo without the people", "remove the people"),
    ("solarize it", "solarize it", "solarize it"),  # an instruction with nothing simple to read off
    ("make-up artist", "make-up artist", "make it look like make-up artist"),
])
def test_free_text_is_phrased_both_ways(typed, description, instruction):
    from e2gan.teachers import Concept, free_text_phrasings
    from e2gan.teachers.phrasing import reads_as_instruction

    assert free_text_phrasings(typed) == {"description": description, "instruction": instruction}
    assert reads_as_instruction(typed) == (instruction == " ".join(typed.split()).rstrip("."))
    # A concept without an instruction of its own gets the same one.
    if not reads_as_instruction(typed):
        assert Concept("c", typed, "").phrasing("instruction") == instruction


def test_teacher_clip_text_encoder_gives_the_teachers_own_embeddings_and_survives_a_checkpoint(
        tiny_models, tmp_path):
    import torch
    from transformers import CLIPTextModel

    from e2gan.checkpoint import load_generator, save_generator
    from e2gan.models import build_model
    from e2gan.text import TEXT_ENCODERS, build_text_encoder

    folder = tiny_models["instruct-pix2pix"]
    encoder = build_text_encoder({"name": "teacher-clip", "model_name": folder})
    assert "teacher-clip" in TEXT_ENCODERS
    prompts = ["make it winter", "make it night", "make it winter"]
    embeddings = encoder(prompts)
    assert embeddings.shape == (3, 16, 32)  # every token state, as the UNet cross-attends to
    assert torch.equal(embeddings[0], embeddings[2]) and not torch.equal(embeddings[0], embeddings[1])
    # The very embeddings the teacher's pipeline conditions on.
    reference = CLIPTextModel.from_pretrained(f"{folder}/text_encoder")
    tokens = encoder.tokenizer(["make it night"], padding="max_length", max_length=16,
                               return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(embeddings[1], reference(tokens)[0][0])
    assert not any(p.requires_grad for p in encoder.parameters())  # frozen, like the teacher

    generator = build_model("e2gan", {"num_filters": 8, "text_dim": 32, "num_heads": 2, "mlp_mult": 2})
    save_generator(tmp_path / "base", generator, encoder)
    loaded = load_generator(tmp_path / "base")
    assert loaded.text_encoder.spec() == encoder.spec()
    torch.testing.assert_close(loaded.text_encoder(prompts), embeddings)
    with pytest.raises(E2GANError, match="32-d, but 768-d"):
        build_text_encoder({"name": "teacher-clip", "model_name": folder, "embedding_dim": 768})
    with pytest.raises(E2GANError, match="not on this machine"):
        build_text_encoder({"name": "teacher-clip", "model_name": "someone/not-cached"})

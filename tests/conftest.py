"""Shared fixtures: tiny datasets and a tiny base model, built in code (offline, seconds)."""

from __future__ import annotations

import os

import pytest
import torch

# Never let any library reach the Hugging Face Hub from a test.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Caches (FID reference features, ...) go to a throwaway folder, never the user's ~/.cache.
os.environ["E2GAN_CACHE"] = __import__("tempfile").mkdtemp(prefix="e2gan-test-cache-")

# Tiny models gain nothing from intra-op threads, and OpenMP threads spinning against another
# process (a benchmark, a second test run) can slow a step down tenfold.
torch.set_num_threads(1)

TINY_GENERATOR = {"num_filters": 8, "text_dim": 16, "num_heads": 2, "mlp_mult": 2}


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def tiny_pairs(tmp_path_factory):
    """Three concepts x 16 built-in pairs at 32 px: {concept name: PairDataset}."""
    from e2gan.data.generate import generate_pairs
    from e2gan.data.sources import builtin_photos
    from e2gan.teachers import create_teacher, resolve_builtin_concept

    root = tmp_path_factory.mktemp("pairs")
    teacher = create_teacher("builtin")
    datasets = {}
    for index, name in enumerate(["pencil_sketch", "night", "winter"]):
        concept = resolve_builtin_concept(name)
        result = generate_pairs(teacher, builtin_photos(16, size=32, seed=index), concept.prompt,
                                root / name, concept=name, seed=index, test_fraction=0.25)
        datasets[name] = result.dataset
    return datasets


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, tiny_pairs):
    """A tiny base generator trained a few steps on two concepts (winter held out)."""
    from e2gan.training.recipes import TrainingSettings, train_base

    out = tmp_path_factory.mktemp("base")
    settings = TrainingSettings(size=32, steps=4, batch_size=4, checkpoint_every=0, device="cpu")
    train_base([tiny_pairs["pencil_sketch"], tiny_pairs["night"]], out, settings,
               generator_config=TINY_GENERATOR)
    return out


@pytest.fixture
def winter_concept(tmp_path, tiny_base, tiny_pairs):
    """A workspace whose current concept 'winter' has pairs and a briefly fine-tuned adapter."""
    from app.workspace import ConceptSpec, Workspace
    from e2gan.training.recipes import TrainingSettings, finetune

    workspace = Workspace.create(tmp_path)
    folder = workspace.concept("winter")
    folder.save_spec(ConceptSpec(name="winter", prompt="a snowy winter scene"))
    folder.pairs_dir.symlink_to(tiny_pairs["winter"].root)
    workspace.set_current("winter")
    finetune(tiny_base, tiny_pairs["winter"], folder.adapter_file,
             TrainingSettings(size=32, steps=2, batch_size=4, checkpoint_every=0, device="cpu"))
    return workspace, folder


@pytest.fixture(scope="session")
def tiny_diffusion_models(tmp_path_factory):
    """{kind: folder} of tiny random diffusers pipelines saved with save_pretrained (see
    tests/tiny_diffusion.py): instruct-pix2pix, sd-img2img, sd-turbo and controlnet."""
    from tiny_diffusion import save_tiny_pipeline

    root = tmp_path_factory.mktemp("tiny-diffusion")
    return {kind: str(save_tiny_pipeline(kind, root / kind))
            for kind in ("instruct-pix2pix", "sd-img2img", "sd-turbo", "controlnet")}


@pytest.fixture
def tiny_instruct_pix2pix(tiny_diffusion_models, monkeypatch):
    """The studio's instruct-pix2pix teacher made a tiny one (weights on this machine, 32 px, two
    steps); its prompts are recorded in the returned list."""
    from app import concepts
    from e2gan.teachers import TEACHERS

    teacher_class = TEACHERS.get("instruct-pix2pix")
    monkeypatch.setattr(teacher_class, "default_model", tiny_diffusion_models["instruct-pix2pix"])
    monkeypatch.setattr(teacher_class, "defaults",
                        {**teacher_class.defaults, "resolution": 32, "num_inference_steps": 2})
    monkeypatch.setattr(concepts, "_teacher_cache", {})
    told, edit = [], teacher_class.edit

    def recording_edit(self, images, prompt, seeds):
        told.append(prompt)
        return edit(self, images, prompt, seeds)

    monkeypatch.setattr(teacher_class, "edit", recording_edit)
    return told


@pytest.fixture
def stand_in_runtime(tmp_path, monkeypatch):
    """onnxruntime-web's files as stand-ins, through E2GAN_WEB_RUNTIME: the web export copies
    them without reading them, so tests need no download."""
    from e2gan.export import web_runtime

    folder = tmp_path / "runtime"
    folder.mkdir()
    for name in web_runtime.FILES:
        (folder / name).write_bytes(f"stand-in {name}".encode())
    monkeypatch.setenv(web_runtime.ENV_FOLDER, str(folder))
    return folder

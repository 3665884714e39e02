"""`e2gan concepts` (which teachers and weights are here) and `e2gan train-base --text-encoder`
(a base conditioned on the diffusion teacher's own CLIP text encoder), on tiny pipelines."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest
import torch

from e2gan.checkpoint import load_generator
from e2gan.data.generate import generate_pairs
from e2gan.data.sources import builtin_photos
from e2gan.teachers import create_teacher

from test_cli import TRAINING, assert_user_error, run

SNAPSHOT = "0" * 40


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, and a function that puts a folder in it as repo `repo_id`
    the way `hf download` lays it out (refs/main -> snapshots/<commit>/)."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))

    def add(repo_id: str, folder) -> None:
        repo = cache / f"models--{repo_id.replace('/', '--')}"
        shutil.copytree(folder, repo / "snapshots" / SNAPSHOT)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(SNAPSHOT)

    return add


def test_concepts_says_which_teachers_run_here_and_whose_weights_are_present(
        capsys, hub_cache, tiny_diffusion_models):
    hub_cache("stabilityai/sd-turbo", tiny_diffusion_models["sd-turbo"])
    hub_cache("stable-diffusion-v1-5/stable-diffusion-v1-5", tiny_diffusion_models["sd-img2img"])
    code, out, _ = run(capsys, "concepts", "--json")
    assert code == 0
    teachers = json.loads(out[-1])["teachers"]
    assert set(teachers) >= {"builtin", "instruct-pix2pix", "sd-img2img", "sd-turbo", "controlnet"}

    builtin = teachers["builtin"]
    assert builtin["available"] and "winter" in builtin["concepts"] and "model" not in builtin
    turbo = teachers["sd-turbo"]
    assert turbo == {"available": True, "reason": "", "model": "stabilityai/sd-turbo",
                     "weights_present": True, "weights": turbo["weights"], "weights_reason": "",
                     "concepts": None}
    assert turbo["weights"].endswith(SNAPSHOT)
    pix2pix = teachers["instruct-pix2pix"]
    assert pix2pix["available"] and not pix2pix["weights_present"] and pix2pix["weights"] is None
    assert "download timbrooks/instruct-pix2pix" in pix2pix["weights_reason"]
    assert "\n" not in pix2pix["weights_reason"]
    # ControlNet needs the SD model and a ControlNet: the SD half alone is not enough.
    assert teachers["sd-img2img"]["weights_present"]
    assert not teachers["controlnet"]["weights_present"]
    assert "lllyasviel/sd-controlnet-canny" in teachers["controlnet"]["weights_reason"]

    hub_cache("lllyasviel/sd-controlnet-canny", f"{tiny_diffusion_models['controlnet']}/controlnet")
    code, out, _ = run(capsys, "concepts")
    assert code == 0
    text = "\n".join(out)
    assert "controlnet: any prompt\n  weights stable-diffusion-v1-5/stable-diffusion-v1-5: present" in text
    assert "sd-turbo: any prompt\n  weights stabilityai/sd-turbo: present" in text
    assert "weights timbrooks/instruct-pix2pix: missing (model timbrooks/instruct-pix2pix" in text
    assert out[0].startswith("builtin: ") and "winter" in out[0]


def test_concepts_names_why_a_teacher_cannot_run(capsys, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "diffusers" else real_find_spec(name, *rest))
    code, out, _ = run(capsys, "concepts", "--json")
    assert code == 0
    pix2pix = json.loads(out[-1])["teachers"]["instruct-pix2pix"]
    assert not pix2pix["available"] and "diffusers not installed" in pix2pix["reason"]
    assert not pix2pix["weights_present"] and pix2pix["weights_reason"] == pix2pix["reason"]
    code, out, _ = run(capsys, "concepts")
    assert any(line.startswith("instruct-pix2pix: cannot run here (diffusers not installed")
               for line in out)


@pytest.fixture(scope="module")
def pix2pix_pairs(tiny_diffusion_models, tmp_path_factory):
    """Six 32 px pairs made by the tiny InstructPix2Pix pipeline (its folder is in the dataset)."""
    teacher = create_teacher("instruct-pix2pix", model=tiny_diffusion_models["instruct-pix2pix"],
                             resolution=32, num_inference_steps=2)
    root = tmp_path_factory.mktemp("ip2p") / "pairs"
    return generate_pairs(teacher, builtin_photos(6, size=32), "a snowy winter scene", root,
                          concept="winter", test_fraction=0.34).dataset


def test_train_base_on_the_teachers_own_text_embeddings(capsys, tmp_path, pix2pix_pairs,
                                                        tiny_diffusion_models):
    folder = tiny_diffusion_models["instruct-pix2pix"]
    assert pix2pix_pairs.info.teacher_models() == [folder]
    # No --text-model: the encoder comes from the pipeline that made the pairs.
    code, out, _ = run(capsys, "train-base", "--dataset", str(pix2pix_pairs.root), "--out",
                       str(tmp_path / "base"), "--text-encoder", "teacher-clip", *TRAINING,
                       "--json", "--quiet")
    assert code == 0, out
    summary = json.loads(out[-1])
    assert summary["steps"] == 2

    loaded = load_generator(tmp_path / "base")
    spec = loaded.text_encoder.spec()
    assert spec["name"] == "teacher-clip" and spec["model_name"] == folder
    assert spec["embedding_dim"] == 32 and loaded.info["config"]["text_dim"] == 32
    embeddings = loaded.text_encoder(["a snowy winter scene"])
    assert embeddings.shape == (1, 16, 32)  # every token state of the tiny CLIP (16 positions)
    with torch.no_grad():
        image = loaded.generator(torch.zeros(1, 3, 32, 32), embeddings)
    assert image.shape == (1, 3, 32, 32) and torch.isfinite(image).all()

    # An explicit --text-model wins; a learned base still takes no model.
    code, out, _ = run(capsys, "train-base", "--dataset", str(pix2pix_pairs.root), "--out",
                       str(tmp_path / "explicit"), "--text-encoder", "teacher-clip",
                       "--text-model", tiny_diffusion_models["sd-turbo"], *TRAINING, "--json", "--quiet")
    assert code == 0
    assert load_generator(tmp_path / "explicit").text_encoder.spec()["model_name"] == \
        tiny_diffusion_models["sd-turbo"]


def test_train_base_text_encoder_mistakes_are_one_line_errors_and_write_nothing(capsys, tmp_path,
                                                                              pix2pix_pairs):
    cases = [(["--text-encoder", "learned", "--text-model", "ViT-B-32"], "takes no model"),
             (["--text-encoder", "teacher-clip", "--text-model", "someone/not-cached"],
              "not on this machine"),
             (["--text-encoder", "clip", "--text-model", "ViT-B-32:/no/such/weights.pt"],
              "no pretrained weights")]
    for extra, fragment in cases:
        out_dir = tmp_path / "base"
        code, out, err = run(capsys, "train-base", "--dataset", str(pix2pix_pairs.root), "--out",
                             str(out_dir), *extra, *TRAINING, "--json")
        assert_user_error(code, out, err, fragment)
        assert json.loads(out[-1])["error"]
        assert not out_dir.exists()


def test_dataset_info_names_the_models_its_teachers_loaded():
    from e2gan.data.dataset import DatasetInfo

    several = DatasetInfo("winter", "a snowy winter scene", teacher="instruct-pix2pix+sd-turbo",
                          teacher_params={"teachers": [{"model": "org/a"}, {"model": "org/b"},
                                                       {"model": "org/a"}], "candidates": 3})
    assert several.teacher_models() == ["org/a", "org/b"]
    assert DatasetInfo("winter", "w", teacher_params={"teacher": "builtin"}).teacher_models() == []

"""`evaluate_pairs` with FID/KID and CLIP metrics, and `e2gan evaluate --fid --json`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from e2gan.cli import main
from e2gan.data.torch_data import resize_and_center_crop
from e2gan.errors import E2GANError
from e2gan.evaluation.heldout import evaluate_pairs
from e2gan.evaluation.metrics import inception


@pytest.fixture
def fid_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("E2GAN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "fid"


def _teacher_edits(dataset, size):
    return [resize_and_center_crop(dataset.load_pair(r)[1], size) for r in dataset.split("test")]


def test_fid_and_kid_rank_a_perfect_maker_above_no_edit(tiny_pairs, fid_cache):
    dataset = tiny_pairs["winter"]
    edits = _teacher_edits(dataset, 32)
    assert len(edits) >= 3

    def teacher_replay(images):
        return [edits.pop(0) for _ in images]

    perfect = evaluate_pairs(teacher_replay, dataset, size=32, fid=True)
    unchanged = evaluate_pairs(lambda images: list(images), dataset, size=32, fid=True)
    # the paired metrics are still there
    assert perfect["mae"] == 0 and unchanged["mae"] > 0
    assert {"fid", "kid", "kid_std", "fid_images"} <= set(perfect)
    assert perfect["fid_images"] == perfect["pairs"]
    assert abs(perfect["fid"]) < 1e-2
    assert unchanged["fid"] > 10 * max(abs(perfect["fid"]), 1.0)
    assert unchanged["kid"] > perfect["kid"]
    # the teacher side was cached once and reused for the second model
    assert len(list(fid_cache.glob("*.npz"))) == 1


def test_fid_off_by_default_and_needs_two_pairs(tiny_pairs, monkeypatch):
    dataset = tiny_pairs["night"]

    def no_network(*args, **kwargs):
        raise AssertionError("Inception must not run without fid=True")

    monkeypatch.setattr(inception, "load_inception", no_network)
    metrics = evaluate_pairs(lambda images: list(images), dataset, size=32)
    assert "fid" not in metrics and metrics["pairs"] == len(dataset.split("test"))
    with pytest.raises(E2GANError, match="at least 2"):
        evaluate_pairs(lambda images: list(images), dataset, size=32, limit=1, fid=True)


def test_a_maker_that_drops_images_is_an_error(tiny_pairs):
    with pytest.raises(E2GANError, match="returned 1 images"):
        evaluate_pairs(lambda images: images[:1], tiny_pairs["night"], size=32)


def test_clip_metrics_say_why_they_were_skipped(tiny_pairs, monkeypatch):
    import e2gan.teachers.clip_scores

    monkeypatch.setattr(e2gan.teachers.clip_scores, "clip_weights_available",
                        lambda *a, **k: (False, "no ViT-B-32 weights in the local HF cache"))
    metrics = evaluate_pairs(lambda images: list(images), tiny_pairs["night"], size=32, clip=True)
    assert isinstance(metrics["clip_skipped"], str) and metrics["clip_skipped"]
    assert "clip_direction_similarity" not in metrics


def test_cli_evaluate_fid_json(tiny_base, tiny_pairs, fid_cache, capsys):
    code = main(["evaluate", "--model", str(tiny_base), "--dataset", str(tiny_pairs["night"].root),
                 "--size", "32", "--device", "cpu", "--fid", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = captured.out.splitlines()
    result = json.loads(out[-1])
    assert result["pairs"] == len(tiny_pairs["night"].split("test"))
    for key in ("psnr", "ssim", "mae", "fid", "kid", "kid_std"):
        assert isinstance(result[key], float) and np.isfinite(result[key])
    assert result["fid"] > 0


def test_cli_evaluate_limit_and_no_cache(tiny_base, tiny_pairs, fid_cache, capsys):
    code = main(["evaluate", "--model", str(tiny_base), "--dataset", str(tiny_pairs["night"].root),
                 "--size", "32", "--device", "cpu", "--fid", "--no-cache", "--limit", "2",
                 "--json"])
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert code == 0 and result["pairs"] == 2 and result["fid_images"] == 2
    assert not fid_cache.exists() or not list(fid_cache.glob("*.npz"))


def test_clip_metrics_run_through_the_callable_when_weights_exist(tiny_pairs, monkeypatch):
    """The real CLIP code path with a tiny random CLIP standing in for the local weights."""
    import e2gan.teachers.clip_scores
    from e2gan.teachers.clip_scores import ClipScorer

    monkeypatch.setattr(e2gan.teachers.clip_scores, "clip_weights_available", lambda *a, **k: (True, "x"))
    monkeypatch.setattr(ClipScorer, "from_pretrained",
                        classmethod(lambda cls, *a, **k: ClipScorer.tiny_random()))
    dataset = tiny_pairs["winter"]
    edits = _teacher_edits(dataset, 32)
    perfect = evaluate_pairs(lambda images: [edits.pop(0) for _ in images], dataset, size=32,
                             clip=True)
    unchanged = evaluate_pairs(lambda images: list(images), dataset, size=32, clip=True)
    assert "clip_skipped" not in perfect
    assert perfect["cmmd"] == pytest.approx(0.0, abs=1e-6) and unchanged["cmmd"] > 0
    # the teacher's own edit moves exactly as the teacher does
    assert perfect["clip_direction_similarity"] == pytest.approx(
        perfect["clip_direction_similarity_teacher"], abs=1e-4)
    assert unchanged["clip_direction_similarity"] == 0  # no change, no direction
    assert unchanged["clip_image_similarity"] == pytest.approx(1.0, abs=1e-4)

"""The next base's GPU job, run at a toy scale on the CPU: the photo pool packed small enough to
travel to a lent GPU host (judging photos never written), and the job that makes the pairs and
runs the three stages from the committed candidate, within its minutes, bringing back fp16
weights that load (tools/pack_photo_pool.py, tools/base_on_gpu.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from e2gan.checkpoint import load_generator
from e2gan.paths import REPOSITORY


def _photo(path: Path, width: int, height: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (height // 4, width // 4, 3), dtype=np.uint8)).resize(
        (width, height), Image.Resampling.BILINEAR).save(path)


def _run(*arguments: str) -> dict:
    done = subprocess.run([sys.executable, *arguments], cwd=REPOSITORY, capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_packed_pool_lists_the_same_photos_and_the_gpu_job_trains_every_stage(tmp_path):
    data, wallpapers = tmp_path / "data", tmp_path / "usr-share"
    (data / "scenes").mkdir(parents=True)
    (data / "faces").mkdir()
    for seed, name in enumerate(["train_1", "val_2", "test_3"]):
        _photo(data / "scenes" / f"{name}.jpg", 96, 64, seed)
    for seed, name in enumerate(["face_0001", "face_0002", "face_1300"]):
        _photo(data / "faces" / f"{name}.jpg", 64, 64, seed)
    dune = wallpapers / "backgrounds" / "mate" / "nature" / "Dune.jpg"
    dune.parent.mkdir(parents=True)
    _photo(dune, 1200, 800, 9)

    pool = tmp_path / "pool"
    packed = _run("tools/pack_photo_pool.py", str(pool), "--data", str(data),
                  "--wallpaper-root", str(wallpapers))
    # train_1, val_2, Dune and the 5 packaged photos that may train a base; the training faces
    assert packed["photos"] == {"scenes": 8, "faces": 2}
    written = sorted(path.name for path in pool.rglob("*") if path.is_file())
    assert written == ["Dune.jpg", "face_0001.webp", "face_0002.webp", "pool.json",
                       "train_1.webp", "val_2.webp"]  # no judging photo travels
    with Image.open(pool / "wallpapers" / "backgrounds" / "mate" / "nature" / "Dune.jpg") as shrunk:
        assert shrunk.size == (768, 512)  # short side 512: 256 px crops are never upscaled
    assert packed["bytes"] == sum(path.stat().st_size for path in pool.rglob("*")
                                  if path.is_file() and path.name != "pool.json")

    out = tmp_path / "out"
    report = _run("tools/base_on_gpu.py", "--pool", str(pool), "--out", str(out),
                  "--work", str(tmp_path / "work"), "--device", "cpu", "--concepts", "2",
                  "--pairs", "4", "--batches", "2,2,2", "--probe-steps", "1", "--minutes", "1")
    run = json.loads((out / "run.json").read_text())
    # Each concept's pairs are seeded as in train_base.sh (the n-th concept: n x 1000).
    for number, concept in enumerate(json.loads((REPOSITORY / "checkpoints" / "candidates" / "base-v3-64"
                                                 / "selection.json").read_text())["chosen"][:2], 1):
        first = json.loads((tmp_path / "work" / "data" / concept / "metadata.jsonl").read_text()
                           .splitlines()[0])
        assert first["seed"] == number * 1000, (concept, first)
    assert [stage["size"] for stage in run["stages"]] == [64, 128, 256]
    assert all(stage["steps"] >= 1 and stage["pairs"] >= 3 for stage in run["stages"])
    assert report["images"] == run["images"] == sum(s["steps"] * s["batch"] for s in run["stages"])
    # What comes back fits the GPU host's limit of 8 files.
    assert sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file()) == [
        "base-128/config.json", "base-128/model.safetensors", "base-256/config.json",
        "base-256/discriminator.json", "base-256/discriminator.safetensors",
        "base-256/model.safetensors", "logs.tar.gz", "run.json"]
    with safe_open(str(out / "base-256" / "model.safetensors"), framework="pt") as weights:
        assert all(weights.get_tensor(key).dtype == torch.float16 for key in weights.keys())
    base = load_generator(out / "base-256")
    assert base.generator.config.downsample_padding == "reflect"
    assert base.generator.config.noise_channels == 0
    assert base.info["training"]["settings"]["size"] == 256


def test_a_probe_s_rate_leaves_out_the_start_up_of_its_first_steps(tmp_path):
    spec = importlib.util.spec_from_file_location("base_on_gpu", REPOSITORY / "tools" / "base_on_gpu.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    # Batch 16: 10 steps in 2.0 s (1.5 s of it warm-up), then 10 more in 0.5 s.
    log = tmp_path / "probe.log"
    log.write_text("[train-base] step 10/20 d_real=0.1 g_l1=0.2 lr 2.00e-04 80.0 img/s eta 1s\n"
                   "[train-base] state saved at step 20\n"
                   "[train-base] step 20/20 d_real=0.1 g_l1=0.2 lr 2.00e-04 128.0 img/s eta 0s\n")
    assert job.steady_rate(log, 16, {"images_per_second": 128.0}) == pytest.approx(320.0)
    log.write_text("[train-base] step 1/1 d_real=0.1 lr 2.00e-04 3.0 img/s eta 0s\n")
    assert job.steady_rate(log, 16, {"images_per_second": 3.0}) == 3.0  # one point: the average

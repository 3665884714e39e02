"""The pieces under the hardening of issue 14: limits from the environment, images opened from
their header, NaN-aware export checks, writes that name their file, resumes that keep a size."""

from __future__ import annotations

import errno
import math
import os

import numpy as np
import pytest
from PIL import Image

from e2gan import limits
from e2gan.data.dataset import PairDataset
from e2gan.data.generate import generate_pairs
from e2gan.data.sources import builtin_photos
from e2gan.errors import E2GANError
from e2gan.export.formats import max_abs_difference
from e2gan.files import atomic_write_bytes, open_image, read_image
from e2gan.teachers import BuiltinTeacher
from test_hardening_cli import header_only_png


def test_a_limit_reads_its_variable_at_each_check(monkeypatch):
    monkeypatch.delenv("E2GAN_MAX_LORA_RANK", raising=False)
    assert limits.MAX_LORA_RANK.value() == 128
    monkeypatch.setenv("E2GAN_MAX_LORA_RANK", "1_000")
    assert limits.MAX_LORA_RANK.value() == 1000
    for bad in ("many", "0", "-3"):
        monkeypatch.setenv("E2GAN_MAX_LORA_RANK", bad)
        with pytest.raises(E2GANError, match="E2GAN_MAX_LORA_RANK must be a positive whole number"):
            limits.MAX_LORA_RANK.value()


def test_a_bomb_is_refused_from_its_header_and_a_raised_limit_beats_pils(tmp_path, monkeypatch):
    bomb = header_only_png(tmp_path / "bomb.png", 30000, 30000)
    # PIL's own default guard (a launched studio turns it off for the whole process)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89_478_485)  # restored after
    with pytest.raises(E2GANError, match=r"bomb.png has 900 MP; the limit is 40 MP"):
        read_image(bomb, str(bomb))
    # Over twice PIL's own limit; a user who raises ours gets it (and decodes at their risk).
    monkeypatch.setenv("E2GAN_MAX_IMAGE_PIXELS", str(10**9))
    with open_image(bomb, str(bomb)) as opened:
        assert opened.size == (30000, 30000)  # the header only: nothing was decoded


def test_export_check_fails_on_nan_rather_than_dropping_it():
    inputs = [np.zeros((1, 3, 8, 8), np.float32)]
    same = max_abs_difference(lambda x: x, lambda x: x, inputs)
    assert same == 0.0
    nan_out = max_abs_difference(lambda x: x, lambda x: np.full_like(x, np.nan), inputs)
    assert math.isnan(nan_out)  # max(0.0, nan) would be 0.0, a pass
    assert math.isnan(max_abs_difference(lambda x: x + np.inf, lambda x: x, inputs))


def test_a_failed_write_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "fsync", full)
    target = tmp_path / "adapter.safetensors"
    with pytest.raises(OSError, match=f"cannot write {target}: No space left on device") as caught:
        atomic_write_bytes(target, b"weights")
    assert caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_a_refused_resume_leaves_the_dataset_as_it_was(tmp_path):
    photos = builtin_photos(count=2, size=32)
    generate_pairs(BuiltinTeacher(), photos, "a cartoon", tmp_path / "ds")
    before = (tmp_path / "ds" / "dataset.json").read_bytes()
    with pytest.raises(E2GANError, match="made at 32 px, not 48"):
        generate_pairs(BuiltinTeacher(), builtin_photos(count=4, size=48), "a cartoon",
                       tmp_path / "ds")
    assert (tmp_path / "ds" / "dataset.json").read_bytes() == before
    assert PairDataset.open(tmp_path / "ds").info.complete
    assert builtin_photos(count=4, size=48).take(2).crop_size == 48


def test_training_steps_and_size_have_limits_that_name_their_variable(monkeypatch):
    from e2gan.training.settings import TrainingSettings

    with pytest.raises(E2GANError, match=r"2,000,000 training steps; the limit is 1,000,000 .*E2GAN_MAX_TRAINING_STEPS"):
        TrainingSettings(steps=2_000_000)
    with pytest.raises(E2GANError, match=r"training size 100000 px; the limit is .*E2GAN_MAX_TRAINING_SIZE"):
        TrainingSettings(size=100_000)
    monkeypatch.setenv("E2GAN_MAX_TRAINING_STEPS", "3_000_000")
    assert TrainingSettings(steps=2_000_000).steps == 2_000_000


def test_a_zip_with_too_many_entries_is_refused_from_its_directory(tmp_path, monkeypatch):
    import zipfile

    from e2gan.data.sources import open_source

    monkeypatch.setenv("E2GAN_MAX_ARCHIVE_FILES", "10")
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for index in range(11):  # empty entries: only the directory is ever read
            handle.writestr(f"{index}.txt", b"")
    with pytest.raises(E2GANError, match=r"many.zip holds 11 files; the limit is 10 .*E2GAN_MAX_ARCHIVE_FILES"):
        open_source(str(archive), count=1, size=64)


def test_only_adapter_files_are_adapters(tmp_path):
    from e2gan.checkpoint import is_adapter_file
    from e2gan.files import atomic_write_bytes
    from safetensors.torch import save as save_safetensors_bytes
    import torch

    atomic_write_bytes(tmp_path / "model.safetensors", save_safetensors_bytes({"w": torch.zeros(2)}))
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 20)
    assert not is_adapter_file(tmp_path / "model.safetensors")
    assert not is_adapter_file(tmp_path / "junk.safetensors")
    assert not is_adapter_file(tmp_path / "missing.safetensors")

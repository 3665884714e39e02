"""Bad inputs from the hardening probe (issue 14): each is one `error:` line and exit status 2.

Every case is a setup that writes what it needs (a bomb PNG, a damaged adapter, a base whose
weights overflow) and returns the command line; the check is the same for all of them: exit
status 2, exactly one `error:` line holding the expected fragments, no traceback.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load, load_file, save, save_file

from e2gan.models import lora
from e2gan.checkpoint import adapter_from_model, load_generator, save_adapter, save_generator
from e2gan.cli import main
from e2gan.data.generate import generate_pairs
from e2gan.data.sources import builtin_photos
from e2gan.models import build_model
from e2gan.teachers import BuiltinTeacher
from e2gan.text import LearnedConceptEncoder

TINY = {"num_filters": 8, "text_dim": 16, "num_heads": 2}
TRAINING = ["--size", "32", "--steps", "1", "--batch-size", "2", "--device", "cpu", "--quiet"]


def header_only_png(path: Path, width: int, height: int) -> Path:
    """A valid PNG header declaring width x height, with almost no pixel data: a few hundred
    bytes that would decode to gigabytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny base with a discriminator, an adapter for it, pairs for "pop art" and "a cartoon"
    (a concept the base knows) and a 40x40 photo."""
    root = tmp_path_factory.mktemp("hardening")
    torch.manual_seed(0)
    encoder = LearnedConceptEncoder(embedding_dim=16, concepts=["a cartoon", "a pencil sketch"])
    save_generator(root / "base", build_model("e2gan", TINY).eval(), encoder, {"kind": "test"},
                   build_model("patchgan", {"num_filters": 8, "text_dim": 16}))
    loaded = load_generator(root / "base")
    lora.add_adapter(loaded.generator, "pop_art", {"upsample.0.conv": 2, "downsample.1.conv": 2})
    loaded.text_encoder.add_concept("pop art")
    save_adapter(root / "pop_art.safetensors",
                 adapter_from_model(loaded.generator, "pop_art", "pop art", loaded.info,
                                    loaded.text_encoder))
    generate_pairs(BuiltinTeacher(), builtin_photos(count=12, size=32), "pop art", root / "pairs")
    generate_pairs(BuiltinTeacher(), builtin_photos(count=4, size=32), "a cartoon",
                   root / "cartoon_pairs", test_fraction=0.5)
    builtin_photos(count=1, size=40).load("builtin-00000").save(root / "photo.png")
    return root


# --- what the cases are made of ------------------------------------------------------------------

def edit(ws: Path, tmp: Path, *extra: str, model: Path | None = None,
         image: Path | None = None, out: Path | None = None) -> list[str]:
    prompt = [] if "--adapter" in extra or "--prompt" in extra else ["--prompt", "a cartoon"]
    return ["edit", "--model", str(model or ws / "base"), "--image", str(image or ws / "photo.png"),
            "--out", str(out or tmp / "out.png"), "--device", "cpu", *prompt, *extra]


def finetune(ws: Path, tmp: Path, *extra: str, base: Path | None = None) -> list[str]:
    return ["finetune", "--base", str(base or ws / "base"), "--dataset", str(ws / "pairs"),
            "--out", str(tmp / "adapter.safetensors"), *TRAINING, *extra]


def pairs(tmp: Path, *extra: str) -> list[str]:
    return ["pairs", "--concept", "cartoon", "--count", "4", "--size", "32", "--quiet",
            "--out", str(tmp / "pairs"), *extra]


def copied_base(ws: Path, tmp: Path) -> Path:
    return Path(shutil.copytree(ws / "base", tmp / "base"))


def changed_config(ws: Path, tmp: Path, name: str, change) -> Path:
    base = copied_base(ws, tmp)
    path = base / name
    path.write_text(change(json.loads(path.read_text())))
    return base


def changed_weights(ws: Path, tmp: Path, change) -> Path:
    base = copied_base(ws, tmp)
    tensors = load_file(base / "model.safetensors")
    change(tensors)
    save_file(tensors, base / "model.safetensors")
    return base


def first_conv_set_to(value: float):
    def change(tensors: dict[str, torch.Tensor]) -> None:
        name = next(k for k, v in tensors.items() if k.endswith("weight") and v.dim() == 4)
        tensors[name] = torch.full_like(tensors[name], value)
    return change


def nan_base(ws: Path, tmp: Path) -> Path:
    def change(tensors: dict[str, torch.Tensor]) -> None:
        tensors["downsample.0.conv.weight"] = tensors["downsample.0.conv.weight"].clone()
        tensors["downsample.0.conv.weight"].view(-1)[3] = float("nan")
    return changed_weights(ws, tmp, change)


def overflowing_base(ws: Path, tmp: Path) -> Path:
    """Finite weights so large the output overflows to NaN (the file check cannot see it)."""
    return changed_weights(ws, tmp, first_conv_set_to(3e38))


def changed_adapter(ws: Path, tmp: Path, metadata_change=None, tensor_change=None) -> Path:
    data = (ws / "pop_art.safetensors").read_bytes()
    header_size = int.from_bytes(data[:8], "little")
    metadata = json.loads(json.loads(data[8:8 + header_size])["__metadata__"]["e2gan"])
    tensors = load(data)
    if metadata_change:
        metadata_change(metadata)
    if tensor_change:
        tensor_change(tensors)
    path = tmp / "changed.safetensors"
    path.write_bytes(save(tensors, metadata={"e2gan": json.dumps(metadata)}))
    return path


def nan_in_lora_b(tensors: dict[str, torch.Tensor]) -> None:
    name = next(k for k in tensors if k.endswith("lora_B"))
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")


def zip_of(tmp: Path, member: str, path: Path) -> Path:
    archive = tmp / "photos.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(path, member)
    return archive


def disk_fills_after(monkeypatch, writes: int) -> None:
    """Every fsync after the first `writes` fails as on a full disk (files.py and the metadata
    appends both fsync)."""
    calls = {"count": 0}
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        calls["count"] += 1
        if calls["count"] > writes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)


def resumed_at_another_size(ws: Path, tmp: Path, monkeypatch) -> list[str]:
    assert main(pairs(tmp, "--count", "2")) == 0  # made at 32 px
    return pairs(tmp, "--size", "64")


def member_limit(ws: Path, tmp: Path, monkeypatch) -> list[str]:
    monkeypatch.setenv("E2GAN_MAX_ARCHIVE_MEMBER_BYTES", "1000")  # photo.png is ~4 KB
    return pairs(tmp, "--source", str(zip_of(tmp, "big/photo.png", ws / "photo.png")))


def pixel_limit_lowered(ws: Path, tmp: Path, monkeypatch) -> list[str]:
    monkeypatch.setenv("E2GAN_MAX_IMAGE_PIXELS", "1000")  # photo.png is 40x40 = 1600 pixels
    return edit(ws, tmp)


def upscaled_past_the_limit(ws: Path, tmp: Path, monkeypatch) -> list[str]:
    # A lowered limit stands for the default: --size 100000 would ask for 30 GB before the fix.
    monkeypatch.setenv("E2GAN_MAX_IMAGE_PIXELS", "10000")  # photo.png (1600 pixels) is under it
    return edit(ws, tmp, "--size", "200")


def folder_with_bomb(ws: Path, tmp: Path) -> Path:
    folder = tmp / "photos"
    folder.mkdir()
    shutil.copy(ws / "photo.png", folder / "a.png")
    header_only_png(folder / "b.png", 30000, 30000)
    return folder


def full_disk_in_pairs(ws: Path, tmp: Path, monkeypatch) -> list[str]:
    disk_fills_after(monkeypatch, 6)
    return pairs(tmp)


def full_disk_in_finetune(ws: Path, tmp: Path, monkeypatch) -> list[str]:
    disk_fills_after(monkeypatch, 0)
    return finetune(ws, tmp)


def no_monkeypatch(setup):
    return lambda ws, tmp, monkeypatch: setup(ws, tmp)


CASES = [
    # (1) image bombs: refused from the header, before decoding
    ("bomb-edit", lambda ws, tmp: edit(ws, tmp, image=header_only_png(tmp / "bomb.png", 30000, 30000)),
     ["bomb.png", "900 MP", "40 MP", "E2GAN_MAX_IMAGE_PIXELS"]),
    ("bomb-under-pil-limit", lambda ws, tmp: edit(ws, tmp, image=header_only_png(
        tmp / "big.png", 10000, 10000)), ["big.png is 10000x10000 (100 MP)", "E2GAN_MAX_IMAGE_PIXELS"]),
    ("bomb-in-folder", lambda ws, tmp: pairs(tmp, "--source", str(folder_with_bomb(ws, tmp))),
     ["b.png", "900 MP", "E2GAN_MAX_IMAGE_PIXELS"]),
    ("bomb-in-zip", lambda ws, tmp: pairs(tmp, "--source", str(zip_of(
        tmp, "x/bomb.png", header_only_png(tmp / "bomb.png", 30000, 30000)))),
     ["photos.zip:x/bomb.png", "900 MP", "E2GAN_MAX_IMAGE_PIXELS"]),
    # (2) non-finite numbers: adapters, base weights, scales, outputs
    ("scale-nan", lambda ws, tmp: edit(ws, tmp, "--adapter", str(ws / "pop_art.safetensors"),
                                       "--scale", "nan"), ["adapter scale", "finite", "nan"]),
    ("scale-inf", lambda ws, tmp: edit(ws, tmp, "--adapter", str(ws / "pop_art.safetensors"),
                                       "--scale", "inf"), ["adapter scale", "inf"]),
    ("scale-1e30", lambda ws, tmp: edit(ws, tmp, "--adapter", str(ws / "pop_art.safetensors"),
                                        "--scale", "1e30"), ["adapter scale", "-10 to 10"]),
    ("export-scale-nan", lambda ws, tmp: [
        "export", "--model", str(ws / "base"), "--adapter", str(ws / "pop_art.safetensors"),
        "--scale", "nan", "--out", str(tmp / "export"), "--format", "torchscript"],
     ["adapter scale"]),
    ("adapter-nan", lambda ws, tmp: edit(ws, tmp, "--adapter", str(changed_adapter(
        ws, tmp, tensor_change=nan_in_lora_b))), ["changed.safetensors", "non-finite", "lora_B"]),
    ("base-nan", lambda ws, tmp: edit(ws, tmp, model=nan_base(ws, tmp)),
     ["model.safetensors", "non-finite", "downsample.0.conv.weight"]),
    ("evaluate-nan-output", lambda ws, tmp: [
        "evaluate", "--model", str(overflowing_base(ws, tmp)), "--dataset",
        str(ws / "cartoon_pairs"), "--size", "32", "--device", "cpu"], ["non-finite"]),
    ("export-nan-output", lambda ws, tmp: [
        "export", "--model", str(overflowing_base(ws, tmp)), "--prompt", "a cartoon", "--out",
        str(tmp / "export"), "--format", "torchscript", "--size", "32", "--repeats", "1"],
     ["TorchScript", "non-finite"]),
    # (3) tracebacks that were: text, ranks, model files, sizes, output paths, a full disk
    ("prompt-not-utf8", lambda ws, tmp: [
        "import", "folders", "--source-dir", str(ws / "pairs" / "source"), "--edited-dir",
        str(ws / "pairs" / "edited"), "--prompt", "a \udcff cartoon", "--out", str(tmp / "ds")],
     ["--prompt", "not UTF-8"]),
    ("concept-not-utf8", lambda ws, tmp: pairs(tmp, "--concept", "\udcfe"),
     ["--concept", "not UTF-8"]),
    ("rank-negative", lambda ws, tmp: finetune(ws, tmp, "--rank", "-2"),
     ["rank", "at least 1", "-2"]),
    ("rank-zero", lambda ws, tmp: finetune(ws, tmp, "--rank", "0"), ["rank", "at least 1"]),
    ("rank-absurd", lambda ws, tmp: finetune(ws, tmp, "--rank", "100000"),
     ["100000", "E2GAN_MAX_LORA_RANK"]),
    ("adapter-absurd-rank", lambda ws, tmp: edit(ws, tmp, "--adapter", str(changed_adapter(
        ws, tmp, lambda meta: meta["ranks"].update({k: 100000 for k in meta["ranks"]})))),
     ["changed.safetensors", "E2GAN_MAX_LORA_RANK"]),
    ("config-a-list", lambda ws, tmp: edit(ws, tmp, model=changed_config(
        ws, tmp, "config.json", lambda config: "[1, 2]")), ["config.json", "list"]),
    ("config-without-arch", lambda ws, tmp: edit(ws, tmp, model=changed_config(
        ws, tmp, "config.json", lambda config: json.dumps({**config, "arch": None}))),
     ["config.json", "arch"]),
    ("discriminator-json-broken", lambda ws, tmp: finetune(ws, tmp, base=changed_config(
        ws, tmp, "discriminator.json", lambda config: "{\"arch\": ")),
     ["discriminator.json"]),
    ("discriminator-json-mismatch", lambda ws, tmp: finetune(ws, tmp, base=changed_config(
        ws, tmp, "discriminator.json",
        lambda config: json.dumps({**config, "config": {**config["config"], "num_filters": 4}}))),
     ["discriminator.safetensors", "does not match"]),
    ("discriminator-json-a-list", lambda ws, tmp: finetune(ws, tmp, base=changed_config(
        ws, tmp, "discriminator.json", lambda config: "[]")), ["discriminator.json", "list"]),
    ("adapter-without-base-sha256", lambda ws, tmp: edit(ws, tmp, "--adapter", str(changed_adapter(
        ws, tmp, lambda meta: meta.pop("base_sha256")))), ["changed.safetensors", "base_sha256"]),
    ("edit-size-7", lambda ws, tmp: edit(ws, tmp, "--size", "7"), ["size", "at least 16", "7"]),
    ("edit-size-negative", lambda ws, tmp: edit(ws, tmp, "--size", "-5"), ["size", "-5"]),
    ("out-a-folder", lambda ws, tmp: edit(ws, tmp, out=tmp), ["is a folder"]),
    ("out-under-a-file", lambda ws, tmp: edit(ws, tmp, out=ws / "photo.png" / "out.png"),
     ["cannot write", "is a file"]),
    ("out-unwritable", lambda ws, tmp: edit(ws, tmp, out=Path("/proc/e2gan-out.png")),
     ["cannot write /proc/e2gan-out.png"]),
    # (4) smaller
    ("evaluate-limit-0", lambda ws, tmp: [
        "evaluate", "--model", str(ws / "base"), "--adapter", str(ws / "pop_art.safetensors"),
        "--dataset", str(ws / "pairs"), "--size", "32", "--limit", "0", "--device", "cpu"],
     ["limit must be at least 1"]),
]

CASES_WITH_ENVIRONMENT = [
    ("pixel-limit-from-environment", pixel_limit_lowered,
     ["photo.png is 40x40", "0.001 MP", "E2GAN_MAX_IMAGE_PIXELS"]),
    ("edit-size-upscales-past-the-limit", upscaled_past_the_limit,
     ["at size 200 is 200x200", "E2GAN_MAX_IMAGE_PIXELS"]),
    ("zip-member-over-byte-limit", member_limit,
     ["photos.zip:big/photo.png", "E2GAN_MAX_ARCHIVE_MEMBER_BYTES"]),
    ("pairs-resumed-at-another-size", resumed_at_another_size, ["made at 32 px", "--size 32"]),
    ("full-disk-in-pairs", full_disk_in_pairs, ["No space left on device"]),
    ("full-disk-in-finetune", full_disk_in_finetune, ["No space left on device"]),
]


@pytest.mark.parametrize(
    "setup, fragments",
    [pytest.param(no_monkeypatch(setup), fragments, id=name) for name, setup, fragments in CASES]
    + [pytest.param(setup, fragments, id=name) for name, setup, fragments in CASES_WITH_ENVIRONMENT])
def test_bad_input_is_one_line_and_exit_status_2(capsys, monkeypatch, workspace, tmp_path,
                                                 setup, fragments):
    argv = setup(workspace, tmp_path, monkeypatch)
    capsys.readouterr()  # what a setup's own run printed
    code = main(argv)
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert code == 2, captured.err
    assert len(errors) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])

"""The `e2gan` command line, run in-process: JSON output, exit codes, one-line user errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from e2gan.models import lora
from e2gan.checkpoint import adapter_from_model, load_generator, save_adapter, save_generator
from e2gan.cli import main
from e2gan.data.dataset import PairDataset
from e2gan.data.generate import generate_pairs
from e2gan.errors import E2GANError
from e2gan.data.sources import builtin_photos
from e2gan.data.torch_data import resize_and_center_crop
from e2gan.evaluation.heldout import evaluate_pairs, paired_metrics
from e2gan.models import build_model
from e2gan.teachers import BuiltinTeacher
from e2gan.text import LearnedConceptEncoder

TINY = {"num_filters": 8, "text_dim": 16, "num_heads": 2}
TRAINING = ["--size", "32", "--steps", "2", "--batch-size", "2", "--device", "cpu"]



def run(capsys, *argv: str) -> tuple[int, list[str], list[str]]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def last_json(lines: list[str]) -> dict:
    assert lines, "no output"
    return json.loads(lines[-1])


def assert_user_error(code: int, out: list[str], err: list[str], *fragments: str) -> str:
    """Exit status 2, exactly one 'error:' line on stderr, no traceback, the JSON error object."""
    assert code == 2
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert not any("Traceback" in line for line in err + out)
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def make_base(folder, seed: int) -> None:
    torch.manual_seed(seed)
    encoder = LearnedConceptEncoder(embedding_dim=16, concepts=["a cartoon", "a pencil sketch"])
    save_generator(folder, build_model("e2gan", TINY).eval(), encoder, {"kind": "test"},
                   build_model("patchgan", {"num_filters": 8, "text_dim": 16}))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Two tiny bases, an adapter for the first, a 12-pair 32 px dataset and a photo."""
    root = tmp_path_factory.mktemp("cli")
    make_base(root / "base", seed=0)
    make_base(root / "other_base", seed=1)
    loaded = load_generator(root / "base")
    lora.add_adapter(loaded.generator, "pop_art", {"upsample.0.conv": 2, "downsample.1.conv": 2})
    with torch.no_grad():
        for layer in lora.lora_layers(loaded.generator).values():
            layer.lora_B["pop_art"].weight.normal_(0, 0.2)
    loaded.text_encoder.add_concept("pop art")
    save_adapter(root / "pop_art.safetensors",
                 adapter_from_model(loaded.generator, "pop_art", "pop art", loaded.info,
                                    loaded.text_encoder))
    generate_pairs(BuiltinTeacher(), builtin_photos(count=12, size=32), "pop art", root / "pairs")
    builtin_photos(count=1, size=40).load("builtin-00000").save(root / "photo.png")
    return root


# --- data -----------------------------------------------------------------------------------


def test_pairs_json(capsys, tmp_path):
    code, out, err = run(capsys, "pairs", "--concept", "cartoon", "--count", "5", "--size", "32",
                         "--out", str(tmp_path / "ds"), "--json")
    assert code == 0
    result = last_json(out)
    assert result["pairs"] == 5 and result["made"] == 5 and result["complete"] is True
    assert result["dataset"] == str(tmp_path / "ds")
    dataset = PairDataset.open(tmp_path / "ds")
    assert len(dataset) == 5 and dataset.info.prompt == "a cartoon" and dataset.info.concept == "cartoon"
    assert any("pairs" in line for line in err)  # progress goes to stderr, not stdout
    # A rerun resumes: nothing new is made.
    code, out, _ = run(capsys, "pairs", "--concept", "cartoon", "--count", "5", "--size", "32",
                       "--out", str(tmp_path / "ds"), "--json", "--quiet")
    assert code == 0 and last_json(out)["made"] == 0 and last_json(out)["skipped_existing"] == 5


def test_generate_pairs_resumes_with_identical_pairs(tmp_path):
    teacher, photos = BuiltinTeacher(), builtin_photos(count=5, size=32)
    straight = generate_pairs(teacher, photos, "a cartoon", tmp_path / "straight", batch_size=2)
    calls = iter(range(100))
    stopped = generate_pairs(teacher, photos, "a cartoon", tmp_path / "resumed", batch_size=2,
                             should_stop=lambda: next(calls) >= 1)
    assert stopped.stopped_early and stopped.made == 2 and not stopped.dataset.info.complete
    resumed = generate_pairs(teacher, photos, "a cartoon", tmp_path / "resumed", batch_size=2)
    assert (resumed.made, resumed.skipped) == (3, 2) and resumed.dataset.info.complete
    assert resumed.dataset.ids == straight.dataset.ids
    for a, b in zip(straight.dataset.records, resumed.dataset.records):
        assert a.split == b.split and a.seed == b.seed
        for which in ("source", "edited"):
            assert (straight.dataset.path_of(a, which).read_bytes()
                    == resumed.dataset.path_of(b, which).read_bytes())
    with pytest.raises(E2GANError, match="concept"):  # one folder, one concept
        generate_pairs(teacher, photos, "a pencil sketch", tmp_path / "resumed")


def test_unknown_concept_is_a_one_line_error(capsys, tmp_path):
    code, out, err = run(capsys, "pairs", "--concept", "flying unicorns", "--count", "2",
                         "--out", str(tmp_path / "ds"), "--json")
    assert_user_error(code, out, err, "flying unicorns")
    assert "error" in last_json(out)
    assert not (tmp_path / "ds").exists()


def make_image(path, mode: str) -> None:
    rng = np.random.default_rng(len(mode))
    if mode == "L":
        Image.fromarray(rng.integers(0, 256, (24, 32), dtype=np.uint8), mode="L").save(path)
    elif mode == "RGBA":
        Image.fromarray(rng.integers(0, 256, (24, 32, 4), dtype=np.uint8), mode="RGBA").save(path)
    elif mode == "I;16":
        Image.fromarray((np.arange(24 * 32).reshape(24, 32) * 60).astype(np.uint16)).save(path)
    else:
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(path)


def test_import_folders_of_odd_images(capsys, tmp_path):
    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir()
    after.mkdir()
    for stem, mode in (("gray", "L"), ("alpha", "RGBA"), ("deep", "I;16")):
        make_image(before / f"{stem}.png", mode)
        make_image(after / f"{stem}.png", "RGB")
    code, out, _ = run(capsys, "import", "folders", "--source-dir", str(before), "--edited-dir",
                       str(after), "--prompt", "make it pop", "--out", str(tmp_path / "ds"), "--json")
    assert code == 0
    result = last_json(out)
    assert result["pairs"] == 3 and result["train"] + result["test"] == 3
    dataset = PairDataset.open(tmp_path / "ds")
    deep = np.asarray(dataset.load_pair(dataset.get("deep"))[0])
    assert deep.shape == (24, 32, 3) and deep.min() == 0 and deep.max() == 255


def test_import_a_corrupt_image_names_it_and_leaves_nothing(capsys, tmp_path):
    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir()
    after.mkdir()
    for stem in ("a", "b"):
        make_image(before / f"{stem}.png", "RGB")
        make_image(after / f"{stem}.png", "RGB")
    (after / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    out_root = tmp_path / "ds"
    code, out, err = run(capsys, "import", "folders", "--source-dir", str(before), "--edited-dir",
                         str(after), "--prompt", "make it pop", "--out", str(out_root))
    assert_user_error(code, out, err, "b.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["after", "before"]  # no ds, no ds.partial


def test_import_folders_needs_its_arguments(capsys, tmp_path):
    code, out, err = run(capsys, "import", "folders", "--out", str(tmp_path / "ds"))
    assert_user_error(code, out, err, "--source-dir")


def test_select(capsys, workspace, tmp_path):
    dataset = str(workspace / "pairs")
    code, out, err = run(capsys, "select", "--dataset", dataset, "--k", "50", "--json")
    assert_user_error(code, out, err, "50")
    code, out, _ = run(capsys, "select", "--dataset", dataset, "--k", "4", "--out",
                       str(tmp_path / "subset"), "--json")
    assert code == 0
    result = last_json(out)
    assert result["k"] == 4 and len(set(result["ids"])) == 4
    subset, original = PairDataset.open(tmp_path / "subset"), PairDataset.open(dataset)
    assert sorted(r.id for r in subset.split("train")) == sorted(result["ids"])
    # The held-out pairs come along, so the subset's fine-tune can be judged.
    assert [r.id for r in subset.split("test")] == [r.id for r in original.split("test")]


# --- training and judging -------------------------------------------------------------------


@pytest.mark.parametrize("command", ["finetune", "evaluate"])
def test_missing_dataset_is_a_clear_error(capsys, workspace, tmp_path, command):
    missing = str(tmp_path / "no_such_dataset")
    if command == "finetune":
        argv = ["finetune", "--base", str(workspace / "base"), "--dataset", missing,
                "--out", str(tmp_path / "a.safetensors"), *TRAINING]
    else:
        argv = ["evaluate", "--model", str(workspace / "base"), "--dataset", missing]
    code, out, err = run(capsys, *argv)
    assert_user_error(code, out, err, "no_such_dataset")
    assert not (tmp_path / "a.safetensors").exists()


def test_finetune_and_evaluate(capsys, workspace, tmp_path):
    adapter = tmp_path / "pop.safetensors"
    code, out, _ = run(capsys, "finetune", "--base", str(workspace / "base"), "--dataset",
                       str(workspace / "pairs"), "--out", str(adapter), "--rank", "2", *TRAINING,
                       "--json", "--quiet")
    assert code == 0
    result = last_json(out)
    assert result["out"] == str(adapter) and result["steps"] == 2 and adapter.is_file()
    code, out, _ = run(capsys, "evaluate", "--model", str(workspace / "base"), "--adapter",
                       str(adapter), "--dataset", str(workspace / "pairs"), "--size", "32",
                       "--device", "cpu", "--json")
    assert code == 0
    metrics = last_json(out)
    assert metrics["pairs"] == 2 and metrics["split"] == "test" and metrics["size"] == 32
    assert 0 < metrics["mae"] < 255 and -1 <= metrics["ssim"] <= 1 and metrics["psnr"] > 0


def test_a_lora_finetune_writes_the_average_of_its_adapter_unless_told_not_to(capsys, workspace,
                                                                             tmp_path):
    from e2gan.checkpoint import read_adapter

    adapters = {}
    for label, extra in (("default", []), ("off", ["--ema-decay", "0"])):
        adapters[label] = tmp_path / f"{label}.safetensors"
        code, _, _ = run(capsys, "finetune", "--base", str(workspace / "base"), "--dataset",
                         str(workspace / "pairs"), "--out", str(adapters[label]), "--rank", "2",
                         *TRAINING, *extra, "--json", "--quiet")
        assert code == 0
    default, off = (read_adapter(adapters[k]) for k in ("default", "off"))
    assert default.metadata["training"]["settings"]["ema_decay"] == 0.99
    assert off.metadata["training"]["settings"]["ema_decay"] == 0.0
    # Same seed and steps: only the averaging differs, so the written weights must too.
    assert any(not torch.equal(default.tensors[k], off.tensors[k]) for k in default.tensors)


def test_paired_metrics():
    rng = np.random.default_rng(0)
    target = rng.integers(20, 200, (16, 16, 3), dtype=np.uint8)
    shifted = target + np.uint8(10)
    exact = paired_metrics([target], [target])
    assert exact["mae"] == 0 and exact["ssim"] == pytest.approx(1.0)
    off = paired_metrics([shifted, target], [target, target])
    assert off["mae"] == pytest.approx(5.0)
    assert paired_metrics([shifted], [target])["psnr"] == pytest.approx(20 * np.log10(255 / 10))


def test_evaluate_pairs_judges_any_image_maker(workspace, tmp_path):
    dataset = PairDataset.open(workspace / "pairs")
    seen = []

    def shrink(images):
        seen.extend(images)
        return [image.resize((8, 8)) for image in images]  # another size: resized back

    metrics = evaluate_pairs(shrink, dataset, split="test", size=24)
    assert metrics["pairs"] == len(dataset.split("test")) == len(seen) == 2
    assert all(image.size == (24, 24) for image in seen)
    assert 0 < metrics["mae"] < 255 and metrics["seconds_per_image"] >= 0
    targets = [np.asarray(resize_and_center_crop(dataset.load_pair(r)[1], 24))
               for r in dataset.split("test")]
    perfect = iter([Image.fromarray(t) for t in targets])
    assert evaluate_pairs(lambda images: [next(perfect) for _ in images], dataset,
                          size=24)["mae"] == 0
    no_test = generate_pairs(BuiltinTeacher(), builtin_photos(count=2, size=32), "a cartoon",
                             tmp_path / "no_test", test_fraction=0.0).dataset
    with pytest.raises(E2GANError, match="no 'test' pairs"):
        evaluate_pairs(shrink, no_test, split="test", size=24)


def test_profile_json(capsys):
    code, out, _ = run(capsys, "profile", "--arch", "e2gan", "--size", "64", "--repeats", "1",
                       "--json")
    assert code == 0
    result = last_json(out)
    assert result["parameters"] == pytest.approx(7.1e6, rel=0.05)
    assert result["macs_g"] > 0 and result["macs_paper_convention_g"] > result["macs_g"]
    assert result["size"] == 64 and result["latency_median_s"] > 0


# --- editing --------------------------------------------------------------------------------


def test_edit_with_an_adapter(capsys, workspace, tmp_path):
    out_path = tmp_path / "edited.png"
    code, out, _ = run(capsys, "edit", "--model", str(workspace / "base"), "--adapter",
                       str(workspace / "pop_art.safetensors"), "--image",
                       str(workspace / "photo.png"), "--out", str(out_path), "--device", "cpu",
                       "--json")
    assert code == 0
    result = last_json(out)
    assert result["prompt"] == "pop art"  # the adapter's own prompt when none is given
    with Image.open(out_path) as edited:
        assert edited.size == (40, 40) and edited.mode == "RGB"


def test_edit_with_a_wrong_base_adapter(capsys, workspace, tmp_path):
    code, out, err = run(capsys, "edit", "--model", str(workspace / "other_base"), "--adapter",
                         str(workspace / "pop_art.safetensors"), "--image",
                         str(workspace / "photo.png"), "--out", str(tmp_path / "x.png"),
                         "--device", "cpu")
    assert_user_error(code, out, err, "base")
    assert not (tmp_path / "x.png").exists()


def test_edit_errors(capsys, workspace, tmp_path):
    base = str(workspace / "base")
    code, out, err = run(capsys, "edit", "--model", base, "--image", str(workspace / "photo.png"),
                         "--out", str(tmp_path / "x.png"), "--device", "cpu")
    assert_user_error(code, out, err, "prompt")
    code, out, err = run(capsys, "edit", "--model", base, "--prompt", "a cartoon", "--image",
                         str(tmp_path / "missing.png"), "--out", str(tmp_path / "x.png"),
                         "--device", "cpu")
    assert_user_error(code, out, err, "missing.png")
    code, out, err = run(capsys, "edit", "--model", base, "--prompt", "a watercolor painting",
                         "--image", str(workspace / "photo.png"), "--out",
                         str(tmp_path / "x.png"), "--device", "cpu")
    assert_user_error(code, out, err, "a_watercolor_painting")
    code, out, err = run(capsys, "edit", "--model", str(tmp_path), "--prompt", "a cartoon",
                         "--image", str(workspace / "photo.png"), "--out", str(tmp_path / "x.png"))
    assert_user_error(code, out, err, "not a model folder")
    assert not (tmp_path / "x.png").exists()


def edit_pixels(capsys, workspace, out_path, *model_args: str) -> np.ndarray:
    code, out, err = run(capsys, "edit", *model_args, "--image", str(workspace / "photo.png"),
                         "--out", str(out_path), "--device", "cpu", "--json")
    assert code == 0, err
    with Image.open(out_path) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def test_adapter_info_blend_and_merge(capsys, workspace, tmp_path):
    adapter, base = str(workspace / "pop_art.safetensors"), str(workspace / "base")
    code, out, _ = run(capsys, "adapter", "info", adapter, "--json")
    info = last_json(out)
    assert code == 0 and info["concept"] == "pop_art" and info["prompt"] == "pop art"
    assert info["ranks"] == {"upsample.0.conv": 2, "downsample.1.conv": 2} and info["bytes"] > 0
    expected = edit_pixels(capsys, workspace, tmp_path / "a.png", "--model", base, "--adapter", adapter)

    # Half of an adapter plus half of itself is the adapter again.
    blend = str(tmp_path / "blend.safetensors")
    code, out, _ = run(capsys, "adapter", "blend", adapter, "--other", adapter, "--weight", "0.5",
                       "--prompt", "pop art", "--out", blend, "--json")
    assert code == 0 and last_json(out)["ranks"]["upsample.0.conv"] == 4
    blended = edit_pixels(capsys, workspace, tmp_path / "b.png", "--model", base, "--adapter", blend)
    assert np.abs(blended - expected).max() <= 1

    # A merged model folder edits like base + adapter, with no adapter file.
    merged = str(tmp_path / "merged")
    code, out, _ = run(capsys, "adapter", "merge", adapter, "--base", base, "--out", merged, "--json")
    assert code == 0
    from_merged = edit_pixels(capsys, workspace, tmp_path / "m.png", "--model", merged,
                              "--prompt", "pop art")
    assert np.abs(from_merged - expected).max() <= 1

    code, out, err = run(capsys, "adapter", "merge", adapter, "--base",
                         str(workspace / "other_base"), "--out", str(tmp_path / "bad"))
    assert_user_error(code, out, err, "base")
    assert not (tmp_path / "bad").exists()
    code, out, err = run(capsys, "adapter", "blend", adapter, "--out", str(tmp_path / "x"))
    assert_user_error(code, out, err, "--other")

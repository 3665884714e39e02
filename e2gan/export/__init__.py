"""`e2gan export`: one concept as a self-contained on-device model.

A base model plus (optionally) a concept adapter becomes a file whose only input is the image:
the adapter is merged into the weights, the concept's text tokens are a constant inside the graph
and the noise is the generator's fixed pattern (`e2gan.export.editor`). Formats:

- ONNX, a static `size` x `size` batch-1 variant and a dynamic one (batch, height and width free;
  height and width multiples of the model's `size_multiple`);
- TorchScript (`torch.jit.trace`), runs at any size;
- ExecuTorch (`.pte`, XNNPACK delegate, static `size` x `size` batch 1): PyTorch's mobile
  runtime, checked and timed here through ExecuTorch's own runtime (optional extra `mobile`);
  float32 or int8.

Every file is checked against the model as `EditPipeline` runs it (LoRA layers active, not merged)
on random inputs, the largest absolute difference is reported (outputs lie in [-1, 1]; anything
over `TOLERANCE` is an error, and nothing is written), and it is timed at batch 1 beside torch
eager. ONNX files can also be made in fp16 or int8, ExecuTorch files in int8
(`e2gan.export.precision`): those are checked
on the concept's held-out photos against the fp32 file and the teacher, and refused when they
lose too much. A json sidecar `<file>.json` records concept, prompt, input size and range, the base's and
adapter's sha256, the check and the timings. All files are written atomically.
"""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path
from typing import Any, Callable

import torch

from e2gan.checkpoint import read_adapter
from e2gan.data.dataset import PairDataset
from e2gan.data.torch_data import resize_and_center_crop
from e2gan.errors import E2GANError
from e2gan.evaluation.profiling import count_macs, matmul_rate
from e2gan.export.editor import ConceptEditor, deployable_editor
from e2gan.export.formats import (INPUT_NAME, ONNX_OPSET, OUTPUT_NAME, executorch_bytes,
                                  executorch_runner, executorch_threads, executorch_version,
                                  max_abs_difference, median_latency, onnx_bytes, onnx_runner,
                                  onnx_session, random_inputs, torch_runner, torchscript_bytes,
                                  torchscript_runner)
from e2gan.export.precision import PRECISIONS, fp16_bytes, int8_bytes, quality_check, xnnpack_int8
from e2gan.files import atomic_write_bytes, atomic_write_json, sha256_file
from e2gan.hub.adapters import resolve_adapter
from e2gan.inference.pipeline import EditPipeline
from e2gan.precision import peak_macs
from e2gan.text import concept_key

FORMATS = ("onnx", "torchscript", "executorch")
DEFAULT_FORMATS = ("onnx", "torchscript")  # ExecuTorch needs the optional `mobile` extra
TOLERANCE = 1e-3
CHECK_PHOTOS = 16  # held-out pairs a lower-precision file is judged on
CALIBRATION_PHOTOS = 32  # training sources INT8's activation ranges come from


def _io_description(size: int | None, multiple: int) -> dict[str, Any]:
    shape = [1, 3, size, size] if size else ["batch", 3, "height", "width"]
    return {
        "input": {"name": INPUT_NAME, "shape": shape, "dtype": "float32", "layout": "NCHW, RGB",
                  "range": [-1.0, 1.0], "from_uint8": "x / 127.5 - 1",
                  "size_multiple": multiple},
        "output": {"name": OUTPUT_NAME, "shape": shape, "dtype": "float32", "layout": "NCHW, RGB",
                   "range": [-1.0, 1.0], "to_uint8": "round((clip(y, -1, 1) + 1) * 127.5)"},
    }


def _check(reference: ConceptEditor, candidate: Callable, shapes: list[tuple], what: str) -> float:
    difference = max_abs_difference(torch_runner(reference), candidate, random_inputs(shapes))
    if math.isnan(difference):
        raise E2GANError(f"{what} or the torch model gives non-finite values (NaN or inf): the "
                         "weights or adapter are broken; not written")
    if not difference <= TOLERANCE:
        raise E2GANError(f"{what} differs from torch by {difference:.2e} (> {TOLERANCE}); not written")
    return difference


def _photos(dataset: str | os.PathLike, split: str, size: int, count: int, teacher: bool
            ) -> tuple[list, list]:
    """Up to `count` of a paired dataset's sources (and teacher edits) as model inputs."""
    import numpy as np

    pairs = PairDataset.open(dataset)
    records = pairs.split(split)[:count]

    def array(image):
        pixels = np.asarray(resize_and_center_crop(image, size), np.float32)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None] / 127.5 - 1.0)

    loaded = [pairs.load_pair(record) for record in records]
    return [array(source) for source, _ in loaded], [array(edit) for _, edit in loaded] if teacher else []


def export_concept(model: str | os.PathLike, out_dir: str | os.PathLike,
                   adapter: str | os.PathLike | None = None, prompt: str | None = None,
                   scale: float = 1.0, size: int = 256, formats: tuple[str, ...] = DEFAULT_FORMATS,
                   dynamic: bool = True, repeats: int = 10, threads: int | None = None,
                   floor: bool = False, precision: str = "fp32",
                   dataset: str | os.PathLike | None = None) -> dict:
    """Export one concept of `model` (+ `adapter`) into `out_dir`; returns what was written.

    `precision` fp16 applies to the ONNX files, int8 to the ONNX and ExecuTorch files
    (TorchScript, and an ExecuTorch file asked for fp16, stay float32): INT8 is
    calibrated on `dataset`'s training sources and both are checked on its held-out pairs
    (`e2gan.export.precision`); `dataset` defaults to the one the adapter was trained on."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise E2GANError(f"unknown export format(s) {unknown or formats}; known: {list(FORMATS)}")
    if precision not in PRECISIONS:
        raise E2GANError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if precision == "fp16" and "onnx" not in formats:
        raise E2GANError("--precision fp16 applies to ONNX files: add --format onnx")
    if precision == "int8" and not {"onnx", "executorch"} & set(formats):
        raise E2GANError("--precision int8 applies to ONNX and ExecuTorch files: add --format onnx "
                         "or --format executorch")
    if "executorch" in formats:
        executorch_version()  # missing: say so before any work
    pipeline = EditPipeline.from_pretrained(model, device="cpu", precision="fp32")  # the reference
    if adapter:
        adapter = resolve_adapter(adapter)  # a Hub id: the file in the Hugging Face cache
        pipeline.load_adapter(adapter, scale=scale)
    check_photos: tuple[list, list] = ([], [])
    calibration: list = []
    if precision != "fp32":
        if dataset is None and adapter:
            dataset = read_adapter(adapter).metadata.get("training", {}).get("dataset")
        if dataset is None or not (Path(dataset) / "dataset.json").is_file():
            raise E2GANError(f"--precision {precision} checks the file on the concept's held-out "
                             f"photos: give --dataset (the pairs the adapter was trained on"
                             f"{'; ' + str(dataset) + ' is not a dataset' if dataset else ''})")
    reference, editor, prompt = deployable_editor(pipeline, prompt)
    multiple = editor.size_multiple
    if size < multiple or size % multiple:
        raise E2GANError(f"--size must be a positive multiple of {multiple} for this model, got {size}")
    threads = threads or torch.get_num_threads()
    if pipeline.adapters:
        concept = next(iter(pipeline.adapters.values())).concept
    else:  # a model without text (pix2pix) has no concept name: use its architecture's
        concept = concept_key(prompt) if prompt.strip() else pipeline.info["arch"]
    stem = concept
    common = {
        "concept": concept, "prompt": prompt, "arch": pipeline.info["arch"],
        "base": str(model), "base_sha256": pipeline.info["sha256"],
        "adapter": str(adapter) if adapter else None,
        "adapter_sha256": sha256_file(adapter) if adapter else None,
        "adapter_scale": scale if adapter else None,
        "merged": True, "text_tokens_baked_in": editor.text_tokens is not None,
        "noise": "Eq. 1's z: the generator's fixed N(0, 1) pattern (seed 0, 256 px tile), a constant",
        "torch_version": torch.__version__,
    }
    static_shape = (1, 3, size, size)
    # a second size and a batch of 2 show the dynamic variants really are dynamic
    other_shape = (2, 3, max(multiple, size // 2), size + 2 * multiple)
    example = torch.from_numpy(random_inputs([static_shape])[0])
    if precision != "fp32":
        check_photos = _photos(dataset, "test", size, CHECK_PHOTOS, teacher=True)
        if not check_photos[0]:
            check_photos = _photos(dataset, "train", size, CHECK_PHOTOS, teacher=True)
        if precision == "int8":
            calibration = _photos(dataset, "train", size, CALIBRATION_PHOTOS, teacher=False)[0]
    # measured before and after the timings, the best kept: on a shared machine the rate moves
    rate_before = _matmul_rate(threads) if floor else 0.0
    # torch eager at the same thread count as the files it is compared with
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        eager = median_latency(torch_runner(editor), example.numpy(), repeats)
    finally:
        torch.set_num_threads(previous_threads)
    out_dir = Path(out_dir)
    written: list[dict[str, Any]] = []
    pending: list[tuple[Path, bytes, dict[str, Any]]] = []

    def write(path: Path, data: bytes, record: dict[str, Any]) -> None:
        pending.append((path, data, record))  # written once every file has passed its checks

    def write_all() -> None:
        for path, data, record in pending:
            atomic_write_bytes(path, data)
            sidecar = {**common, **record, "file": path.name, "bytes": len(data),
                       "sha256": sha256_file(path)}
            atomic_write_json(path.with_name(path.name + ".json"), sidecar)
            written.append({"path": str(path), **{k: record[k] for k in
                            ("format", "variant", "max_abs_diff", "runtime", "latency_median_s")},
                            **{k: record[k] for k in ("precision", "quality_check") if k in record}})

    if "onnx" in formats:
        import onnxruntime

        variants = [("static", size)] + ([("dynamic", None)] if dynamic else [])
        for variant, fixed in variants:
            meta = {"e2gan": json.dumps({"concept": common["concept"], "prompt": prompt,
                                         "size_multiple": multiple, "variant": variant})}
            data = onnx_bytes(editor, example, dynamic=fixed is None, metadata=meta)
            runner = onnx_runner(onnx_session(data, threads))
            shapes = [static_shape] if fixed else [static_shape, other_shape]
            difference = _check(reference, runner, shapes, f"ONNX ({variant})")
            lowered: dict[str, Any] = {}
            if precision != "fp32":
                fp32_runner = runner
                data = (fp16_bytes(data) if precision == "fp16"
                        else int8_bytes(data, INPUT_NAME, calibration))
                runner = onnx_runner(onnx_session(data, threads))
                # the fp32 file's check stands for the graph; this one for the precision
                lowered = {"quality_check": quality_check(fp32_runner, runner, check_photos[0],
                                                          check_photos[1], precision),
                           "fp32_max_abs_diff": difference,
                           "check_dataset": str(dataset)}
                difference = max_abs_difference(fp32_runner, runner, random_inputs(shapes))
            timing = median_latency(runner, example.numpy(), repeats)
            suffix = "" if precision == "fp32" else f".{precision}"
            name = f"{stem}_{size}{suffix}.onnx" if fixed else f"{stem}_dynamic{suffix}.onnx"
            write(out_dir / name, data, {
                "format": "onnx", "variant": variant, "opset": ONNX_OPSET, "precision": precision,
                **_io_description(fixed, multiple), "checked_shapes": [list(s) for s in shapes],
                "max_abs_diff": difference, "runtime": f"onnxruntime {onnxruntime.__version__} CPU",
                **lowered, **timing, "threads": threads})
    if "torchscript" in formats:
        data = torchscript_bytes(editor, example)
        runner = torchscript_runner(data)
        shapes = [static_shape, other_shape]
        difference = _check(reference, runner, shapes, "TorchScript")
        timing = median_latency(runner, example.numpy(), repeats)
        write(out_dir / f"{stem}.torchscript.pt", data, {
            "format": "torchscript", "variant": "traced, any size", **_io_description(None, multiple),
            "checked_shapes": [list(s) for s in shapes], "max_abs_diff": difference,
            "runtime": f"torch {torch.__version__} jit", **timing, "threads": threads})
    if "executorch" in formats:
        data = executorch_bytes(editor, example)
        pool = executorch_threads(threads)  # before loading: XNNPACK keeps the pool it finds
        runner = executorch_runner(data)
        shapes = [static_shape]
        difference = _check(reference, runner, shapes, "ExecuTorch")
        lowered = {}
        program_precision = "int8" if precision == "int8" else "fp32"
        if program_precision == "int8":
            fp32_runner = runner
            data = executorch_bytes(xnnpack_int8(editor, example, calibration), example)
            runner = executorch_runner(data)
            lowered = {"quality_check": quality_check(fp32_runner, runner, check_photos[0],
                                                      check_photos[1], "int8"),
                       "fp32_max_abs_diff": difference, "check_dataset": str(dataset)}
            difference = max_abs_difference(fp32_runner, runner, random_inputs(shapes))
        timing = median_latency(runner, example.numpy(), repeats)
        suffix = "" if program_precision == "fp32" else ".int8"
        write(out_dir / f"{stem}_{size}{suffix}.pte", data, {
            "format": "executorch", "variant": "static, XNNPACK delegate",
            "precision": program_precision, **_io_description(size, multiple),
            "checked_shapes": [list(s) for s in shapes], "max_abs_diff": difference,
            "runtime": f"executorch {executorch_version()} (XNNPACK) CPU", **lowered, **timing,
            "threads": pool})
    write_all()
    result = {"concept": common["concept"], "prompt": prompt, "size": size, "out": str(out_dir),
              "torch_eager_latency_median_s": eager["latency_median_s"], "threads": threads,
              "device": f"CPU {platform.machine()}", "files": written}
    if floor:
        result.update(_floor(editor, size, threads, result, max(rate_before, _matmul_rate(threads))))
    return result


def _matmul_rate(threads: int) -> float:
    return matmul_rate(threads)


def _floor(editor: ConceptEditor, size: int, threads: int, result: dict,
           rate: float) -> dict[str, Any]:
    """The floor this machine allows (see e2gan.evaluation.profiling) and each runtime's latency over it."""

    macs = count_macs(editor.generator, size)["macs"]
    floor_s = 2 * macs / rate
    for record in result["files"]:
        record["over_floor"] = round(record["latency_median_s"] / floor_s, 3)
        record["achieved_gmacs_per_s"] = round(macs / record["latency_median_s"] / 1e9, 2)
    # The physical limit beside the sgemm floor: per-cycle width of the instruction sets this
    # CPU reports x its clock, per number format the files may run in.
    peaks = {fmt: peak_macs(fmt, threads) for fmt in ("fp32", "bf16", "int8")}
    return {"macs_g": float(f"{macs / 1e9:.4g}"), "floor_s": float(f"{floor_s:.4g}"),
            "sgemm_gflops": round(rate / 1e9, 2),
            "floor_rule": f"2 x MACs (torch counter) / best sgemm FLOP/s with {threads} thread(s)",
            "torch_eager_over_floor": round(result["torch_eager_latency_median_s"] / floor_s, 3),
            "torch_eager_gmacs_per_s": round(macs / result["torch_eager_latency_median_s"] / 1e9, 2),
            "peak": {fmt: {"instruction_set": peak["instruction_set"],
                           "gmacs_per_s": peak["peak_macs_per_s"] and round(peak["peak_macs_per_s"] / 1e9, 1)}
                     for fmt, peak in peaks.items()},
            "clock_ghz": peaks["fp32"]["clock_ghz"]}

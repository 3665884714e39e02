"""Graph optimisation trials for the INT8 ONNX export (issue 13): does anything applied before
onnxruntime's static quantization make the int8 file faster, and at what quality?

Each variant quantizes the same fp32 file with the export's settings (QDQ, per-channel int8
weights, uint8 activations, percentile calibration on the concept's training sources) and is
timed at batch 1 with the given threads, then checked on held-out pairs like the export does.

    OMP_NUM_THREADS=1 python experiments/onnx_int8_trials.py --model checkpoints/base \
        --adapter ADAPTER --size 256 --threads 1 --repeats 20

Variants: "as exported" (what `e2gan export --precision int8` ships); "quant_pre_process"
(onnxruntime's recommended pre-processing: symbolic shape inference and graph optimisation);
"onnxslim" (onnxslim's constant folding and fusion, when installed); "ort offline basic" (the
graph saved after onnxruntime's basic optimisations, then quantized).

With `--settings`, the same file is instead quantized with other quantizer settings: "QOperator"
(QLinearConv-style operators instead of QDQ pairs), "int8 activations" (S8S8, what ARM and
VNNI-less x86 kernels prefer), "per-tensor weights", "reduce_range" (7-bit weights, for CPUs
without VNNI). Each row says what it changed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--adapter", required=True)
    parser.add_argument("--dataset", help="default: the adapter's training pairs")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--settings", action="store_true",
                        help="compare quantizer settings instead of graph passes")
    args = parser.parse_args()

    import onnxruntime as ort

    from e2gan.checkpoint import read_adapter
    from e2gan.export import CALIBRATION_PHOTOS, CHECK_PHOTOS, _photos
    from e2gan.export.editor import deployable_editor
    from e2gan.export.formats import INPUT_NAME, median_latency, onnx_bytes, onnx_runner, onnx_session
    from e2gan.export.precision import int8_bytes, quality_check
    from e2gan.inference.pipeline import EditPipeline

    dataset = args.dataset or read_adapter(args.adapter).metadata["training"]["dataset"]
    pipeline = EditPipeline.from_pretrained(args.model, device="cpu")
    pipeline.load_adapter(args.adapter)
    _, editor, _ = deployable_editor(pipeline, None)
    example = torch.rand(1, 3, args.size, args.size) * 2 - 1
    fp32 = onnx_bytes(editor, example, dynamic=False)
    photos, teacher = _photos(dataset, "test", args.size, CHECK_PHOTOS, teacher=True)
    calibration = _photos(dataset, "train", args.size, CALIBRATION_PHOTOS, teacher=False)[0]
    fp32_runner = onnx_runner(onnx_session(fp32, args.threads))

    def pre_process(data: bytes) -> bytes:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        with tempfile.TemporaryDirectory() as scratch:
            source, target = Path(scratch) / "in.onnx", Path(scratch) / "out.onnx"
            source.write_bytes(data)
            quant_pre_process(str(source), str(target))
            return target.read_bytes()

    def slim(data: bytes) -> bytes:
        import onnx
        import onnxslim

        return onnxslim.slim(onnx.load_from_string(data)).SerializeToString()

    def ort_offline(data: bytes) -> bytes:
        with tempfile.TemporaryDirectory() as scratch:
            target = Path(scratch) / "basic.onnx"
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            options.optimized_model_filepath = str(target)
            ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
            return target.read_bytes()

    from onnxruntime.quantization import QuantFormat, QuantType

    unchanged = lambda data: data  # noqa: E731
    variants = {"as exported": (unchanged, {})}
    if args.settings:
        variants.update({
            "QOperator": (unchanged, {"quant_format": QuantFormat.QOperator}),
            "int8 activations": (unchanged, {"activation_type": QuantType.QInt8}),
            "per-tensor weights": (unchanged, {"per_channel": False}),
            "reduce_range": (unchanged, {"reduce_range": True})})
    else:
        variants.update({"quant_pre_process": (pre_process, {}), "onnxslim": (slim, {}),
                         "ort offline basic": (ort_offline, {})})
    rows = [{"variant": "fp32 (reference)", "bytes": len(fp32),
             **median_latency(fp32_runner, example.numpy(), args.repeats)}]
    for name, (transform, settings) in variants.items():
        try:
            prepared = transform(fp32)
        except ImportError as error:
            rows.append({"variant": name, "skipped": str(error)})
            continue
        int8 = int8_bytes(prepared, INPUT_NAME, calibration, **settings)
        runner = onnx_runner(onnx_session(int8, args.threads))
        check = quality_check(fp32_runner, runner, photos, teacher, "int8")
        timing = median_latency(runner, example.numpy(), args.repeats)
        rows.append({"variant": name, "bytes": len(int8), **timing,
                     "x_fp32": round(timing["latency_median_s"] / rows[0]["latency_median_s"], 3),
                     "psnr_vs_fp32_db": check["psnr_vs_fp32_db"],
                     "psnr_drop_vs_teacher_db": check["psnr_drop_db"]})
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"threads": args.threads, "size": args.size, "onnxruntime": ort.__version__,
                      "check_photos": len(photos), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

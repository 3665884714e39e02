"""Lower-precision files (ONNX; ExecuTorch int8), and the check on real photos that decides
whether one ships.

- **fp16**: every float initializer and op in half precision (onnxruntime's own converter), the
  image input and output kept float32 so callers do not change.
- **int8**: onnxruntime's static quantization, QDQ format, weights int8 per output channel,
  activations uint8, calibrated on the concept's own training sources. The activation ranges
  come from the 0.001-99.999 percentiles, not min/max: on a winter adapter of the shipped base
  (256 px, 16 held-out pairs) that is 27.3 dB from the fp32 output and 0.37 dB below it against
  the teacher, where min/max gave 23.2 dB and 0.80 dB (entropy: as min/max; quantizing only the
  convolutions: 28.0 dB and 0.35 dB, but an 11.9 MB file instead of 7.5 MB).

- **int8 for ExecuTorch**: the PT2E flow with ExecuTorch's `XNNPACKQuantizer` (symmetric int8,
  weights per output channel), calibrated on the same sources; XNNPACK then runs the quantized
  convolutions. On that winter adapter (1 thread, 256 px): 0.131 s against 0.228 s for the fp32
  `.pte` (0.57x), 27.4 dB from the fp32 output, 0.53 dB below it against the teacher.

Random inputs cannot judge these files (their error depends on what real photos look like), so
`quality_check` edits held-out photos with the fp32 file and the lower-precision one and compares
both with the teacher's edits. A file that loses more than `MAX_PSNR_DROP_DB` against the teacher
(or, without teacher edits, lies under `MIN_PSNR_VS_FP32_DB` from the fp32 output) is refused.
"""

from __future__ import annotations

import contextlib
import math
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from e2gan.errors import E2GANError

PRECISIONS = ("fp32", "fp16", "int8")
MAX_PSNR_DROP_DB = 1.0  # against the teacher's edits, relative to the fp32 file
MIN_PSNR_VS_FP32_DB = 30.0  # when no teacher edits are at hand


def fp16_bytes(data: bytes) -> bytes:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load_from_string(data), keep_io_types=True)
    return model.SerializeToString()


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over a list of input arrays."""

    def __init__(self, input_name: str, arrays: list[np.ndarray]) -> None:
        self.feeds = iter([{input_name: array} for array in arrays])

    def get_next(self):
        return next(self.feeds, None)

    def rewind(self) -> None:  # pragma: no cover - called by some onnxruntime versions only
        pass


def int8_bytes(data: bytes, input_name: str, calibration: list[np.ndarray],
               **overrides: Any) -> bytes:
    """`data` statically quantized by onnxruntime: QDQ, per-channel int8 weights, uint8
    activations, percentile calibration on `calibration`. `overrides` replace any of
    `quantize_static`'s settings (`experiments/onnx_int8_trials.py` compares some)."""
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    if not calibration:
        raise E2GANError("INT8 needs calibration photos; none were given")
    with tempfile.TemporaryDirectory() as scratch:
        source, target = Path(scratch) / "fp32.onnx", Path(scratch) / "int8.onnx"
        source.write_bytes(data)
        # onnxruntime's calibration prints its progress to stdout, where `--json` output goes
        with contextlib.redirect_stdout(sys.stderr):
            settings = {"quant_format": QuantFormat.QDQ, "per_channel": True,
                        "weight_type": QuantType.QInt8, "activation_type": QuantType.QUInt8,
                        "calibrate_method": CalibrationMethod.Percentile, **overrides}
            quantize_static(str(source), str(target), _Calibration(input_name, calibration),
                            **settings)
        return target.read_bytes()


def xnnpack_int8(editor, example, calibration: list[np.ndarray]):
    """`editor` quantized for XNNPACK (PT2E: prepare, calibrate, convert), ready for
    `torch.export` and ExecuTorch's lowering; the quantizer ships with ExecuTorch."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer, get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if not calibration:
        raise E2GANError("INT8 needs calibration photos; none were given")
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    with torch.no_grad():
        observed = prepare_pt2e(torch.export.export(editor.eval(), (example,)).module(), quantizer)
        for array in calibration:
            observed(torch.from_numpy(array))
        return convert_pt2e(observed)


def psnr(first: np.ndarray, second: np.ndarray) -> float:
    """PSNR in dB of two images in [-1, 1] (as 8-bit pixels would be)."""
    a = np.clip(first, -1, 1).astype(np.float64)
    b = np.clip(second, -1, 1).astype(np.float64)
    mse = float(np.mean(((a - b) * 127.5) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def quality_check(fp32: Callable[[np.ndarray], np.ndarray], candidate: Callable[[np.ndarray], np.ndarray],
                  photos: list[np.ndarray], teacher: list[np.ndarray] | None, precision: str) -> dict:
    """Mean PSNR of the candidate against the fp32 file and (with teacher edits) of both against
    the teacher; raises `E2GANError` when the candidate fails the rule in the module's note."""
    reference = [fp32(photo) for photo in photos]
    edited = [candidate(photo) for photo in photos]
    if not all(np.isfinite(e).all() for e in edited):
        raise E2GANError(f"the {precision} file gives non-finite values on the check photos; not written")
    check = {"photos": len(photos),
             "psnr_vs_fp32_db": round(float(np.mean([psnr(e, r) for e, r in zip(edited, reference)])), 2)}
    if teacher:
        check["fp32_psnr_vs_teacher_db"] = round(float(np.mean(
            [psnr(r, t) for r, t in zip(reference, teacher)])), 2)
        check["psnr_vs_teacher_db"] = round(float(np.mean([psnr(e, t) for e, t in zip(edited, teacher)])), 2)
        check["psnr_drop_db"] = round(check["fp32_psnr_vs_teacher_db"] - check["psnr_vs_teacher_db"], 2)
        check["rule"] = f"at most {MAX_PSNR_DROP_DB} dB below the fp32 file against the teacher"
        passed = check["psnr_drop_db"] <= MAX_PSNR_DROP_DB
    else:
        check["rule"] = f"at least {MIN_PSNR_VS_FP32_DB} dB from the fp32 file's output"
        passed = check["psnr_vs_fp32_db"] >= MIN_PSNR_VS_FP32_DB
    if not passed:
        raise E2GANError(f"the {precision} file fails its quality check ({check['rule']}): "
                         f"{check}; not written")
    return check

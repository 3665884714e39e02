"""Serialising an editor (ONNX, TorchScript, ExecuTorch), checking it against torch, timing it.

ONNX goes through torch's TorchScript-based exporter (`torch.onnx.export(dynamo=False)`), which
needs no onnxscript; opset 17 has every op the generators use (reflect pad, instance/group/layer
norm, transposed conv, scaled-dot-product attention as MatMul/Softmax). Files are produced in
memory and written atomically by the caller.

ExecuTorch is PyTorch's mobile runtime: `torch.export` captures the editor at one input shape,
the XNNPACK partitioner hands every conv and elementwise op it supports to XNNPACK (the CPU
kernels ExecuTorch uses on Android and iOS), and the `.pte` runs here through ExecuTorch's own
Python runtime, the same C++ runtime a phone links. It is an optional extra (`mobile`).
"""

from __future__ import annotations

import io
import json
import math
import statistics
import time
import warnings
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch import nn

from e2gan.errors import E2GANError

ONNX_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "image", "edited"


# --- ONNX -----------------------------------------------------------------------------------------

def onnx_bytes(editor: nn.Module, example: torch.Tensor, dynamic: bool,
               metadata: dict[str, str] | None = None) -> bytes:
    """The editor as an ONNX model; `dynamic` makes batch, height and width symbolic."""
    import onnx

    axes = {0: "batch", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation notices, not our problem
        torch.onnx.export(editor.eval(), (example,), buffer, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes} if dynamic else None,
                          do_constant_folding=True)
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model)
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model.SerializeToString()


def onnx_session(model: bytes | str, threads: int | None = None):
    """An onnxruntime CPU session with all graph optimisations; `threads` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types
        raise E2GANError(f"onnxruntime cannot open the model: {str(error)[:300]}") from None


def onnx_runner(session) -> Callable[[np.ndarray], np.ndarray]:
    name = session.get_inputs()[0].name
    return lambda array: session.run(None, {name: array})[0]


# --- TorchScript ----------------------------------------------------------------------------------

def torchscript_bytes(editor: nn.Module, example: torch.Tensor) -> bytes:
    """The editor traced to TorchScript. Shapes are read from the input at run time, so the
    trace runs at other sizes (checked by the caller)."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(editor.eval(), (example,), check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
    return buffer.getvalue()


def torchscript_runner(data: bytes) -> Callable[[np.ndarray], np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()

    def run(array: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(array)).numpy()
    return run


# --- ExecuTorch -----------------------------------------------------------------------------------

EXECUTORCH_MISSING = ("ExecuTorch is not installed: pip install 'e2gan-studio[mobile]' (or "
                      "pip install executorch) for --format executorch")


def executorch_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("executorch")
    except PackageNotFoundError:
        raise E2GANError(EXECUTORCH_MISSING) from None


def executorch_bytes(editor: nn.Module, example: torch.Tensor) -> bytes:
    """The editor (float32, or quantized by `precision.xnnpack_int8`) as an ExecuTorch program
    (`.pte`) for `example`'s shape, delegated to XNNPACK."""
    executorch_version()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        # A PT2E-quantized editor is already an exported graph, which refuses `.eval()`.
        module = editor if isinstance(editor, torch.fx.GraphModule) else editor.eval()
        exported = torch.export.export(module, (example,))
        lowered = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
        return lowered.to_executorch().buffer


def executorch_threads(threads: int | None) -> int | None:
    """Size XNNPACK's thread pool (it ignores torch's setting), so timings compare at equal
    threads; returns the count in use. Call it before loading a program: a loaded XNNPACK method
    keeps the pool it was given, and resetting that pool under it crashes or hangs (seen here).
    The call is marked experimental by ExecuTorch: when it is gone, the runtime keeps its default
    (one thread per core) and None says "not set"."""
    try:
        from executorch.extension.pybindings import portable_lib
    except ImportError:
        return None
    if threads and hasattr(portable_lib, "_unsafe_reset_threadpool"):
        portable_lib._unsafe_reset_threadpool(int(threads))
    counter = getattr(portable_lib, "_threadpool_get_thread_count", None)
    return int(counter()) if counter else None


def executorch_runner(data: bytes) -> Callable[[np.ndarray], np.ndarray]:
    """Run a `.pte` through ExecuTorch's runtime (not torch): what the phone would compute."""
    from executorch.runtime import Runtime

    # The method reads the program's memory: the program (and its bytes) must outlive it.
    program = Runtime.get().load_program(data)
    method = program.load_method("forward")

    def run(array: np.ndarray, keep=(data, program)) -> np.ndarray:
        return method.execute([torch.from_numpy(array)])[0].numpy()
    return run


def torch_runner(editor: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    editor = editor.eval()

    def run(array: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return editor(torch.from_numpy(array)).numpy()
    return run


# --- checking and timing --------------------------------------------------------------------------

def random_inputs(shapes: list[tuple[int, int, int, int]], seed: int = 0) -> list[np.ndarray]:
    generator = np.random.default_rng(seed)
    return [generator.uniform(-1, 1, size=shape).astype(np.float32) for shape in shapes]


def max_abs_difference(reference: Callable[[np.ndarray], np.ndarray],
                       candidate: Callable[[np.ndarray], np.ndarray],
                       inputs: list[np.ndarray]) -> float:
    """Largest |reference - candidate| over all inputs (outputs are in [-1, 1]); NaN when either
    side has a non-finite value, so a check `difference <= tolerance` fails on it."""
    worst = 0.0
    for array in inputs:
        expected, got = reference(array), candidate(array)
        if expected.shape != got.shape:
            raise E2GANError(f"exported model gives shape {got.shape}, torch {expected.shape}")
        if not (np.isfinite(expected).all() and np.isfinite(got).all()):
            return math.nan  # max(0.0, nan) is 0.0: a NaN must not vanish into the maximum
        worst = max(worst, float(np.abs(expected.astype(np.float64) - got).max()))
    return worst


def median_latency(run: Callable[[np.ndarray], np.ndarray], array: np.ndarray,
                   repeats: int = 10, warmup: int = 2) -> dict[str, float]:
    """Median and best wall time (seconds) of `run(array)` after `warmup` untimed calls."""
    for _ in range(warmup):
        run(array)
    timings = []
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        run(array)
        timings.append(time.perf_counter() - started)
    return {"latency_median_s": round(statistics.median(timings), 5),
            "latency_min_s": round(min(timings), 5), "repeats": len(timings)}


# --- an exported file as an image maker -----------------------------------------------------------

def _pad_to_multiple(array: np.ndarray, multiple: int) -> np.ndarray:
    """numpy's twin of `e2gan.inference.pipeline.pad_to_multiple` (N, C, H, W): mirrored at the
    bottom and right, the last row or column repeated where a side is shorter than its pad."""
    height, width = array.shape[-2:]
    pad_height, pad_width = -height % multiple, -width % multiple
    if not pad_height and not pad_width:
        return array
    mode = "reflect" if pad_height < height and pad_width < width else "edge"
    return np.pad(array, ((0, 0), (0, 0), (0, pad_height), (0, pad_width)), mode=mode)


class OnnxImageMaker:
    """An exported ONNX editor as `evaluate_pairs`' callable: PIL images in, PIL images out.

    A static-size model gets each image resized to its input size and the result resized back; a
    dynamic one edits the image at its own size as `EditPipeline` does: mirrored at the bottom
    and right up to the model's size multiple (from its metadata), the output cropped back, so no
    pixel is resampled.
    """

    def __init__(self, path: str, threads: int | None = None) -> None:
        import onnx

        try:
            model = onnx.load(path, load_external_data=False)
        except Exception as error:
            raise E2GANError(f"cannot read ONNX model {path}: {str(error)[:200]}") from None
        self.metadata = {p.key: p.value for p in model.metadata_props}
        self.session = onnx_session(str(path), threads)
        self.run = onnx_runner(self.session)
        shape = self.session.get_inputs()[0].shape
        self.static_size = tuple(shape[2:]) if all(isinstance(d, int) for d in shape[2:]) else None
        self.multiple = int(json.loads(self.metadata.get("e2gan", "{}")).get("size_multiple", 8))

    def __call__(self, images: list[Image.Image]) -> list[Image.Image]:
        outputs = []
        for image in images:
            rgb = image.convert("RGB")
            if self.static_size:
                size = self.static_size[1], self.static_size[0]
                resized = rgb.resize(size, Image.BICUBIC) if size != rgb.size else rgb
            else:
                resized = rgb
            array = np.asarray(resized, np.float32).transpose(2, 0, 1)[None] / 127.5 - 1.0
            height, width = array.shape[-2:]
            if not self.static_size:
                array = _pad_to_multiple(array, self.multiple)
            edited = self.run(np.ascontiguousarray(array))[0][:, :height, :width]
            if not np.isfinite(edited).all():  # clip and uint8 would hide it as black
                raise E2GANError("the ONNX model's output has non-finite values (NaN or inf): "
                                 "its weights are broken")
            pixels = ((edited.transpose(1, 2, 0).clip(-1, 1) + 1) * 127.5).round().astype(np.uint8)
            result = Image.fromarray(pixels)
            outputs.append(result.resize(rgb.size, Image.BICUBIC) if result.size != rgb.size else result)
        return outputs

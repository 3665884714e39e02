"""Parameters, MACs and latency of a generator.

MACs are counted with torch's `FlopCounterMode` (MACs = FLOPs / 2). It counts a transposed conv
at its *input* resolution, which is the arithmetic actually done; papers (and GAN Compression's
profiler) usually count it as a conv at the *output* resolution, 4x more for a stride-2 layer. We
report both: `macs` (torch's counter) and `macs_paper_convention`. The E2GAN-vs-pix2pix ratio
is compared under one convention at a time.

The latency *floor* is what this machine allows at best: the arithmetic actually done (torch's
MAC count, x2 for FLOPs) divided by the rate of a large float32 matrix multiply (`sgemm`, 2048^3 by
default), the best-case rate of dense arithmetic here. It is measured with one thread and with
all threads; a latency is compared with the floor at the thread count it ran with. With `onnx`,
onnxruntime's latency (batch 1, the exported graph of a random-weight model) is reported beside
torch eager.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from e2gan.models import build_model

SGEMM_SIZE = 2048  # large enough that the multiply runs at the machine's dense-arithmetic peak


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _example_inputs(model: nn.Module, size: int, batch: int = 1) -> tuple[torch.Tensor, ...]:
    source = torch.randn(batch, 3, size, size)
    if getattr(model, "uses_text", False):
        return source, torch.randn(batch, 4, model.config.text_dim)
    return (source,)


def count_macs(model: nn.Module, size: int) -> dict[str, float]:
    inputs = _example_inputs(model, size)
    transposed_extra = 0.0
    handles = []

    def on_transposed(module: nn.ConvTranspose2d, args, output) -> None:
        nonlocal transposed_extra
        input_pixels = args[0].shape[-2] * args[0].shape[-1]
        output_pixels = output.shape[-2] * output.shape[-1]
        macs_in = (args[0].shape[0] * input_pixels * module.in_channels * module.out_channels
                   * module.kernel_size[0] * module.kernel_size[1] / module.groups)
        transposed_extra += macs_in * (output_pixels / input_pixels - 1)

    for module in model.modules():
        if isinstance(module, nn.ConvTranspose2d):
            handles.append(module.register_forward_hook(on_transposed))
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model.eval()(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    macs = counter.get_total_flops() / 2
    return {"macs": macs, "macs_paper_convention": macs + transposed_extra}


def measure_latency(model: nn.Module, size: int, repeats: int = 10, warmup: int = 2) -> dict[str, float]:
    """Median and best eager-mode latency (seconds) at batch 1 on the CPU."""
    model = model.eval()
    inputs = _example_inputs(model, size)
    timings = []
    with torch.inference_mode():
        for index in range(warmup + repeats):
            started = time.perf_counter()
            model(*inputs)
            if index >= warmup:
                timings.append(time.perf_counter() - started)
    return {"latency_median_s": statistics.median(timings), "latency_min_s": min(timings)}


def matmul_rate(threads: int, size: int | None = None, repeats: int = 5) -> float:
    """Best float32 matrix-multiply rate (FLOP/s) over `repeats` runs with `threads` threads."""
    size = size or SGEMM_SIZE
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        generator = torch.Generator().manual_seed(0)
        a = torch.randn(size, size, generator=generator)
        b = torch.randn(size, size, generator=generator)
        torch.mm(a, b)  # warm-up: thread pool start, page faults
        best = float("inf")
        for _ in range(max(1, repeats)):
            started = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous)
    return 2 * size ** 3 / best


def measure_matmul_rates(size: int | None = None, repeats: int = 5) -> dict[str, Any]:
    """sgemm GFLOP/s with one thread and with all of this machine's cores."""
    size = size or SGEMM_SIZE
    all_threads = os.cpu_count() or 1
    single = matmul_rate(1, size, repeats)
    multi = matmul_rate(all_threads, size, repeats) if all_threads > 1 else single
    return {"sgemm": f"torch.mm float32 {size}x{size}x{size}, best of {repeats}",
            "sgemm_gflops_1_thread": round(single / 1e9, 2),
            f"sgemm_gflops_{all_threads}_threads": round(multi / 1e9, 2),
            "_rates": {1: single, all_threads: multi}}


def onnx_latency(model: nn.Module, size: int, repeats: int = 10, threads: int | None = None) -> dict:
    """onnxruntime latency (batch 1) of `model` exported as an editor with random text tokens."""
    from e2gan.export.editor import ConceptEditor
    from e2gan.export.formats import median_latency, onnx_bytes, onnx_runner, onnx_session

    text = torch.randn(1, 4, model.config.text_dim) if getattr(model, "uses_text", False) else None
    editor = ConceptEditor(model.eval(), text)
    example = torch.rand(1, 3, size, size) * 2 - 1
    session = onnx_session(onnx_bytes(editor, example, dynamic=False),
                           threads or torch.get_num_threads())
    return median_latency(onnx_runner(session), example.numpy(), repeats)


def profile_architecture(arch: str, size: int = 256, repeats: int = 10, onnx: bool = False,
                         floor: bool = False, sgemm_size: int | None = None) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build_model(arch)
    result: dict[str, Any] = {"arch": arch, "size": size, "parameters": count_parameters(model)}
    macs = count_macs(model, size)
    result.update({"macs_g": round(macs["macs"] / 1e9, 3),
                   "macs_paper_convention_g": round(macs["macs_paper_convention"] / 1e9, 3),
                   "mac_counter": "torch FlopCounterMode (transposed conv at input resolution); "
                                  "paper convention counts it at output resolution"})
    threads = torch.get_num_threads()
    # On a shared machine the sgemm rate moves with the load: measure it before and after the
    # latencies and keep the best, so the floor is what the machine allows, not a busy moment.
    rates_before = measure_matmul_rates(sgemm_size) if floor else None
    if repeats > 0:
        latency = measure_latency(model, size, repeats)
        result.update({"runtime": "torch eager, batch 1, float32",
                       "device": f"CPU {platform.machine()} x{threads} threads",
                       **{k: round(v, 5) for k, v in latency.items()}})
    if onnx and repeats > 0:
        ort_timing = onnx_latency(model, size, repeats, threads)
        result.update({"onnxruntime_latency_median_s": ort_timing["latency_median_s"],
                       "onnxruntime_latency_min_s": ort_timing["latency_min_s"],
                       "onnxruntime_threads": threads})
    if floor:
        after = measure_matmul_rates(sgemm_size)
        measured = {k: max(v, rates_before["_rates"][k]) for k, v in after.pop("_rates").items()}
        rates = {**after, "sgemm": after["sgemm"] + ", before and after the latencies"}
        rates.update({f"sgemm_gflops_{k}_thread" + ("s" if k > 1 else ""): round(v / 1e9, 2)
                      for k, v in measured.items()})
        # the floor at the thread count the latencies ran with (measured directly when it is
        # 1 or all cores; otherwise measured for that count too)
        rate = measured.get(threads) or matmul_rate(threads, sgemm_size)
        floor_s = 2 * macs["macs"] / rate
        result.update(rates)
        result.update({"floor_s": float(f"{floor_s:.4g}"), "floor_threads": threads,
                       "floor_rule": "2 x MACs (torch counter) / sgemm FLOP/s at floor_threads"})
        for key, name in (("latency_median_s", "eager_over_floor"),
                          ("latency_min_s", "eager_best_over_floor"),
                          ("onnxruntime_latency_median_s", "onnxruntime_over_floor"),
                          ("onnxruntime_latency_min_s", "onnxruntime_best_over_floor")):
            if key in result:
                result[name] = round(result[key] / floor_s, 3)
    return result

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
import statistics
import time
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


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

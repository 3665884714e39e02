"""Parameters, MACs and latency of a generator.

MACs are counted with torch's `FlopCounterMode` (MACs = FLOPs / 2). It counts a transposed conv
at its *input* resolution, which is the arithmetic actually done; papers (and GAN Compression's
profiler) usually count it as a conv at the *output* resolution, 4x more for a stride-2 layer. We
report both: `macs` (torch's counter) and `macs_paper_convention`. The E2GAN-vs-pix2pix ratio
is compared under one convention at a time.
"""

from __future__ import annotations

import platform
import statistics
import time
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from e2gan.models import build_model


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


def profile_architecture(arch: str, size: int = 256, repeats: int = 10) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build_model(arch)
    result: dict[str, Any] = {"arch": arch, "size": size, "parameters": count_parameters(model)}
    macs = count_macs(model, size)
    result.update({"macs_g": round(macs["macs"] / 1e9, 3),
                   "macs_paper_convention_g": round(macs["macs_paper_convention"] / 1e9, 3),
                   "mac_counter": "torch FlopCounterMode (transposed conv at input resolution); "
                                  "paper convention counts it at output resolution"})
    if repeats > 0:
        latency = measure_latency(model, size, repeats)
        result.update({"runtime": "torch eager, batch 1, float32",
                       "device": f"CPU {platform.machine()} x{torch.get_num_threads()} threads",
                       **{k: round(v, 5) for k, v in latency.items()}})
    return result

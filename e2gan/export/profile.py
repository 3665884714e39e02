"""An architecture's deployment profile: parameters, MACs, eager and onnxruntime latency, and the
floor the machine's sgemm rate puts under them (`e2gan profile`). The counters and timers are
`e2gan.evaluation.profiling`'s; the ONNX file is this package's.
"""

from __future__ import annotations

import platform
from typing import Any

import torch
from torch import nn

from e2gan.evaluation.profiling import (count_macs, count_parameters, matmul_rate,
                                        measure_latency, measure_matmul_rates)
from e2gan.export.editor import ConceptEditor
from e2gan.export.formats import median_latency, onnx_bytes, onnx_runner, onnx_session
from e2gan.models import build_model


def onnx_latency(model: nn.Module, size: int, repeats: int = 10, threads: int | None = None) -> dict:
    """onnxruntime latency (batch 1) of `model` exported as an editor with random text tokens."""
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

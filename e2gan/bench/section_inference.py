"""Section 6, inference cost (paper Tab. 1/2): parameters, MACs and batch-1 latency of E2GAN and
pix2pix-9RB at `inference_size`, in torch eager and in onnxruntime (`e2gan.export`, adapter merged,
text tokens baked in), against the floor this machine allows: the model's MACs over the rate a
large float32 matrix multiply reaches here with the same threads.

MACs: torch's FlopCounterMode (transposed convs at input resolution, the work actually done) and
the paper's convention (at output resolution); the floor uses torch's count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from e2gan.models import lora
from e2gan.bench.context import BenchContext
from e2gan.bench.plots import bar_chart
from e2gan.bench.report import fmt, markdown_table
from e2gan.checkpoint import load_generator, load_rank_table, save_generator
from e2gan.errors import E2GANError
from e2gan.models import build_model
from e2gan.precision import peak_macs
from e2gan.evaluation.profiling import (SGEMM_SIZE, count_macs, count_parameters, matmul_rate,
                             measure_latency)

ARCHES = {"e2gan": "E2GAN (3RB + 1TB)", "pix2pix": "pix2pix-9RB"}


def _model_folder(context: BenchContext, arch: str) -> tuple[Path, str]:
    """A model folder to export: the base for E2GAN (one of its concepts; any adapter merged in
    costs the same), a randomly initialised pix2pix (latency does not depend on the weights)."""
    if arch == "e2gan":
        base = context.base_dir()
        concepts = load_generator(base).info.get("training", {}).get("concepts") or [""]
        return base, concepts[0]
    folder = context.work_dir / "inference" / "pix2pix"
    if not (folder / "config.json").is_file():
        torch.manual_seed(0)
        save_generator(folder, build_model("pix2pix").eval(), None, {"note": "random init"})
    return folder, ""


def _onnx(context: BenchContext, arch: str) -> dict[str, Any]:
    s = context.settings
    try:  # optional: onnx and onnxruntime
        from e2gan.export import export_concept
    except ImportError as error:
        return {"onnx_skipped": f"ONNX export is not available ({error})"}
    folder, prompt = _model_folder(context, arch)
    try:
        exported = export_concept(folder, context.work_dir / "inference" / f"{arch}_onnx",
                                  prompt=prompt or None, size=s.inference_size, formats=("onnx",),
                                  dynamic=False, repeats=s.inference_repeats)
    except (E2GANError, ImportError) as error:
        return {"onnx_skipped": str(error)}
    record = exported["files"][0]
    return {"onnx_latency_s": record["latency_median_s"], "onnx_max_abs_diff": record["max_abs_diff"],
            "onnx_runtime": record["runtime"]}


def _torch_model(context: BenchContext, arch: str) -> torch.nn.Module:
    """The model torch eager times: the base itself for E2GAN, so its layout (decoder, padding,
    norms, noise input) is the one measured, the same one `_onnx` exports; pix2pix as built."""
    if arch == "e2gan":
        return load_generator(context.base_dir()).generator.eval()
    torch.manual_seed(0)
    return build_model(arch).eval()


def profile(context: BenchContext, arch: str, rate: float) -> dict[str, Any]:
    s = context.settings
    model = _torch_model(context, arch)
    macs = count_macs(model, s.inference_size)
    row: dict[str, Any] = {"arch": arch, "model": ARCHES[arch], "parameters": count_parameters(model),
                           "macs": macs["macs"], "macs_paper_convention": macs["macs_paper_convention"],
                           "torch_latency_s": measure_latency(model, s.inference_size,
                                                              s.inference_repeats)["latency_median_s"],
                           "floor_s": macs["macs"] / rate}  # refined in `run` with the best rate
    if arch == "e2gan":
        # What the studio runs before export: the adapter as separate LoRA layers, not merged.
        ranks = load_rank_table(context.base_dir()) or dict.fromkeys(lora.crucial_layers(model), 4)
        lora.add_adapter(model, "concept", ranks)
        row["torch_latency_unmerged_lora_s"] = measure_latency(
            model, s.inference_size, s.inference_repeats)["latency_median_s"]
    row.update(_onnx(context, arch))
    return row


def run(context: BenchContext) -> dict[str, Any]:
    s = context.settings
    threads = torch.get_num_threads()
    spec = {"inference": s.inference_size, "repeats": s.inference_repeats,
            "threads": threads, **context.base_key(), "matmul_side": SGEMM_SIZE}
    macs_per_second = lambda: matmul_rate(threads) / 2  # FLOP/s -> multiply-accumulates/s

    def compute(folder: Path) -> dict[str, Any]:
        rate = macs_per_second()
        rows = [profile(context, arch, rate) for arch in ARCHES]
        # The rate is measured before and after the models, and the best kept: on a shared CPU a
        # single measurement may catch a busy moment and make the floor look lower than it is.
        rate = max(rate, macs_per_second())
        peak = peak_macs("fp32", threads)
        for row in rows:
            row["floor_s"] = row["macs"] / rate
            row["achieved_macs_per_s"] = row["macs"] / row["torch_latency_s"]
            if peak["peak_macs_per_s"]:
                row["fraction_of_peak"] = row["achieved_macs_per_s"] / peak["peak_macs_per_s"]
        return {"matmul_macs_per_s": rate, "peak": peak, "rows": rows}

    result = context.store.cached("inference", spec, compute)
    rows = result["rows"]
    series = {"torch eager": [r["torch_latency_s"] * 1000 for r in rows],
              "onnxruntime": [r.get("onnx_latency_s") and r["onnx_latency_s"] * 1000 for r in rows],
              "floor (MACs / matmul rate)": [r["floor_s"] * 1000 for r in rows]}
    chart = bar_chart(context.report_dir / "inference_latency.png",
                      f"Batch-1 latency at {s.inference_size}x{s.inference_size} (ms)", "ms",
                      [r["model"] for r in rows], series)
    return {**result, "plots": [chart.name], "markdown": markdown(result, s)}


def markdown(result: dict[str, Any], s) -> str:
    rows = result["rows"]
    headers = ["model", "parameters", "MACs (torch)", "MACs (paper conv.)", "torch eager",
               "onnxruntime", "floor", "ONNX / floor", "ONNX max abs diff"]
    table = markdown_table(headers, [[
        r["model"], f"{r['parameters']:,}", f"{r['macs'] / 1e9:.2f} G",
        f"{r['macs_paper_convention'] / 1e9:.2f} G", f"{r['torch_latency_s'] * 1000:.1f} ms",
        fmt(r.get("onnx_latency_s") and r["onnx_latency_s"] * 1000, ".1f") + " ms",
        f"{r['floor_s'] * 1000:.1f} ms",
        fmt(r.get("onnx_latency_s") and r["onnx_latency_s"] / r["floor_s"], ".2f") + "x",
        fmt(r.get("onnx_max_abs_diff"), ".1e")] for r in rows])
    e2gan, pix2pix = rows[0], rows[1]
    lines = [table, "",
             f"{s.inference_size}x{s.inference_size}, batch 1, float32, median of "
             f"{s.inference_repeats} runs. Floor = MACs (torch count) / the best rate of a "
             f"{SGEMM_SIZE}x{SGEMM_SIZE} float32 matmul here, measured before and after the models: "
             f"{result['matmul_macs_per_s'] / 1e9:.1f} GMAC/s "
             f"({2 * result['matmul_macs_per_s'] / 1e9:.1f} GFLOP/s) with "
             f"{result['spec']['threads']} thread(s). On a shared CPU every figure here moves with "
             "the load; a ratio below 1 means the runtime ran at a quieter moment than the matmul.",
             "", f"- E2GAN / pix2pix: MACs {e2gan['macs'] / pix2pix['macs']:.2f}x (torch count), "
             f"{e2gan['macs_paper_convention'] / pix2pix['macs_paper_convention']:.2f}x (paper "
             f"convention; the paper: 23.6 G / 56.9 G = 0.41x); torch latency "
             f"{e2gan['torch_latency_s'] / pix2pix['torch_latency_s']:.2f}x."]
    peak = result.get("peak")
    if peak and peak["peak_macs_per_s"]:
        lines.append(
            f"- The physical limit: {peak['macs_per_cycle_per_core']} fp32 multiply-adds per cycle "
            f"per core ({peak['instruction_set']}) at {peak['clock_ghz']} GHz (the clock the OS "
            f"reports; a core that boosts above it can beat this figure) x {peak['threads']} "
            f"thread(s) = {peak['peak_macs_per_s'] / 1e9:.1f} GMAC/s; the matmul reached "
            f"{result['matmul_macs_per_s'] / peak['peak_macs_per_s']:.0%} of it, torch eager "
            + ", ".join(f"{r['model']} {r['achieved_macs_per_s'] / 1e9:.1f} GMAC/s "
                        f"({r['fraction_of_peak']:.0%})" for r in rows) + ".")
    if "torch_latency_unmerged_lora_s" in e2gan:
        lines.append(f"- E2GAN with its adapter as separate LoRA layers (before merging): "
                     f"{e2gan['torch_latency_unmerged_lora_s'] * 1000:.1f} ms in torch eager.")
    for r in rows:
        if "onnx_skipped" in r:
            lines.append(f"- {r['model']}: ONNX not measured ({r['onnx_skipped']}).")
    return "\n".join(lines)

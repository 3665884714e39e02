"""Section 5, data (paper Fig. 7): how many training pairs, and chosen how.

- The curve: E2GAN fine-tunes on n in `data_sizes` pairs, similarity-clustered vs random, on the
  ablation concept, each with the same one-unit time budget.
- The selection test (issue 3): at n = `subset`, over `selection_concepts` x `selection_seeds`,
  cluster vs random; the seed drives both the selection (K-means init, or the random draw) and
  training. Reported per run and as means, with how often cluster beat random.
"""

from __future__ import annotations

import statistics
from typing import Any

from e2gan.bench.context import BenchContext
from e2gan.bench.plots import line_chart
from e2gan.bench.report import METRIC_HEADERS, fmt, markdown_table, metric_cells
from e2gan.bench.runs import execute
from e2gan.bench.section_main import e2gan_spec
from e2gan.bench.settings import parse_concept

METHODS = ("cluster", "random")


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _row(result: dict[str, Any], data: str, method: str, pairs: int, seed: int) -> dict[str, Any]:
    return {"concept": data, "method": method, "pairs": pairs, "seed": seed,
            **{k: result.get(k) for k in ("fid", "kid", "kid_std", "psnr", "ssim", "mae", "steps",
                                          "seconds")}}


def run(context: BenchContext) -> dict[str, Any]:
    s = context.settings
    curve: list[dict[str, Any]] = []
    available = len(context.data.dataset(*parse_concept(s.ablation_concept)).split("train"))
    sizes = [n for n in s.data_sizes if n <= available]
    if len(sizes) < len(s.data_sizes):
        context.note(f"data curve: sizes above the {available} training pairs were skipped")
    for n in sizes:
        for method in METHODS:
            result = execute(context, e2gan_spec(context, s.ablation_concept, pairs=n, method=method,
                                                 steps=s.selection_steps))
            curve.append(_row(result, s.ablation_concept, method, n, s.seed))
    grid: list[dict[str, Any]] = []
    for data in s.selection_concepts:
        for seed in s.selection_seeds:
            for method in METHODS:
                result = execute(context, e2gan_spec(context, data, seed=seed, method=method,
                                                     steps=s.selection_steps))
                grid.append(_row(result, data, method, s.subset, seed))
    summary = summarise(grid)
    plots = []
    for metric in ("fid", "kid"):
        series = {m: [next(r[metric] for r in curve if r["pairs"] == n and r["method"] == m)
                      for n in sizes] for m in METHODS}
        if any(v is not None for values in series.values() for v in values):
            chart = line_chart(context.report_dir / f"data_{metric}.png",
                               f"{metric.upper()} vs training pairs ({s.ablation_concept})",
                               "training pairs", metric.upper(), sizes, series)
            plots.append(chart.name)
    return {"curve": curve, "grid": grid, "summary": summary, "plots": plots,
            "markdown": markdown(curve, grid, summary, s)}


def summarise(grid: list[dict[str, Any]]) -> dict[str, Any]:
    """Means per method, and per (concept, seed) cell whether cluster beat random."""
    means = {method: {metric: _mean([r[metric] for r in grid if r["method"] == method])
                      for metric in ("fid", "kid", "psnr", "ssim")} for method in METHODS}
    wins: dict[str, int] = {"fid": 0, "kid": 0}
    cells = 0
    for cluster in (r for r in grid if r["method"] == "cluster"):
        random_row = next(r for r in grid if r["method"] == "random" and r["concept"] == cluster["concept"]
                          and r["seed"] == cluster["seed"])
        cells += 1
        for metric in wins:
            if cluster[metric] is not None and random_row[metric] is not None:
                wins[metric] += cluster[metric] < random_row[metric]
    better = {metric: (None if means["cluster"][metric] is None else
                       means["cluster"][metric] < means["random"][metric]) for metric in ("fid", "kid")}
    return {"means": means, "cluster_wins": wins, "cells": cells, "cluster_better_on_mean": better}


def markdown(curve, grid, summary, s) -> str:
    headers = ["concept", "pairs", "selection", "seed", *METRIC_HEADERS, "steps"]
    render = lambda rows: markdown_table(headers, [[r["concept"], r["pairs"], r["method"], r["seed"],
                                                    *metric_cells(r), r["steps"]] for r in rows])
    means = summary["means"]
    budget = (f"{s.selection_steps} steps (a fixed count, so the machine's load cannot favour "
              f"one selection)" if s.selection_steps else f"{s.unit_seconds:g} s")
    lines = [f"Every run: E2GAN (base + LoRA, searched ranks) for {budget}; judged on up "
             f"to {s.eval_images} held-out pairs.", "",
             f"**Data curve** ({s.ablation_concept}, seed {s.seed}):", "", render(curve), "",
             f"**Similarity clustering vs random at {s.subset} pairs** (issue 3: "
             f"{len(s.selection_concepts)} concepts x {len(s.selection_seeds)} seeds):", "",
             render(grid), "",
             markdown_table(["selection", "mean FID", "mean KID×10³", "mean PSNR", "mean SSIM"], [
                 [m, fmt(means[m]["fid"], ".2f"),
                  fmt(None if means[m]["kid"] is None else means[m]["kid"] * 1000, ".2f"),
                  fmt(means[m]["psnr"], ".2f"), fmt(means[m]["ssim"], ".3f")] for m in METHODS]), ""]
    for metric, better in summary["cluster_better_on_mean"].items():
        if better is None:
            lines.append(f"- {metric.upper()}: not measured.")
            continue
        lines.append(f"- {metric.upper()}: cluster selection is {'better' if better else 'not better'} "
                     f"on the mean; it beat random in {summary['cluster_wins'][metric]} of "
                     f"{summary['cells']} (concept, seed) cells.")
    return "\n".join(lines)

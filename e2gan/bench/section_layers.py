"""Section 3, which layers to tune (paper Fig. 4): LoRA on every crucial-layer group, then with
each group left untuned in turn (sampling convs, attention projections, MLP/projections), on the
ablation concept with the searched ranks, the same pairs and the same budget."""

from __future__ import annotations

from typing import Any

from e2gan.bench.context import BenchContext
from e2gan.bench.report import METRIC_HEADERS, best_rows, markdown_table, metric_cells
from e2gan.bench.runs import execute, lora_parameter_count
from e2gan.bench.section_main import e2gan_spec
from e2gan.models.lora import LAYER_GROUPS


def run(context: BenchContext) -> dict[str, Any]:
    s = context.settings
    rows = []
    for frozen in (None, *LAYER_GROUPS):
        spec = e2gan_spec(context, s.ablation_concept, frozen_group=frozen)
        result = execute(context, spec)
        tuned = [group for group in LAYER_GROUPS if group != frozen]
        rows.append({"setting": f"without {frozen}" if frozen else "all groups",
                     "frozen": frozen, "tuned": tuned,
                     "lora_parameters": lora_parameter_count(context, spec),
                     **{k: result.get(k) for k in ("fid", "kid", "kid_std", "psnr", "ssim", "steps")}})
    table = markdown_table(["LoRA on", "left untuned", "LoRA params", *METRIC_HEADERS, "steps"],
                           [[" + ".join(r["tuned"]), r["frozen"] or "–", f"{r['lora_parameters']:,}",
                             *metric_cells(r), r["steps"]] for r in rows])
    text = (f"{table}\n\n{s.ablation_concept}, {s.subset} clustered pairs, {s.unit_seconds:g} s "
            "each; the concept's text tokens are trained in every row. Groups: "
            + "; ".join(f"{name}: `{pattern}`" for name, pattern in LAYER_GROUPS.items()) + ". "
            "The paper (Fig. 4) finds the sampling layers the most crucial to tune.")
    return {"rows": rows, "markdown": text + best_rows(rows, "setting"), "plots": []}

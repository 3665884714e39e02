"""Section 2, LoRA rank schemes (paper Tab. 5): the base's searched ranks vs rank 1 everywhere vs
rank 4 everywhere vs random ranks (each crucial layer draws from `rank_choices`, up to its cap),
each an E2GAN fine-tune of the ablation concept on the same clustered pairs and budget."""

from __future__ import annotations

from typing import Any

from e2gan.bench.context import BenchContext
from e2gan.bench.report import METRIC_HEADERS, best_rows, markdown_table, metric_cells
from e2gan.bench.runs import execute, lora_parameter_count
from e2gan.bench.section_main import e2gan_spec

SCHEMES = ("searched", "all-1", "all-4", "random")


def run(context: BenchContext) -> dict[str, Any]:
    s = context.settings
    rows = []
    for scheme in SCHEMES:
        spec = e2gan_spec(context, s.ablation_concept, ranks=scheme)
        result = execute(context, spec)
        rows.append({"scheme": scheme, "lora_parameters": lora_parameter_count(context, spec),
                     **{k: result.get(k) for k in ("trainable_parameters", "fid", "kid", "kid_std",
                                                   "psnr", "ssim", "steps", "stored_bytes")}})
    table = markdown_table(["ranks", "LoRA params", "trainable (+ concept tokens)", *METRIC_HEADERS,
                            "steps"],
                           [[r["scheme"], f"{r['lora_parameters']:,}", f"{r['trainable_parameters']:,}",
                             *metric_cells(r), r["steps"]] for r in rows])
    text = (f"{table}\n\n{s.ablation_concept}, {s.subset} clustered pairs, {s.unit_seconds:g} s each. "
            "'searched' is the base's own rank table (`ranks.json`, Algorithm 1); with the shipped "
            "base it is rank 8 on every crucial layer (see its model card), so it is also the "
            f"largest scheme here. Random ranks draw from {s.rank_choices} per layer (seeded). The "
            "paper (Tab. 5) finds its searched ranks best at fewer parameters than a uniform rank.")
    return {"rows": rows, "markdown": text + best_rows(rows, "scheme"), "plots": []}

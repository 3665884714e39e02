"""Section 4, which base model (paper Tab. 4 and App. D.2): the ablation concept fine-tuned (LoRA,
the shipped base's searched ranks, the same clustered pairs and budget) from

- the shipped multi-concept base (13 concepts, about 87 CPU minutes on packaged photos);
- a multi-concept base, a single-concept base and an autoencoder base (identity pairs: the edit
  is the photo itself), each trained here from scratch for the same `base_factor` units on the
  scenes training photos, so those three differ only in what they learned from.

The shipped base had far more training than the three made here; compare the three with each
other for the effect of the base's data, and with the shipped one for the effect of training.
"""

from __future__ import annotations

import shutil

from pathlib import Path
from typing import Any

from e2gan.bench.context import SHIPPED_BASE, BenchContext
from e2gan.bench.report import METRIC_HEADERS, best_rows, markdown_table, metric_cells
from e2gan.bench.runs import execute
from e2gan.bench.section_main import e2gan_spec
from e2gan.checkpoint import load_generator
from e2gan.training.recipes import FULL_LEARNING_RATE, TrainingSettings, train_base
from e2gan.training.settings import wall_clock_steps

VARIANTS = ("multi", "single", "autoencoder")


def _base_datasets(context: BenchContext, variant: str):
    s = context.settings
    if variant == "multi":
        return [context.data.dataset("scenes", name) for name in s.base_concepts]
    if variant == "single":
        return [context.data.dataset("scenes", s.single_base_concept)]
    return [context.data.identity_dataset("scenes")]


def train_variant(context: BenchContext, variant: str) -> dict[str, Any]:
    """Train (or reuse) one base variant and register it as `bench-<variant>`."""
    s = context.settings
    shipped = load_generator(context.base_dir(SHIPPED_BASE)).info
    spec = {"base_variant": variant, "seconds": s.base_seconds, "generator": shipped["config"],
            "concepts": s.base_concepts if variant == "multi" else
            [s.single_base_concept] if variant == "single" else ["identity"], **s.data_key()}

    def train(folder: Path) -> dict[str, Any]:
        context.log(f"base {variant}: training for {s.base_seconds:g} s")
        settings = TrainingSettings(size=s.size, steps=wall_clock_steps(), batch_size=s.batch_size,
                                    learning_rate=FULL_LEARNING_RATE, seed=s.seed, device=s.device,
                                    max_seconds=s.base_seconds, checkpoint_every=0)
        outcome = train_base(_base_datasets(context, variant), folder / "model", settings,
                             generator_config=shipped["config"], resume=False)
        shutil.rmtree(folder / "model" / "training_state", ignore_errors=True)  # timed out: kept
        return {"steps": outcome.result.steps_done, "seconds": round(outcome.result.seconds, 1),
                "pairs": outcome.summary["pairs"]}

    result = context.store.cached(f"base_{variant}", spec, train)
    name = f"bench-{variant}"
    context.bases[name] = context.store.folder(f"base_{variant}", spec) / "model"
    return {**result, "name": name}


def run(context: BenchContext) -> dict[str, Any]:
    s = context.settings
    shipped_info = load_generator(context.base_dir()).info.get("training", {})
    rows = [{"base": "shipped multi-concept", "base_steps": shipped_info.get("steps"),
             "base_seconds": None, "base_pairs": shipped_info.get("pairs"),
             **execute(context, e2gan_spec(context, s.ablation_concept))}]
    for variant in VARIANTS:
        base = train_variant(context, variant)
        result = execute(context, e2gan_spec(context, s.ablation_concept, base=base["name"]))
        rows.append({"base": f"{variant} (trained here)", "base_steps": base["steps"],
                     "base_seconds": base["seconds"], "base_pairs": base["pairs"], **result})
    rows = [{k: row.get(k) for k in ("base", "base_steps", "base_seconds", "base_pairs", "fid",
                                      "kid", "kid_std", "psnr", "ssim", "steps")} for row in rows]
    table = markdown_table(["base", "base training steps", "base training time", "base pairs",
                            *METRIC_HEADERS, "fine-tune steps"],
                           [[r["base"], r["base_steps"] or "–",
                             "–" if r["base_seconds"] is None else f"{r['base_seconds']:.0f} s",
                             r["base_pairs"] or "–", *metric_cells(r), r["steps"]] for r in rows])
    text = (f"{table}\n\nEach base then gets the same E2GAN fine-tune: {s.ablation_concept}, "
            f"{s.subset} clustered pairs, {s.unit_seconds:g} s. Multi-concept base here: "
            f"{', '.join(s.base_concepts)}; single-concept: {s.single_base_concept}; autoencoder: "
            "identity pairs of the same photos. The shipped base's training (see its model card) "
            "was far longer than the bases made here, so only the last three rows compare like "
            "with like. The paper (Tab. 4, App. D.2) finds the multi-concept base best and the "
            "autoencoder base worst.")
    return {"rows": rows, "markdown": text + best_rows(rows, "base"), "plots": []}

"""One training run of the benchmark, trained on a wall-clock budget and judged on held-out pairs.

A run is a `RunSpec`: which recipe (LoRA or full fine-tune of a base, pix2pix from scratch),
which data (a concept, all training pairs or a selected subset), which ranks, which seed and how
many seconds. `milestones` lets one run be judged part way (pix2pix at E2GAN's budget and at five
times it): training stops at each milestone, is judged, and continues from its saved state.

Training FLOPs are counted, not estimated: one optimisation step of the same recipe (D step and
G step, forward and backward, at the bench's batch and size) runs under torch's
`FlopCounterMode`, and a run's training FLOPs are its steps times that, plus the one-off cost of
setting the job up (a fine-tune's search for its concept's starting tokens, whose seconds also
count against its time budget). Convention: torch's
counter (2 FLOPs per multiply-add; a transposed conv counted at its input resolution, the
arithmetic actually done); data loading, augmentation and the optimiser update are not counted.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.flop_counter import FlopCounterMode

from e2gan.models import lora
from e2gan.bench.context import SHIPPED_BASE, BenchContext
from e2gan.bench.judge import judge, pipeline_maker
from e2gan.bench.settings import parse_concept
from e2gan.checkpoint import load_generator, load_rank_table
from e2gan.data.dataset import PairDataset
from e2gan.errors import E2GANError
from e2gan.files import atomic_write_json
from e2gan.paths import default_base_dir
from e2gan.inference.pipeline import EditPipeline
from e2gan.curation.selection import select
from e2gan.teachers import BuiltinTeacher
from e2gan.training.job import SliceEnded, TrainingJob
from e2gan.training.recipes import (FULL_LEARNING_RATE, LORA_LEARNING_RATE, TrainingSettings,
                                    default_lora_ranks, finetune_job, pix2pix_job)
from e2gan.training.settings import LORA_EMA_DECAY, TEXTURE_LORA_RANKS, wall_clock_steps

KINDS = ("lora", "full", "pix2pix")


@dataclass
class RunSpec:
    kind: str
    data: str  # "scenes:winter"
    seconds: list[float]  # cumulative training budgets at which the run is judged
    selection: str = "all"  # "all", "cluster" or "random"
    pairs: int | None = None  # subset size for cluster/random
    seed: int = 0
    ranks: str = "searched"  # LoRA: "searched", "all-<r>", "random"
    frozen_group: str | None = None  # LoRA: a crucial-layer group left untuned
    base: str = SHIPPED_BASE
    steps: int | None = None  # a fixed step count instead of the wall-clock budget (one judgement)

    def __post_init__(self) -> None:
        if self.steps is not None and len(self.seconds) != 1:
            raise E2GANError("a run with a fixed step count is judged once")
        if self.kind not in KINDS:
            raise E2GANError(f"unknown run kind {self.kind!r}; known: {', '.join(KINDS)}")
        if self.selection != "all" and not self.pairs:
            raise E2GANError("a selected subset needs a number of pairs")

    def slug(self) -> str:
        parts = [self.kind, self.data.replace(":", "-")]
        if self.selection != "all":
            parts.append(f"{self.selection}{self.pairs}")
        if self.kind == "lora":
            parts.append(self.ranks)
        if self.frozen_group:
            parts.append(f"no-{self.frozen_group}")
        if self.base != SHIPPED_BASE:
            parts.append(self.base)
        if self.steps is not None:
            parts.append(f"{self.steps}steps")
        parts.append(f"s{self.seed}")
        return "_".join(parts)


def resolve_ranks(context: BenchContext, spec: RunSpec) -> dict[str, int]:
    """The per-layer rank table a LoRA run trains with."""
    generator = load_generator(context.base_dir(spec.base)).generator
    layers = lora.crucial_layers(generator)
    if spec.ranks == "searched":  # the LoRA recipe's: the searched table and the texture layers
        if load_rank_table(context.base_dir(SHIPPED_BASE)) is None:
            context.note("the base has no searched rank table (ranks.json): 'searched' used rank 4 "
                         "on every crucial layer")
        ranks = default_lora_ranks(generator, context.base_dir(SHIPPED_BASE))
    elif spec.ranks.startswith("all-"):
        ranks = dict.fromkeys(layers, int(spec.ranks.removeprefix("all-")))
    elif spec.ranks == "random":
        # Each layer draws a rank from the choices (up to its own cap), seeded by the run's seed.
        rng = np.random.default_rng(1000 + spec.seed)
        modules = dict(generator.named_modules())
        ranks = {name: min(int(rng.choice(context.settings.rank_choices)), lora.rank_cap(modules[name]))
                 for name in layers}
    else:
        raise E2GANError(f"unknown rank scheme {spec.ranks!r}")
    if spec.frozen_group:
        ranks = {name: rank for name, rank in ranks.items()  # texture layers are no group's
                 if name not in layers or lora.group_of(name) != spec.frozen_group}
    return ranks


def selected_ids(dataset: PairDataset, spec: RunSpec) -> list[str] | None:
    if spec.selection == "all":
        return None
    return select(dataset, spec.pairs, spec.selection, spec.seed).ids


def _training_settings(context: BenchContext, spec: RunSpec, steps: int | None = None) -> TrainingSettings:
    s = context.settings
    lora = spec.kind == "lora"
    return TrainingSettings(size=s.size, steps=steps or wall_clock_steps(), batch_size=s.batch_size,
                            learning_rate=LORA_LEARNING_RATE if lora else FULL_LEARNING_RATE,
                            ema_decay=LORA_EMA_DECAY if lora else 0.0,
                            seed=spec.seed, device=s.device, checkpoint_every=0)


def _job(context: BenchContext, spec: RunSpec, dataset: PairDataset, ids: list[str] | None,
         folder: Path, settings: TrainingSettings) -> TrainingJob:
    base_dir = context.base_dir(spec.base)
    if spec.kind == "lora":
        return finetune_job(base_dir, dataset, folder / "adapter.safetensors", settings, mode="lora",
                            ranks=resolve_ranks(context, spec), ids=ids)
    if spec.kind == "full":
        return finetune_job(base_dir, dataset, folder / "model", settings, mode="full", ids=ids)
    if ids is not None:
        raise E2GANError("pix2pix trains on all training pairs in this benchmark")
    return pix2pix_job(dataset, folder / "model", settings)


def step_flops(context: BenchContext, spec: RunSpec) -> tuple[float, float]:
    """FLOPs of one optimisation step of `spec`'s recipe (see the module docstring), and the
    one-off FLOPs of setting the job up (a fine-tune's concept-start search); cached."""
    # A step's FLOPs depend on the model, the ranks, the batch and the size, not on the concept or
    # the pairs: one probe per recipe serves every run of it.
    probe = RunSpec(spec.kind, spec.data, [0.0], spec.selection, spec.pairs, 0, spec.ranks,
                    spec.frozen_group, spec.base)
    key = {"flops_probe": {k: v for k, v in asdict(probe).items()
                           if k not in ("data", "selection", "pairs", "seed", "seconds")},
           "size": context.settings.size, "batch_size": context.settings.batch_size,
           **context.base_key(spec.base)}

    def count(folder: Path) -> dict[str, Any]:
        dataset = context.data.dataset(*parse_concept(spec.data))
        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            # Building a fine-tune searches its concept's starting tokens (forward passes): a
            # one-off cost, counted apart from the step.
            with FlopCounterMode(display=False) as setup:
                job = _job(context, probe, dataset, selected_ids(dataset, probe), Path(scratch),
                           _training_settings(context, probe, steps=1))
            with FlopCounterMode(display=False) as step:
                job.trainer.run()
        return {"flops_per_step": step.get_total_flops(), "setup_flops": setup.get_total_flops()}

    key["counted"] = "step and setup apart"  # earlier probes counted the setup inside the step
    slug = "flops_" + "_".join(str(v) for v in key["flops_probe"].values() if v)
    counted = context.store.cached(slug, key, count)
    return float(counted["flops_per_step"]), float(counted["setup_flops"])


def _stored_bytes(spec: RunSpec, folder: Path) -> int:
    if spec.kind == "lora":
        return (folder / "adapter.safetensors").stat().st_size
    return (folder / "model" / "model.safetensors").stat().st_size


def result_folder(context: BenchContext, result: dict[str, Any]) -> Path:
    return context.store.folder(result["slug"], result["spec"])


def maker_for(context: BenchContext, spec: RunSpec, folder: Path, prompt: str):
    """The trained model of a run as an image maker (what the judge and the pictures use)."""
    device = context.settings.device
    if spec.kind == "lora":
        return pipeline_maker(context.base_dir(spec.base), prompt, folder / "adapter.safetensors",
                              device=device)
    return pipeline_maker(folder / "model", prompt if spec.kind == "full" else "", device=device)


def base_maker(context: BenchContext, spec: RunSpec, folder: Path, prompt: str):
    """The base with a LoRA run's adapter switched off: the concept's learned tokens, no LoRA.
    What the base alone does with the concept (the studio's "adapter off" row)."""
    pipeline = EditPipeline.from_pretrained(context.base_dir(spec.base), device=context.settings.device)
    pipeline.load_adapter(folder / "adapter.safetensors")
    pipeline.use_adapter(None)
    return lambda images: pipeline(images, prompt)


def run_key(context: BenchContext, spec: RunSpec) -> dict[str, Any]:
    """What a cached run must match to be reused: the spec, the data settings, and the weights of
    the base it starts from (none for pix2pix)."""
    spec_dict = asdict(spec)
    if spec.steps is None:  # wall-clock runs keep the spec (and cache key) they had before `steps`
        del spec_dict["steps"]
    spec_dict["settings"] = context.settings.data_key()
    spec_dict["teacher"] = BuiltinTeacher().parameters()  # its version decides the pairs
    if spec.kind == "pix2pix":
        # Trained from scratch: no base is read, so `--base` must not retrain it. The shipped
        # base's path stays in its key, whatever `--base` says, so that the runs cached before
        # bases were keyed by their weights are found again.
        spec_dict["base_path"] = str(default_base_dir().resolve())
    else:
        spec_dict.update(context.base_key(spec.base))
    if spec.ranks == "random":
        spec_dict["rank_choices"] = context.settings.rank_choices
    if spec.kind == "lora" and LORA_EMA_DECAY:  # a new recipe: E2GAN runs made without it retrain
        spec_dict["ema_decay"] = LORA_EMA_DECAY
    if spec.kind == "lora" and spec.ranks == "searched":  # likewise the texture layers
        spec_dict["texture_lora_ranks"] = TEXTURE_LORA_RANKS
    return spec_dict


def execute(context: BenchContext, spec: RunSpec) -> dict[str, Any]:
    """Train and judge `spec` (or read its stored result). The result's `milestones` hold one
    judgement per budget in `spec.seconds`; its top-level metrics are the last one's."""
    spec_dict = run_key(context, spec)

    def run(folder: Path) -> dict[str, Any]:
        settings = context.settings
        dataset = context.data.dataset(*parse_concept(spec.data))
        ids = selected_ids(dataset, spec)
        flops, setup_flops = step_flops(context, spec)
        partial_path = folder / "milestones.json"
        milestones = json.loads(partial_path.read_text()) if partial_path.is_file() else []
        # One trainer for all the milestones: each budget trains on from where the last ended.
        steps_target = spec.steps if spec.steps is not None else wall_clock_steps()
        job = _job(context, spec, dataset, ids, folder, _training_settings(context, spec, steps_target))
        # A fine-tune's search for its starting tokens happens before training, on the same
        # clock: it counts against the budget, so E2GAN's "60 s" is 60 s in all.
        setup_seconds = float(job.details.get("concept_start_seconds", 0.0))
        if milestones:  # judged before the run was interrupted: continue from its saved state
            job.trainer.resume()
        start = milestones[-1]["seconds"] if milestones else setup_seconds
        budgets = spec.seconds[len(milestones):]
        if spec.steps is not None:  # one judgement, at the step count
            budgets = [None] * len(budgets)
        context.log(f"train {spec.slug()}: " + (f"{spec.steps} steps" if spec.steps is not None
                                                 else f"to {', '.join(f'{b:.0f}' for b in budgets)} s"))

        def judge_milestone(ended: SliceEnded) -> None:
            steps = ended.result.steps_done
            metrics = judge(maker_for(context, spec, folder, dataset.info.prompt), dataset,
                            settings.size, settings.eval_images, settings.fid, settings.device)
            milestones.append({"budget_seconds": budgets[ended.index],
                               "seconds": round(ended.seconds, 1), "steps": steps, "images_seen": steps * settings.batch_size,
                               "setup_seconds": setup_seconds,
                               "train_flops": steps * flops + setup_flops,
                               "trainable_parameters": job.trainable_parameters,
                               "stored_bytes": _stored_bytes(spec, folder), **metrics})
            atomic_write_json(partial_path, milestones)

        job.run_in_slices(budgets, judge_milestone, start_seconds=start)
        job.trainer.forget_state()  # optimiser moments: no longer needed
        return {"slug": spec.slug(), "milestones": milestones, **milestones[-1],
                "flops_per_step": flops, "train_pairs": len(ids) if ids else
                len(dataset.split("train")), "prompt": dataset.info.prompt}

    return context.store.cached(spec.slug(), spec_dict, run)


def lora_parameter_count(context: BenchContext, spec: RunSpec) -> int:
    generator = load_generator(context.base_dir(spec.base)).generator
    return lora.lora_parameter_count(generator, resolve_ranks(context, spec))


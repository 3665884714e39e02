"""The end-to-end demo: a concept the shipped base never saw, distilled two ways, judged side by side.

    built-in teacher pairs -> random 100-pair subset -> LoRA fine-tune from the base
                           -> pix2pix from scratch on all training pairs, same wall-clock budget
                           -> both judged on the held-out pairs -> table + picture

Everything runs offline on a CPU. The same command with `--size 256 --device cuda` is the paper's
setting on a GPU.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from e2gan.checkpoint import load_generator
from e2gan.data.dataset import write_subset
from e2gan.data.generate import generate_pairs
from e2gan.data.sources import open_source
from e2gan.errors import E2GANError
from e2gan.evaluation.heldout import evaluate_pairs
from e2gan.evaluation.pictures import held_out_sheet
from e2gan.files import atomic_save_image, atomic_write_json, atomic_write_text
from e2gan.paths import default_base_dir
from e2gan.inference.pipeline import EditPipeline
from e2gan.curation.selection import select_pairs
from e2gan.teachers import create_teacher, resolve_builtin_concept
from e2gan.text import concept_key
from e2gan.training.recipes import (FULL_LEARNING_RATE, LORA_EMA_DECAY, LORA_LEARNING_RATE, TrainingSettings,
                                    finetune, train_pix2pix)
from e2gan.training.settings import wall_clock_steps


@dataclass
class DemoSettings:
    concept: str = "winter"
    size: int = 128
    pairs: int = 300
    subset: int = 100
    finetune_minutes: float = 5.0
    seed: int = 0
    base: str | None = None
    device: str = "auto"
    source: str = "builtin"
    test_fraction: float = 0.2
    batch_size: int = 4


def _budget_settings(settings: DemoSettings, learning_rate: float,
                     ema_decay: float = 0.0) -> TrainingSettings:
    # A step budget far beyond what fits: the wall-clock limit is what ends both trainings, so the
    # two methods get exactly the same time.
    return TrainingSettings(size=settings.size, steps=wall_clock_steps(), batch_size=settings.batch_size,
                            learning_rate=learning_rate, ema_decay=ema_decay, seed=settings.seed,
                            device=settings.device, max_seconds=settings.finetune_minutes * 60,
                            checkpoint_every=0)


def run_demo(out_dir: str, settings: DemoSettings,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    log = log or (lambda line: None)
    out = Path(out_dir)
    base_dir = Path(settings.base) if settings.base else default_base_dir()
    base_info = load_generator(base_dir).info
    concept = resolve_builtin_concept(settings.concept)
    seen = base_info.get("training", {}).get("concepts", [])
    if concept_key(concept.prompt) in {concept_key(c) for c in seen}:
        raise E2GANError(f"the base model was trained on {concept.name!r}; pick a concept it never "
                         f"saw (it saw: {', '.join(seen)})")
    started = time.perf_counter()

    log(f"1/5 pairs: built-in teacher, concept {concept.name!r}, {settings.pairs} source images")
    source = open_source(settings.source, count=settings.pairs, size=max(256, settings.size),
                         seed=settings.seed + 7)
    pairs = generate_pairs(create_teacher("builtin"), source, concept.prompt, out / "pairs",
                           concept=concept.name, seed=settings.seed,
                           test_fraction=settings.test_fraction)
    dataset = pairs.dataset
    train_count, test_count = len(dataset.split("train")), len(dataset.split("test"))

    log(f"2/5 subset: {settings.subset} of {train_count} training pairs (random)")
    ids = select_pairs(dataset, min(settings.subset, train_count), "random", settings.seed)
    subset = write_subset(dataset, ids + [r.id for r in dataset.split("test")], out / "subset",
                          overwrite=True)

    log(f"3/5 E2GAN: LoRA fine-tune of the base on {len(ids)} pairs for "
        f"{settings.finetune_minutes:g} min")
    lora_outcome = finetune(base_dir, subset, out / f"{concept.name}.safetensors",
                            _budget_settings(settings, LORA_LEARNING_RATE, LORA_EMA_DECAY),
                            mode="lora", resume=False)
    log(f"4/5 pix2pix: 9-block generator from scratch on all {train_count} training pairs for "
        f"{settings.finetune_minutes:g} min")
    pix2pix_outcome = train_pix2pix(dataset, out / "pix2pix",
                                    _budget_settings(settings, FULL_LEARNING_RATE), resume=False)

    log(f"5/5 evaluation on {test_count} held-out pairs")
    e2gan_pipeline = EditPipeline.from_pretrained(base_dir, device=settings.device)
    e2gan_pipeline.load_adapter(lora_outcome.output)
    pix2pix_pipeline = EditPipeline.from_pretrained(out / "pix2pix", device=settings.device)
    prompt = concept.prompt
    makers = {
        "E2GAN (base + LoRA)": lambda images: e2gan_pipeline(images, prompt),
        "pix2pix-9RB (scratch)": lambda images: pix2pix_pipeline(images, ""),
        "no edit (source as is)": lambda images: list(images),
    }
    rows = []
    for name, maker in makers.items():
        metrics = evaluate_pairs(maker, dataset, "test", size=settings.size)
        rows.append({"model": name, **metrics})
    rows[0].update(trainable_parameters=lora_outcome.trainable_parameters,
                   stored_bytes=lora_outcome.output.stat().st_size,
                   train_seconds=round(lora_outcome.result.seconds, 1),
                   train_steps=lora_outcome.result.steps_done, train_pairs=len(ids))
    pix2pix_bytes = (out / "pix2pix" / "model.safetensors").stat().st_size
    rows[1].update(trainable_parameters=pix2pix_outcome.trainable_parameters,
                   stored_bytes=pix2pix_bytes,
                   train_seconds=round(pix2pix_outcome.result.seconds, 1),
                   train_steps=pix2pix_outcome.result.steps_done, train_pairs=train_count)
    rows[2].update(trainable_parameters=0, stored_bytes=0, train_seconds=0.0, train_steps=0,
                   train_pairs=0)
    picture = held_out_sheet(dataset, settings.size, [("teacher", None), *makers.items()])
    atomic_save_image(out / "comparison.png", picture)
    report = {"concept": concept.name, "prompt": prompt, "base": str(base_dir),
              "base_sha256": base_info["sha256"], "settings": asdict(settings),
              "pairs": {"train": train_count, "test": test_count}, "rows": rows,
              "comparison": str(out / "comparison.png"),
              "total_seconds": round(time.perf_counter() - started, 1)}
    table = format_table(rows)
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", f"# E2GAN demo: {concept.name}\n\n{table}\n")
    log(table)
    report["table"] = table
    return report


def format_table(rows: list[dict[str, Any]]) -> str:
    header = "| model | PSNR dB | SSIM | MAE | trainable params | stored | train time | steps | train pairs |"
    lines = [header, "|" + "---|" * 9]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['psnr']:.2f} | {row['ssim']:.3f} | {row['mae']:.2f} | "
            f"{row['trainable_parameters']:,} | {row['stored_bytes'] / 1e6:.2f} MB | "
            f"{row['train_seconds']:.0f} s | {row['train_steps']} | {row['train_pairs']} |")
    return "\n".join(lines)

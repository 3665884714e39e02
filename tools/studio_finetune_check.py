"""The studio's default CPU fine-tune on a concept (winter, or $CONCEPT), on several bases back to
back.

    [CONCEPT=risograph] python tools/studio_finetune_check.py OUT MINUTES NAME=BASE_DIR [...]

150 built-in pairs (as the studio makes them), 100 chosen by clustering, LoRA (the base's
ranks.json) at lr 3e-3 (or $LORA_LR) with the studio's EMA (or $LORA_EMA), batch 4, MINUTES at 128 px per base; then PSNR / SSIM /
MAE / FID / KID on the held-out pairs for each base + adapter and for "no edit", written to
OUT/results.json, and OUT/compare.png (source | teacher | each base + adapter).
With REUSE=1, adapters already in OUT are judged again without retraining.
"""
import json
import os
import sys
from pathlib import Path
from e2gan.checkpoint import read_adapter
from e2gan.data.dataset import PairDataset
from e2gan.data.generate import generate_pairs
from e2gan.data.sources import open_source
from e2gan.evaluation.pictures import held_out_sheet
from e2gan.evaluation.heldout import evaluate_pairs
from e2gan.inference.pipeline import EditPipeline
from e2gan.curation.selection import select
from e2gan.teachers import create_teacher, resolve_builtin_concept
from e2gan.training.recipes import LORA_EMA_DECAY, TrainingSettings, finetune

out = Path(sys.argv[1]); minutes = float(sys.argv[2]); bases = dict(a.split("=") for a in sys.argv[3:])
out.mkdir(parents=True, exist_ok=True)
pairs = out / "pairs"
concept = resolve_builtin_concept(os.environ.get("CONCEPT", "winter"))
if not (pairs / "dataset.json").is_file() or not PairDataset.open(pairs).info.complete:
    generate_pairs(create_teacher("builtin"), open_source("builtin", count=150, size=256, seed=7),
                   concept.prompt, pairs, concept=concept.name, seed=0)
dataset = PairDataset.open(pairs)
ids = select(dataset, 100, "cluster", seed=0).ids
prompt = dataset.info.prompt
results, columns = {}, [("teacher", None)]
for name, base in bases.items():
    settings = TrainingSettings(size=128, steps=1_000_000, batch_size=4, learning_rate=float(os.environ.get("LORA_LR", "3e-3")),
                                ema_decay=float(os.environ.get("LORA_EMA", LORA_EMA_DECAY)),
                                max_seconds=minutes * 60, checkpoint_every=0)
    adapter = out / f"{concept.name}_{name}.safetensors"
    if os.environ.get("REUSE") == "1" and adapter.is_file():
        training = read_adapter(adapter).metadata["training"]
        steps, seconds = training["steps"], training["seconds"]
    else:
        outcome = finetune(base, dataset, adapter, settings, ids=ids, resume=False)
        steps, seconds = outcome.result.steps_done, outcome.result.seconds
    pipeline = EditPipeline.from_pretrained(base, device="cpu")
    pipeline.load_adapter(adapter)
    make = lambda images, p=pipeline: p(images, prompt)
    row = evaluate_pairs(make, dataset, "test", size=128, fid=True)
    results[name] = {"steps": steps, "seconds": round(seconds, 1),
                     **{k: row[k] for k in row if isinstance(row[k], (int, float))}}
    print(name, json.dumps(results[name]), flush=True)
    columns.append((f"{name} + LoRA", make))
results["no edit"] = {k: v for k, v in evaluate_pairs(lambda images: list(images), dataset, "test",
                                                      size=128, fid=True).items() if isinstance(v, (int, float))}
print("no edit", json.dumps(results["no edit"]))
(out / "results.json").write_text(json.dumps(results, indent=1))
held_out_sheet(dataset, 128, columns, count=6).save(out / "compare.png")

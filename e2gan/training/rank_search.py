"""LoRA rank search (Algorithm 1 of the paper's appendix).

For each sample concept: every crucial layer starts at rank 1; train for a round of steps;
evaluate on the concept's held-out pairs; double every layer's rank (each capped by its own
threshold, `lora.rank_cap`) and train on. The ranks of the best-scoring round are that concept's;
the per-layer maximum over the sample concepts becomes the fixed rank table that every new concept
then uses, so fine-tuning a new concept needs no search.

Growing a rank mid-training keeps what was learned: the old low-rank factors are copied into the
first rows/columns of the larger ones and the new B columns start at zero, so the function is
unchanged at the moment of growth (the paper's "upscale the rank every E epochs").

What a round is judged by is `RankSearchSettings.score`: "fid" or "kid" as in the paper (stable
only with ~100 held-out pairs per round, `eval_limit`, which costs a CPU round about a minute),
or "mae", the paired mean absolute error against the teacher's edits (cheap, and the default for
that reason). Lower is better for all three. Pass `score=` for any other callable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

from torch import nn

from e2gan.models import lora
from e2gan.checkpoint import load_generator
from e2gan.data.dataset import PairDataset
from e2gan.errors import E2GANError
from e2gan.evaluation.heldout import evaluate_pairs
from e2gan.inference.pipeline import EditPipeline
from e2gan.text import concept_key
from e2gan.devices import resolve_device
from e2gan.training.recipes import finetune_parts
from e2gan.training.settings import TrainingSettings
from e2gan.training.trainer import Trainer


SCORES = {"mae": "paired MAE on held-out pairs", "fid": "FID on held-out pairs",
          "kid": "KID on held-out pairs"}


@dataclass
class RankSearchSettings:
    steps_per_round: int = 100
    max_rounds: int = 5
    patience: int = 1  # rounds without improvement before a concept's search stops
    size: int = 128
    batch_size: int = 4
    learning_rate: float = 3e-3  # LoRA's (see training.recipes.LORA_LEARNING_RATE)
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # see e2gan.precision
    eval_limit: int | None = 32
    score: str = "mae"  # one of SCORES: what a round is judged by (lower is better)

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise E2GANError(f"unknown rank-search score {self.score!r}; choose one of "
                             f"{', '.join(SCORES)}")
        if self.score != "mae" and self.eval_limit is not None and self.eval_limit < 2:
            raise E2GANError(f"{self.score.upper()} needs at least 2 held-out pairs per round, "
                             f"got eval_limit={self.eval_limit}")


def grow_adapter(generator: nn.Module, name: str, new_ranks: dict[str, int]) -> None:
    """Replace adapter `name` by one with larger ranks that computes the same function."""
    old_state = lora.adapter_state_dict(generator, name)
    old_ranks = lora.adapter_ranks(generator, name)
    types = lora.layer_types(generator, old_ranks)
    lora.delete_adapter(generator, name)
    lora.add_adapter(generator, name, new_ranks)
    fresh = lora.adapter_state_dict(generator, name)  # new A random, new B zero
    for layer, rank in old_ranks.items():
        a_axis = lora.rank_axis(types[layer], "lora_A")
        a, b = fresh[f"{layer}.lora_A"], fresh[f"{layer}.lora_B"]
        a.narrow(a_axis, 0, rank).copy_(old_state[f"{layer}.lora_A"])
        b.zero_()
        b.narrow(1, 0, rank).copy_(old_state[f"{layer}.lora_B"])
    lora.load_adapter_state_dict(generator, name, fresh)


def _search_concept(base_dir: str, dataset: PairDataset, settings: RankSearchSettings,
                    score: Callable[[EditPipeline, PairDataset], float],
                    on_progress: Callable | None) -> dict[str, Any]:
    from accelerate.utils import set_seed

    set_seed(settings.seed)
    device = resolve_device(settings.device)
    loaded = load_generator(base_dir, with_discriminator=True)
    generator = loaded.generator
    name = concept_key(dataset.info.prompt)
    layers = lora.crucial_layers(generator)
    modules = dict(generator.named_modules())
    caps = {layer: lora.rank_cap(modules[layer]) for layer in layers}
    ranks = {layer: 1 for layer in layers}

    def round_settings(round_index: int) -> TrainingSettings:
        return TrainingSettings(
            size=settings.size, steps=settings.steps_per_round, batch_size=settings.batch_size,
            learning_rate=settings.learning_rate, seed=settings.seed + round_index,
            device=settings.device, precision=settings.precision, checkpoint_every=0)

    # The fine-tune's own set-up (its D, its pairs, the concept's starting tokens, the adapter).
    parts, _ = finetune_parts(loaded, dataset, round_settings(0), "lora", ranks, None, base_dir)
    adapter_weights = {id(p) for n, p in generator.named_parameters() if "lora_" in n}
    text_parameters = [p for p in parts.generator_parameters if id(p) not in adapter_weights]
    rounds: list[dict[str, Any]] = []
    best, since_best = None, 0
    for round_index in range(settings.max_rounds):
        # A round is a fresh trainer: the adapter grew, so its optimiser has new parameters.
        adapter = [p for n, p in generator.named_parameters() if "lora_" in n]
        Trainer(replace(parts, generator_parameters=adapter + text_parameters),
                round_settings(round_index)).run()
        generator.eval()
        pipeline = EditPipeline(loaded, device, settings.precision)
        value = score(pipeline, dataset)
        record = {"round": round_index, "ranks": dict(ranks), "score": value,
                  "lora_parameters": lora.lora_parameter_count(generator, ranks)}
        rounds.append(record)
        if on_progress:
            on_progress({"done": round_index + 1, "total": settings.max_rounds, **record})
        if best is None or value < best["score"]:
            best, since_best = record, 0
        else:
            since_best += 1
        at_cap = all(ranks[layer] >= caps[layer] for layer in layers)
        if since_best >= settings.patience or at_cap:
            break
        new_ranks = {layer: min(ranks[layer] * 2, caps[layer]) for layer in layers}
        grow_adapter(generator, name, new_ranks)
        ranks = new_ranks
    return {"concept": name, "dataset": str(dataset.root), "rounds": rounds, "best": best,
            "caps": caps}


def default_score(settings: RankSearchSettings) -> Callable[[EditPipeline, PairDataset], float]:
    def score(pipeline: EditPipeline, dataset: PairDataset) -> float:
        prompt = dataset.info.prompt
        metrics = evaluate_pairs(lambda images: pipeline(images, prompt), dataset, "test",
                                 size=settings.size, limit=settings.eval_limit,
                                 fid=settings.score != "mae")
        return float(metrics[settings.score])
    return score


def search_ranks(base_dir: str, datasets: list[PairDataset], settings: RankSearchSettings,
                 score: Callable[[EditPipeline, PairDataset], float] | None = None,
                 on_progress: Callable | None = None) -> dict[str, Any]:
    score_name = "custom" if score else f"{SCORES[settings.score]} (lower is better)"
    score = score or default_score(settings)
    per_concept = [_search_concept(base_dir, dataset, settings, score, on_progress)
                   for dataset in datasets]
    layers = list(per_concept[0]["best"]["ranks"])
    chosen = {layer: max(c["best"]["ranks"][layer] for c in per_concept) for layer in layers}
    generator = load_generator(base_dir).generator
    return {"ranks": chosen, "groups": {layer: lora.group_of(layer) for layer in layers},
            "caps": per_concept[0]["caps"],
            "lora_parameters": lora.lora_parameter_count(generator, chosen),
            "score": score_name,
            "settings": asdict(settings), "per_concept": per_concept}


def format_rank_table(result: dict[str, Any]) -> str:
    concepts = [c["concept"] for c in result["per_concept"]]
    header = ["layer", "group", "cap", *concepts, "chosen"]
    rows = [[layer, result["groups"][layer], str(result["caps"][layer]),
             *[str(c["best"]["ranks"][layer]) for c in result["per_concept"]],
             str(rank)] for layer, rank in result["ranks"].items()]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append(f"LoRA parameters with the chosen ranks: {result['lora_parameters']:,}")
    for concept in result["per_concept"]:
        scores = ", ".join(f"r{max(r['ranks'].values())}: {r['score']:.3f}" for r in concept["rounds"])
        lines.append(f"{concept['concept']}: {scores} (best round {concept['best']['round']})")
    return "\n".join(lines)

"""The four ways to train, each a short function that builds a `Trainer` and says what to write:

- `base_job` / `train_base`: one E2GAN generator on many concepts at once (the shared base model).
- `finetune_job` / `finetune`: a new concept from a base, either LoRA on the crucial layers (the
  paper's method) or full fine-tuning of every generator weight (the baseline it is compared with).
- `pix2pix_job` / `train_pix2pix`: the 9-residual-block pix2pix generator from scratch, one concept.

A `*_job` function returns a `TrainingJob` (`e2gan.training.job`: the lifecycle, run in slices by
the studio and the benchmark); the plain functions resume, run to the end and write, returning a `TrainingOutcome` whose
`summary` is what the CLI prints and the model card records.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import ConcatDataset, Dataset

from e2gan.checkpoint import (LoadedGenerator, adapter_from_model, grain_metadata, load_generator,
                              load_rank_table, save_adapter, save_generator)
from e2gan.data.dataset import PairDataset
from e2gan.data.torch_data import IDENTITY_PROMPT, IdentityPairs, PairTensorDataset
from e2gan.errors import E2GANError
from e2gan.models import build_model, lora
from e2gan.text import LearnedConceptEncoder, TextEncoder, concept_key
from e2gan.training.concept_start import MEAN, closest_concept_start
from e2gan.training.events import EventCallback
from e2gan.training.grain_fit import fit_concept_grain
from e2gan.training.job import StopCheck, TrainingJob, TrainingOutcome
from e2gan.training.settings import (FULL_LEARNING_RATE, LORA_EMA_DECAY,  # noqa: F401 (re-exported)
                                     LORA_LEARNING_RATE, TEXTURE_LORA_RANKS, TrainingSettings)
from e2gan.training.trainer import Trainer, TrainingParts


def _tensor_dataset(datasets: list[PairDataset], settings: TrainingSettings,
                    ids: list[str] | None = None) -> Dataset:
    # augment=False: the trainer flips pairs itself, from (seed, step) (see training.trainer).
    parts = [PairTensorDataset(d, "train", settings.size, augment=False, ids=ids) for d in datasets]
    for part in parts:  # on as many threads as the job may use (OMP_NUM_THREADS=1 keeps it to one)
        part.preload(threads=torch.get_num_threads())
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def _check_size(generator: nn.Module, size: int) -> None:
    multiple = generator.size_multiple
    if size % multiple:
        raise E2GANError(f"training size {size} must be a multiple of {multiple} for this model")


def _seed(settings: TrainingSettings) -> None:
    # Before models are built: every process then starts from the same weights.
    from accelerate.utils import set_seed

    set_seed(settings.seed)


def base_job(datasets: list[PairDataset], out_dir: str | os.PathLike, settings: TrainingSettings,
             generator_config: dict | None = None, text_encoder: TextEncoder | None = None,
             init_from: str | os.PathLike | None = None, identity: bool = False) -> TrainingJob:
    """The shared base generator on several concepts' datasets at once. `init_from` starts from a
    saved generator folder's weights (a warm start with new data or settings, not a resume).
    `identity` adds one more concept, IDENTITY_PROMPT, whose edit is the photo itself, with as
    many pairs as an average concept (see IdentityPairs)."""
    if not datasets:
        raise E2GANError("base training needs at least one dataset")
    _seed(settings)
    prompts = [d.info.prompt for d in datasets] + ([IDENTITY_PROMPT] if identity else [])
    if text_encoder is None:
        dim = (generator_config or {}).get("text_dim", 768)
        # Several datasets may share a concept (generated + imported pairs): one table each.
        unique = list({concept_key(prompt): prompt for prompt in prompts}.values())
        text_encoder = LearnedConceptEncoder(embedding_dim=dim, concepts=unique)
    generator = build_model("e2gan", {**(generator_config or {}),
                                      "text_dim": text_encoder.embedding_dim})
    discriminator = build_model("patchgan", {"text_dim": text_encoder.embedding_dim})
    if init_from is not None:
        _warm_start(init_from, generator, discriminator, text_encoder)
    _check_size(generator, settings.size)
    out_dir = Path(out_dir)
    data = _tensor_dataset(datasets, settings)
    if identity:
        data = ConcatDataset([data, IdentityPairs(data, max(1, len(data) // len(datasets)))])
    parameters = list(generator.parameters()) + list(text_encoder.parameters())
    # Each concept's token table trains only in the steps its pairs are in the batch.
    several_tables = isinstance(text_encoder, LearnedConceptEncoder) and len(text_encoder.concepts) > 1
    trainer = Trainer(TrainingParts(generator, discriminator, text_encoder, parameters, data,
                                    partial_gradients=several_tables),
                      settings, state_dir=out_dir / "training_state", log_dir=out_dir / "logs",
                      run_name="train-base")

    def write(summary: dict[str, Any]) -> None:
        save_generator(out_dir, generator.eval(), text_encoder, summary, discriminator)

    return TrainingJob("base", trainer, out_dir, len(data), write,
                       {"concepts": prompts, "datasets": [str(d.root) for d in datasets],
                        **({"init_from": str(init_from)} if init_from else {})})


def _warm_start(folder, generator: nn.Module, discriminator: nn.Module,
                text_encoder: TextEncoder) -> None:
    loaded = load_generator(folder, with_discriminator=True)
    try:
        generator.load_state_dict(loaded.generator.state_dict())
    except RuntimeError:
        raise E2GANError(f"cannot start from {folder}: its generator has another layout than "
                         "the one being trained") from None
    if loaded.discriminator is not None:
        discriminator.load_state_dict(loaded.discriminator.state_dict())
    if isinstance(text_encoder, LearnedConceptEncoder) and isinstance(loaded.text_encoder, LearnedConceptEncoder):
        for key, table in loaded.text_encoder.tables.items():
            if key in text_encoder.tables:  # concepts the base knew keep their tokens
                text_encoder.tables[key].data.copy_(table.data)


def train_base(datasets: list[PairDataset], out_dir: str | os.PathLike,
               settings: TrainingSettings, generator_config: dict | None = None,
               text_encoder: TextEncoder | None = None, resume: bool = True,
               on_event: EventCallback | None = None, should_stop: StopCheck | None = None,
               init_from: str | os.PathLike | None = None, identity: bool = False) -> TrainingOutcome:
    job = base_job(datasets, out_dir, settings, generator_config, text_encoder, init_from, identity)
    return job.run_to_end(resume, on_event, should_stop)


def starting_discriminator(loaded: LoadedGenerator) -> nn.Module:
    """The D a fine-tune starts from: the base's own when it was saved, else a fresh one."""
    encoder = loaded.text_encoder
    return loaded.discriminator or build_model(
        "patchgan", {"text_dim": encoder.embedding_dim if encoder else 0})


def prepare_concept(loaded: LoadedGenerator, prompt: str, start: str = "closest",
                    pairs: Dataset | None = None) -> tuple[list[nn.Parameter], dict[str, Any]]:
    """Give a learned text encoder a trainable table for the prompt's concept, and say where it
    started. A concept the base has never seen starts at the known concept whose edits of `pairs`
    are closest to the teacher's (`start="closest"`, see training.concept_start) or at the mean of
    the known ones (`"mean"`, or when no pairs are given)."""
    encoder = loaded.text_encoder
    if not isinstance(encoder, LearnedConceptEncoder):
        return [], {}
    encoder.requires_grad_(False)
    if encoder.knows(prompt):
        table, origin = encoder.tables[concept_key(prompt)], {"concept_start": "known to the base"}
    elif start == "closest" and pairs is not None and len(encoder.tables):
        chosen = closest_concept_start(loaded.generator, encoder, pairs)
        table = encoder.add_concept(prompt, chosen.table)
        origin = {"concept_start": chosen.source,
                  "concept_start_l1": {k: round(v, 4) for k, v in sorted(chosen.l1_by_candidate.items(),
                                                                          key=lambda kv: kv[1])}}
    else:
        table, origin = encoder.add_concept(prompt), {"concept_start": MEAN}
    table.requires_grad_(True)
    return [table], origin


def finetune_parts(loaded: LoadedGenerator, dataset: PairDataset, settings: TrainingSettings,
                   mode: str, ranks: dict[str, int] | None, ids: list[str] | None,
                   base_dir) -> tuple[TrainingParts, dict[str, Any]]:
    """Make `loaded` ready to learn the dataset's concept: an adapter (or every weight) and the
    concept's tokens trainable, everything else frozen. Also returns where the tokens started."""
    generator = loaded.generator
    _check_size(generator, settings.size)
    prompt = dataset.info.prompt
    discriminator = starting_discriminator(loaded)
    data = _tensor_dataset([dataset], settings, ids)
    started = time.perf_counter()
    text_parameters, origin = prepare_concept(loaded, prompt, settings.concept_start, data)
    if "concept_start_l1" in origin:  # the search ran: its time is part of the fine-tune's cost
        origin["concept_start_seconds"] = round(time.perf_counter() - started, 2)
    if mode == "lora":
        ranks = ranks or default_lora_ranks(generator, base_dir)
        generator.requires_grad_(False)
        lora.add_adapter(generator, concept_key(prompt), ranks)
        generator_parameters = [p for n, p in generator.named_parameters() if "lora_" in n]
    else:
        generator.requires_grad_(True)
        generator_parameters = list(generator.parameters())
    return TrainingParts(generator, discriminator, loaded.text_encoder,
                         generator_parameters + text_parameters, data), origin


def finetune_job(base_dir: str | os.PathLike, dataset: PairDataset, output: str | os.PathLike,
                 settings: TrainingSettings, mode: str = "lora",
                 ranks: dict[str, int] | None = None, ids: list[str] | None = None) -> TrainingJob:
    """Teach a base model the dataset's concept.

    `mode="lora"` writes one adapter file at `output` (LoRA on the crucial layers with `ranks`,
    plus the concept's text tokens); `mode="full"` tunes every generator weight and writes a model
    folder. The base's discriminator, when it was saved, is the starting D: it already knows what
    a good edit of a photo looks like, which is much of what makes fine-tuning fast.
    """
    if mode not in ("lora", "full"):
        raise E2GANError(f"fine-tuning mode must be 'lora' or 'full', got {mode!r}")
    _seed(settings)
    loaded = load_generator(base_dir, with_discriminator=True)
    parts, concept_origin = finetune_parts(loaded, dataset, settings, mode, ranks, ids, base_dir)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(parts, settings, state_dir=output.with_name(output.name + ".training_state"),
                      log_dir=output.with_name(output.name + ".logs"), run_name=f"finetune-{mode}")
    prompt, generator, encoder = dataset.info.prompt, parts.generator, parts.text_encoder

    def write(summary: dict[str, Any]) -> None:
        generator.eval()
        if mode == "lora":
            grain = None
            if settings.grain:
                # The texture the teacher draws at random and L1 averages away (models.grain).
                grain = fit_concept_grain(generator, encoder, prompt, parts.dataset, trainer.precision)
                summary["grain"] = grain_metadata(grain) if grain is not None else None
            adapter = adapter_from_model(generator, concept_key(prompt), prompt, loaded.info,
                                         encoder, training=summary, concept=dataset.info.concept,
                                         grain=grain)
            save_adapter(output, adapter)
        else:
            save_generator(output, generator, encoder, summary)

    return TrainingJob(f"finetune-{mode}", trainer, output, len(parts.dataset), write,
                       {"base": str(base_dir), "base_sha256": loaded.info["sha256"],
                        "dataset": str(dataset.root), "concept": prompt, **concept_origin},
                       model=loaded)


def finetune(base_dir: str | os.PathLike, dataset: PairDataset, output: str | os.PathLike,
             settings: TrainingSettings, mode: str = "lora", ranks: dict[str, int] | None = None,
             ids: list[str] | None = None, resume: bool = True,
             on_event: EventCallback | None = None,
             should_stop: StopCheck | None = None) -> TrainingOutcome:
    job = finetune_job(base_dir, dataset, output, settings, mode, ranks, ids)
    outcome = job.run_to_end(resume, on_event, should_stop)
    if mode == "lora" and outcome.output.is_file():
        outcome.summary["adapter_bytes"] = outcome.output.stat().st_size
    return outcome


def pix2pix_job(dataset: PairDataset, out_dir: str | os.PathLike, settings: TrainingSettings,
                generator_config: dict | None = None) -> TrainingJob:
    """The baseline: pix2pix's 9-block ResNet generator from scratch on one concept."""
    _seed(settings)
    generator = build_model("pix2pix", generator_config)
    _check_size(generator, settings.size)
    discriminator = build_model("patchgan", {"text_dim": 0})
    out_dir = Path(out_dir)
    data = _tensor_dataset([dataset], settings)
    trainer = Trainer(TrainingParts(generator, discriminator, None, list(generator.parameters()), data),
                      settings, state_dir=out_dir / "training_state", log_dir=out_dir / "logs",
                      run_name="train-pix2pix")

    def write(summary: dict[str, Any]) -> None:
        save_generator(out_dir, generator.eval(), None, summary)

    return TrainingJob("pix2pix", trainer, out_dir, len(data), write,
                       {"dataset": str(dataset.root), "concept": dataset.info.prompt})


def train_pix2pix(dataset: PairDataset, out_dir: str | os.PathLike, settings: TrainingSettings,
                  generator_config: dict | None = None, resume: bool = True,
                  on_event: EventCallback | None = None,
                  should_stop: StopCheck | None = None) -> TrainingOutcome:
    return pix2pix_job(dataset, out_dir, settings, generator_config).run_to_end(
        resume, on_event, should_stop)


def default_lora_ranks(generator: nn.Module, base_dir) -> dict[str, int]:
    """The LoRA recipe's ranks: the searched table shipped with the base (else rank 4 on every
    crucial layer), plus the texture layers (`TEXTURE_LORA_RANKS`) the generator has."""
    ranks = load_rank_table(base_dir) or uniform_ranks(generator, 4)
    modules = dict(generator.named_modules())
    texture = {name: rank for name, rank in TEXTURE_LORA_RANKS.items()
               if isinstance(modules.get(name), lora.ADAPTABLE_TYPES)}
    return {**texture, **ranks}


def uniform_ranks(generator: nn.Module, rank: int) -> dict[str, int]:
    return {name: rank for name in lora.crucial_layers(generator)}

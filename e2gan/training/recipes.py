"""The four ways to train, each a short function over the same loop:

- `train_base`: one E2GAN generator on many concepts at once (the shared base model).
- `finetune`: a new concept from a base, either LoRA on the crucial layers (the paper's method) or
  full fine-tuning of every generator weight (the baseline it is compared with).
- `train_pix2pix`: the 9-residual-block pix2pix generator from scratch, one concept.

Each returns a `TrainingOutcome` whose `summary` is what the CLI prints and the model card records.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import ConcatDataset, Dataset

from e2gan import lora
from e2gan.checkpoint import (LoadedGenerator, adapter_from_model, load_generator,
                              load_rank_table, save_adapter, save_generator)
from e2gan.data.dataset import PairDataset
from e2gan.data.torch_data import PairTensorDataset
from e2gan.errors import E2GANError
from e2gan.models import build_model
from e2gan.text import LearnedConceptEncoder, TextEncoder, concept_key
from e2gan.training.gan import GANHyperparameters, PairedGAN
from e2gan.training.loop import LoopConfig, LoopResult, run_training, seed_everything


# Adam on the LoRA factors (B starts at zero) needs a larger step than full training to move in a
# few CPU minutes. Measured on a held-out concept (watercolor, 100 pairs, 3 min at 128 px,
# MAE vs teacher, lower is better): 2e-4 -> 32.2, 1e-3 -> 29.7, 3e-3 -> 27.7, 1e-2 diverged (46.0).
LORA_LEARNING_RATE = 3e-3
FULL_LEARNING_RATE = 2e-4  # the paper's (and pix2pix's) Adam setting


@dataclass
class TrainingSettings:
    size: int = 128
    steps: int = 1000
    batch_size: int = 4
    learning_rate: float = FULL_LEARNING_RATE
    discriminator_learning_rate: float | None = None  # None: same as learning_rate
    l1_weight: float = 100.0
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    checkpoint_every: int = 200
    max_seconds: float | None = None
    augment: bool = True

    def __post_init__(self) -> None:
        for name in ("size", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise E2GANError(f"{name.replace('_', ' ')} must be at least 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise E2GANError(f"learning rate must be positive, got {self.learning_rate}")
        if self.max_seconds is not None and self.max_seconds < 0:
            raise E2GANError(f"time limit must not be negative, got {self.max_seconds}")


@dataclass
class TrainingOutcome:
    output: Path
    result: LoopResult
    trainable_parameters: int
    summary: dict[str, Any] = field(default_factory=dict)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise E2GANError("CUDA was requested but no GPU is available")
    return torch.device(device)


def hardware_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
           f"{torch.get_num_threads()} torch threads)"


def _tensor_dataset(datasets: list[PairDataset], settings: TrainingSettings,
                    ids: list[str] | None = None) -> Dataset:
    parts = [PairTensorDataset(d, "train", settings.size, settings.augment, ids=ids) for d in datasets]
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def _check_size(generator: nn.Module, size: int) -> None:
    multiple = generator.size_multiple
    if size % multiple:
        raise E2GANError(f"training size {size} must be a multiple of {multiple} for this model")


def _run(gan: PairedGAN, data: Dataset, settings: TrainingSettings, modules: dict[str, nn.Module],
         state_path: Path | None, on_progress, should_stop, resume: bool) -> LoopResult:
    config = LoopConfig(steps=settings.steps, batch_size=settings.batch_size, seed=settings.seed,
                        checkpoint_every=settings.checkpoint_every, max_seconds=settings.max_seconds)
    return run_training(gan, data, config, modules, state_path=state_path, resume=resume,
                        on_progress=on_progress, should_stop=should_stop)


def _summary(kind: str, settings: TrainingSettings, result: LoopResult, device: torch.device,
             trainable: int, pairs: int, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "settings": asdict(settings), "pairs": pairs,
            "steps": result.steps_done, "stopped_early": result.stopped_early,
            "seconds": round(result.seconds, 2), "images_per_second": round(result.images_per_second, 2),
            "trainable_parameters": trainable, "hardware": hardware_description(device),
            "final_losses": {k: round(v, 4) for k, v in result.last_losses.items()},
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}


def train_base(datasets: list[PairDataset], out_dir: str | os.PathLike,
               settings: TrainingSettings, generator_config: dict | None = None,
               text_encoder: TextEncoder | None = None, resume: bool = True,
               on_progress: Callable | None = None,
               should_stop: Callable[[], bool] | None = None) -> TrainingOutcome:
    """Train the shared base generator on several concepts' datasets at once."""
    if not datasets:
        raise E2GANError("base training needs at least one dataset")
    seed_everything(settings.seed)
    device = resolve_device(settings.device)
    prompts = [d.info.prompt for d in datasets]
    if text_encoder is None:
        dim = (generator_config or {}).get("text_dim", 768)
        # Several datasets may share a concept (generated + imported pairs): one table each.
        unique = list({concept_key(prompt): prompt for prompt in prompts}.values())
        text_encoder = LearnedConceptEncoder(embedding_dim=dim, concepts=unique)
    generator = build_model("e2gan", {**(generator_config or {}),
                                      "text_dim": text_encoder.embedding_dim})
    _check_size(generator, settings.size)
    discriminator = build_model("patchgan", {"text_dim": text_encoder.embedding_dim})
    parameters = list(generator.parameters()) + list(text_encoder.parameters())
    gan = PairedGAN(generator, discriminator, text_encoder, parameters, _hyper(settings), device,
                    settings.mixed_precision)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = _tensor_dataset(datasets, settings)
    result = _run(gan, data, settings, {"generator": generator, "discriminator": discriminator,
                                        "text_encoder": text_encoder},
                  out_dir / "training_state.pt", on_progress, should_stop, resume)
    trainable = sum(p.numel() for p in parameters if p.requires_grad)
    summary = _summary("base", settings, result, device, trainable, len(data),
                       concepts=prompts, datasets=[str(d.root) for d in datasets])
    save_generator(out_dir, generator.cpu().eval(), text_encoder.cpu(), summary, discriminator.cpu())
    _forget_state_if_finished(out_dir / "training_state.pt", result)
    return TrainingOutcome(out_dir, result, trainable, summary)


def _hyper(settings: TrainingSettings) -> GANHyperparameters:
    return GANHyperparameters(learning_rate=settings.learning_rate,
                              discriminator_learning_rate=settings.discriminator_learning_rate,
                              l1_weight=settings.l1_weight)


def starting_discriminator(loaded: LoadedGenerator) -> nn.Module:
    """The D a fine-tune starts from: the base's own when it was saved, else a fresh one."""
    encoder = loaded.text_encoder
    return loaded.discriminator or build_model(
        "patchgan", {"text_dim": encoder.embedding_dim if encoder else 0})


def prepare_concept(loaded: LoadedGenerator, prompt: str) -> list[nn.Parameter]:
    """Give a learned text encoder a trainable table for a concept the base has never seen."""
    encoder = loaded.text_encoder
    if isinstance(encoder, LearnedConceptEncoder):
        encoder.requires_grad_(False)
        table = encoder.tables[concept_key(prompt)] if encoder.knows(prompt) else encoder.add_concept(prompt)
        table.requires_grad_(True)
        return [table]
    return []


def finetune(base_dir: str | os.PathLike, dataset: PairDataset, output: str | os.PathLike,
             settings: TrainingSettings, mode: str = "lora", ranks: dict[str, int] | None = None,
             ids: list[str] | None = None, resume: bool = True,
             on_progress: Callable | None = None,
             should_stop: Callable[[], bool] | None = None) -> TrainingOutcome:
    """Teach a base model the dataset's concept.

    `mode="lora"` writes one adapter file at `output` (LoRA on the crucial layers with `ranks`,
    plus the concept's text tokens); `mode="full"` tunes every generator weight and writes a model
    folder. The base's discriminator, when it was saved, is the starting D: it already knows what
    a good edit of a photo looks like, which is much of what makes fine-tuning fast.
    """
    if mode not in ("lora", "full"):
        raise E2GANError(f"fine-tuning mode must be 'lora' or 'full', got {mode!r}")
    seed_everything(settings.seed)
    device = resolve_device(settings.device)
    loaded = load_generator(base_dir, with_discriminator=True)
    generator, encoder = loaded.generator, loaded.text_encoder
    _check_size(generator, settings.size)
    prompt = dataset.info.prompt
    discriminator = starting_discriminator(loaded)
    text_parameters = prepare_concept(loaded, prompt)
    if mode == "lora":
        # The searched table shipped with the base, else rank 4 everywhere.
        ranks = ranks or load_rank_table(base_dir) or uniform_ranks(generator, 4)
        generator.requires_grad_(False)
        lora.add_adapter(generator, concept_key(prompt), ranks)
        generator_parameters = [p for n, p in generator.named_parameters() if "lora_" in n]
    else:
        generator.requires_grad_(True)
        generator_parameters = list(generator.parameters())
    parameters = generator_parameters + text_parameters
    gan = PairedGAN(generator, discriminator, encoder, parameters, _hyper(settings), device,
                    settings.mixed_precision)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    state_path = output.with_name(output.name + ".training_state.pt")
    modules: dict[str, nn.Module] = {"generator": generator, "discriminator": discriminator}
    if encoder is not None:
        modules["text_encoder"] = encoder
    data = _tensor_dataset([dataset], settings, ids)
    result = _run(gan, data, settings, modules, state_path, on_progress, should_stop, resume)
    trainable = sum(p.numel() for p in parameters)
    summary = _summary(f"finetune-{mode}", settings, result, device, trainable, len(data),
                       base=str(base_dir), base_sha256=loaded.info["sha256"],
                       dataset=str(dataset.root), concept=prompt)
    generator.cpu().eval()
    if encoder is not None:
        encoder.cpu()
    if mode == "lora":
        adapter = adapter_from_model(generator, concept_key(prompt), prompt, loaded.info, encoder,
                                     training=summary, concept=dataset.info.concept)
        save_adapter(output, adapter)
        summary["adapter_bytes"] = output.stat().st_size
    else:
        save_generator(output, generator, encoder, summary)
    _forget_state_if_finished(state_path, result)
    return TrainingOutcome(output, result, trainable, summary)


def train_pix2pix(dataset: PairDataset, out_dir: str | os.PathLike, settings: TrainingSettings,
                  generator_config: dict | None = None, resume: bool = True,
                  on_progress: Callable | None = None,
                  should_stop: Callable[[], bool] | None = None) -> TrainingOutcome:
    """The baseline: pix2pix's 9-block ResNet generator from scratch on one concept."""
    seed_everything(settings.seed)
    device = resolve_device(settings.device)
    generator = build_model("pix2pix", generator_config)
    _check_size(generator, settings.size)
    discriminator = build_model("patchgan", {"text_dim": 0})
    gan = PairedGAN(generator, discriminator, None, list(generator.parameters()), _hyper(settings),
                    device, settings.mixed_precision)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = _tensor_dataset([dataset], settings)
    result = _run(gan, data, settings, {"generator": generator, "discriminator": discriminator},
                  out_dir / "training_state.pt", on_progress, should_stop, resume)
    trainable = sum(p.numel() for p in generator.parameters())
    summary = _summary("pix2pix", settings, result, device, trainable, len(data),
                       dataset=str(dataset.root), concept=dataset.info.prompt)
    save_generator(out_dir, generator.cpu().eval(), None, summary)
    _forget_state_if_finished(out_dir / "training_state.pt", result)
    return TrainingOutcome(out_dir, result, trainable, summary)


def _forget_state_if_finished(state_path: Path, result: LoopResult) -> None:
    """A finished run's resumable state is dead weight (optimiser moments: 3x the model); a run
    that was stopped or ran out of time keeps it, so rerunning the command continues it."""
    if not result.stopped_early:
        state_path.unlink(missing_ok=True)


def uniform_ranks(generator: nn.Module, rank: int) -> dict[str, int]:
    return {name: rank for name in lora.crucial_layers(generator)}

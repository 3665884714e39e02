"""Saving and loading generators and concept adapters (safetensors + json, never pickled code).

A base model is a folder:

    config.json          {"format": "e2gan-generator", "arch", "config", "text_encoder", "training"}
    model.safetensors    generator weights, plus the learned text tables under "text_encoder."
    discriminator.safetensors + discriminator.json   (optional) the D it was trained with, so a
                         fine-tune starts from a discriminator that already knows the domain

A concept adapter is one safetensors file: LoRA weights ("{layer}.lora_A/B"), the concept's own
text tokens when the encoder is `learned` ("concept_embedding"), and a json header (metadata
key "e2gan") with the prompt, ranks, layer types, the base's sha256, the text encoder and a
training summary. `apply_adapter` refuses an adapter made for another base.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from e2gan.checks import check_model_folder
from e2gan.errors import E2GANError
from e2gan.files import atomic_write_bytes, atomic_write_json, sha256_file
from e2gan.models import architecture_of, build_model, config_of, lora
from e2gan.models.grain import GrainStatistics, blend_grain
from e2gan.text import (LearnedConceptEncoder, TextEncoder, build_text_encoder, check_compatible,
                        concept_key)

GENERATOR_FORMAT = "e2gan-generator"
ADAPTER_FORMAT = "e2gan-adapter"
TEXT_PREFIX = "text_encoder."


@dataclass
class LoadedGenerator:
    generator: nn.Module
    text_encoder: TextEncoder | None
    info: dict[str, Any]  # config.json contents plus "sha256" and "path"
    discriminator: nn.Module | None = None


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        data = path.read_bytes()
        tensors = load_safetensors_bytes(data)
        header_size = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8:8 + header_size]).get("__metadata__", {}) or {}
    except (OSError, SafetensorError, ValueError) as error:
        raise E2GANError(f"cannot read weights file {path}: {error}") from None
    return tensors, metadata


def _check_finite(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse weights holding NaN or inf: they load silently and edit every image to black."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise E2GANError(f"{path} has non-finite values (NaN or inf) in tensor {name!r}; "
                             "the file is damaged or its training diverged")


def _read_json_object(path: Path, what: str) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise E2GANError(f"cannot read {path}: {error}") from None
    if not isinstance(value, dict):
        raise E2GANError(f"{path} is not {what} (a JSON object was expected, found "
                         f"{type(value).__name__})")
    return value


def _build_from(info: dict[str, Any], path: Path, what: str) -> nn.Module:
    """The model a config file describes ({"arch", "config"}), or an error naming the file."""
    if not isinstance(info.get("arch"), str) or not isinstance(info.get("config", {}), dict):
        raise E2GANError(f"{path} is not {what}: it needs \"arch\" (a name) and \"config\" "
                         "(an object)")
    try:
        return build_model(info["arch"], info.get("config"))
    except (TypeError, ValueError) as error:  # a config field of the wrong type or value
        raise E2GANError(f"{path} has a bad {info['arch']} config: {str(error)[:200]}") from None


def _state_without_lora(model: nn.Module) -> dict[str, torch.Tensor]:
    if lora.lora_layers(model):
        raise E2GANError("remove or merge adapters before saving a base model")
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_generator(folder: str | os.PathLike, generator: nn.Module,
                   text_encoder: TextEncoder | None, training: dict[str, Any] | None = None,
                   discriminator: nn.Module | None = None) -> Path:
    """Write a generator folder; weights first, config.json last (its presence marks completeness)."""
    folder = Path(folder)
    tensors = _state_without_lora(generator)
    if isinstance(text_encoder, LearnedConceptEncoder):
        for key, table in text_encoder.tables.items():
            tensors[f"{TEXT_PREFIX}{key}"] = table.detach().cpu().contiguous()
    atomic_write_bytes(folder / "model.safetensors", save_safetensors_bytes(tensors))
    if discriminator is not None:
        atomic_write_bytes(folder / "discriminator.safetensors",
                           save_safetensors_bytes(_state_without_lora(discriminator)))
        atomic_write_json(folder / "discriminator.json",
                          {"arch": architecture_of(discriminator), "config": config_of(discriminator)})
    atomic_write_json(folder / "config.json", {
        "format": GENERATOR_FORMAT, "arch": architecture_of(generator),
        "config": config_of(generator),
        "text_encoder": text_encoder.spec() if text_encoder is not None else None,
        "training": training or {},
    })
    return folder


def load_generator(folder: str | os.PathLike, text_encoder: TextEncoder | None = None,
                   with_discriminator: bool = False) -> LoadedGenerator:
    """Rebuild a generator (and its learned text tables) from a folder written by `save_generator`.

    A `clip` encoder is heavy and may live elsewhere, so the caller can pass it; it must match the
    one recorded at training time.
    """
    folder = check_model_folder(folder)
    config_path, weights_path = folder / "config.json", folder / "model.safetensors"
    info = _read_json_object(config_path, "an e2gan generator config")
    if info.get("format") != GENERATOR_FORMAT:
        raise E2GANError(f"{config_path} is not an e2gan generator config")
    generator = _build_from(info, config_path, "an e2gan generator config")
    tensors, _ = _read_safetensors(weights_path)
    _check_finite(tensors, weights_path)
    # Weights may be stored in half precision (a smaller file); models run in float32.
    text_tensors = {k[len(TEXT_PREFIX):]: v.float() for k, v in tensors.items() if k.startswith(TEXT_PREFIX)}
    model_tensors = {k: v for k, v in tensors.items() if not k.startswith(TEXT_PREFIX)}
    try:
        generator.load_state_dict(model_tensors, strict=True)
    except RuntimeError as error:
        raise E2GANError(f"{weights_path} does not match its config: {str(error)[:300]}") from None
    spec = info.get("text_encoder")
    if spec is not None:
        if text_encoder is None:
            text_encoder = build_text_encoder({k: v for k, v in spec.items() if k != "concepts"})
        check_compatible(spec, text_encoder)
        if isinstance(text_encoder, LearnedConceptEncoder):
            for key, table in text_tensors.items():
                if key in text_encoder.tables:  # a caller's encoder: the trained values win
                    if text_encoder.tables[key].shape != table.shape:
                        raise E2GANError(f"concept embedding {key!r} has shape {tuple(table.shape)}"
                                         f" in {weights_path}, the given text encoder expects "
                                         f"{tuple(text_encoder.tables[key].shape)}")
                    with torch.no_grad():
                        text_encoder.tables[key].copy_(table)
                else:
                    text_encoder.add_concept(key, initial=table)
    discriminator = None
    if with_discriminator and (folder / "discriminator.safetensors").is_file():
        discriminator = _load_discriminator(folder)
    info = {**info, "sha256": sha256_file(weights_path), "path": str(folder)}
    return LoadedGenerator(generator.eval(), text_encoder, info, discriminator)


def _load_discriminator(folder: Path) -> nn.Module:
    config_path, weights_path = folder / "discriminator.json", folder / "discriminator.safetensors"
    if not config_path.is_file():
        raise E2GANError(f"{weights_path} has no discriminator.json beside it")
    discriminator = _build_from(_read_json_object(config_path, "a discriminator config"),
                                config_path, "a discriminator config")
    tensors, _ = _read_safetensors(weights_path)
    _check_finite(tensors, weights_path)
    try:
        discriminator.load_state_dict(tensors)
    except RuntimeError as error:
        raise E2GANError(f"{weights_path} does not match {config_path}: {str(error)[:300]}") from None
    return discriminator


def load_rank_table(path: str | os.PathLike) -> dict[str, int] | None:
    """A rank table (`e2gan rank-search --out`): a model folder's `ranks.json` or a json file.
    None when a model folder has none."""
    path = Path(path)
    if path.is_dir():
        path = path / "ranks.json"
        if not path.is_file():
            return None
    if not path.is_file():
        raise E2GANError(f"rank table not found: {path}")
    try:
        table = json.loads(path.read_text())
        return {str(k): int(v) for k, v in table.get("ranks", table).items()}
    except (ValueError, AttributeError, TypeError) as error:
        raise E2GANError(f"cannot read rank table {path}: {error}") from None


# ---------------------------------------------------------------------------------------------
# Adapters


@dataclass
class Adapter:
    metadata: dict[str, Any]
    tensors: dict[str, torch.Tensor] = field(repr=False)

    @property
    def concept(self) -> str:
        return self.metadata["concept"]

    @property
    def prompt(self) -> str:
        return self.metadata["prompt"]

    @property
    def lora_tensors(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.tensors.items() if ".lora_" in k}

    @property
    def grain(self) -> GrainStatistics | None:
        """The texture its teacher draws and the generator does not (see models.grain), if any."""
        deficit = (self.metadata.get("grain") or {}).get("deficit", float("nan"))
        return GrainStatistics.from_tensors(self.tensors, deficit)


def adapter_from_model(generator: nn.Module, adapter_name: str, prompt: str, base_info: dict,
                       text_encoder: TextEncoder | None, training: dict | None = None,
                       concept: str | None = None, grain: GrainStatistics | None = None) -> Adapter:
    """Package adapter `adapter_name` of `generator` with its metadata. `concept` is the short
    name users call it by (default: derived from the prompt); `grain`, the texture fitted after
    training (models.grain), travels in the same file."""
    tensors = lora.adapter_state_dict(generator, adapter_name)
    if grain is not None:
        tensors.update(grain.tensors())
    ranks = lora.adapter_ranks(generator, adapter_name)
    if isinstance(text_encoder, LearnedConceptEncoder) and text_encoder.knows(prompt):
        tensors["concept_embedding"] = text_encoder.tables[concept_key(prompt)].detach().cpu()
    metadata = {
        "format": ADAPTER_FORMAT, "version": 1, "concept": concept_key(concept or prompt),
        "prompt": prompt,
        "ranks": ranks, "layer_types": lora.layer_types(generator, ranks),
        "base_sha256": base_info["sha256"], "base_arch": base_info["arch"],
        "text_encoder": {k: v for k, v in (base_info.get("text_encoder") or {}).items()
                         if k != "concepts"},
        "trainable_parameters": trained_parameters(tensors),
        "training": training or {},
    }
    if grain is not None:
        metadata["grain"] = grain_metadata(grain)
    return Adapter(metadata, tensors)


def trained_parameters(tensors: dict[str, torch.Tensor]) -> int:
    """Numbers learnt by gradient: the low-rank factors and concept tokens, not the fitted grain."""
    return int(sum(t.numel() for k, t in tensors.items() if not k.startswith("grain.")))


def grain_metadata(grain: GrainStatistics) -> dict[str, Any]:
    return {"deficit": grain.deficit, "strength": round(grain.strength, 4),
            "bands": int(grain.covariances.shape[0]), "kernel_size": int(grain.kernel.shape[0])}


# Adapters are stored in half precision: it halves what a concept costs on a phone, and the
# rounding (relative 5e-4 on each low-rank factor) moves outputs far less than one 8-bit grey
# level. They are read back as float32, the precision they train and run in.
ADAPTER_STORAGE_DTYPE = torch.float16


def save_adapter(path: str | os.PathLike, adapter: Adapter) -> Path:
    tensors = {k: (v.detach().to(ADAPTER_STORAGE_DTYPE) if v.is_floating_point() else v).contiguous()
               for k, v in adapter.tensors.items()}
    data = save_safetensors_bytes(tensors, metadata={"e2gan": json.dumps(adapter.metadata)})
    return atomic_write_bytes(path, data)


def read_adapter(path: str | os.PathLike) -> Adapter:
    path = Path(path)
    if not path.is_file():
        raise E2GANError(f"adapter not found: {path}")
    tensors, header = _read_safetensors(path)
    try:
        metadata = json.loads(header["e2gan"])
        assert isinstance(metadata, dict) and metadata["format"] == ADAPTER_FORMAT
    except (KeyError, ValueError, AssertionError):
        raise E2GANError(f"{path} is not an e2gan adapter (no e2gan metadata)") from None
    _check_adapter_metadata(metadata, path)
    _check_finite(tensors, path)
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    adapter = Adapter(metadata, tensors)
    try:
        adapter.grain  # noqa: B018 - a damaged grain is refused on reading, not on first edit
    except E2GANError as error:
        raise E2GANError(f"{path} is a damaged e2gan adapter: {error}") from None
    return adapter


def is_adapter_file(path: str | os.PathLike) -> bool:
    """Whether a .safetensors file says it is an e2gan adapter (its header only is read): runs
    folders also hold full models and resumable training states in the same format."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return json.loads(metadata.get("e2gan", "{}")).get("format") == ADAPTER_FORMAT
    except Exception:  # noqa: BLE001 - any unreadable file is simply not an adapter
        return False


# What loading, applying and blending an adapter read from its header, and their JSON types.
ADAPTER_FIELDS = {"concept": str, "prompt": str, "ranks": dict, "base_sha256": str,
                  "base_arch": str, "layer_types": dict, "text_encoder": dict}


def _check_adapter_metadata(metadata: dict[str, Any], path: Path) -> None:
    for name, kind in ADAPTER_FIELDS.items():
        if not isinstance(metadata.get(name), kind):
            found = "missing" if name not in metadata else f"a {type(metadata[name]).__name__}"
            raise E2GANError(f"{path} is a damaged e2gan adapter: its header's {name!r} is {found}")
    try:
        lora.check_ranks(metadata["ranks"])  # before a rank of 100000 allocates anything
    except E2GANError as error:
        raise E2GANError(f"{path}: {error}") from None


def apply_adapter(loaded: LoadedGenerator, adapter: Adapter, name: str | None = None) -> str:
    """Load an adapter onto a base model under `name` (default: its concept); refuses a mismatch."""
    meta = adapter.metadata
    if meta["base_sha256"] != loaded.info["sha256"]:
        raise E2GANError(
            f"adapter {meta['concept']!r} was trained on base {meta['base_sha256'][:12]}, not on "
            f"this base {loaded.info['sha256'][:12]} ({loaded.info['path']}); use its own base model")
    if loaded.text_encoder is not None:
        check_compatible(meta["text_encoder"], loaded.text_encoder)
    name = name or meta["concept"]
    lora.add_adapter(loaded.generator, name, meta["ranks"])
    try:
        lora.load_adapter_state_dict(loaded.generator, name, adapter.lora_tensors)
    except E2GANError:
        lora.delete_adapter(loaded.generator, name)  # leave nothing half-applied behind
        raise
    encoder = loaded.text_encoder
    if "concept_embedding" in adapter.tensors and isinstance(encoder, LearnedConceptEncoder):
        key = concept_key(meta["prompt"])
        if key in encoder.tables:
            with torch.no_grad():
                encoder.tables[key].copy_(adapter.tensors["concept_embedding"])
        else:
            encoder.add_concept(key, initial=adapter.tensors["concept_embedding"])
    return name


def blend_adapters(first: Adapter, second: Adapter, weight: float = 0.5,
                   prompt: str | None = None) -> Adapter:
    """A new adapter equal to weight * first + (1 - weight) * second, exactly.

    The two low-rank updates are stacked along the rank axis (B scaled by the weights), so the
    blend's delta is the weighted sum of the two deltas; the ranks add up.
    """
    if not 0.0 <= weight <= 1.0:
        raise E2GANError(f"blend weight must lie in [0, 1], got {weight}")
    a, b = first.metadata, second.metadata
    if a["base_sha256"] != b["base_sha256"]:
        raise E2GANError("cannot blend adapters trained on different base models")
    if a["text_encoder"] != b["text_encoder"]:
        raise E2GANError("cannot blend adapters trained with different text encoders")
    layers = sorted(set(a["ranks"]) | set(b["ranks"]))
    tensors: dict[str, torch.Tensor] = {}
    ranks: dict[str, int] = {}
    types = {**b["layer_types"], **a["layer_types"]}
    for layer in layers:
        parts_a, parts_b = [], []
        for adapter, factor, parts in ((first, weight, parts_a), (second, 1 - weight, parts_b)):
            if layer in adapter.metadata["ranks"]:
                parts.append((adapter.tensors[f"{layer}.lora_A"],
                              adapter.tensors[f"{layer}.lora_B"] * factor))
        pieces = parts_a + parts_b
        axis_a = lora.rank_axis(types[layer], "lora_A")
        tensors[f"{layer}.lora_A"] = torch.cat([p[0] for p in pieces], dim=axis_a)
        tensors[f"{layer}.lora_B"] = torch.cat([p[1] for p in pieces], dim=1)
        ranks[layer] = sum(p[0].shape[axis_a] for p in pieces)
    if "concept_embedding" in first.tensors and "concept_embedding" in second.tensors:
        tensors["concept_embedding"] = (weight * first.tensors["concept_embedding"]
                                        + (1 - weight) * second.tensors["concept_embedding"])
    grain = blend_grain(first.grain, second.grain, weight)
    if grain is not None:
        tensors.update(grain.tensors())
    prompt = prompt or f"{a['prompt']} + {b['prompt']}"
    metadata = {**{k: v for k, v in a.items() if k != "grain"},
                "concept": concept_key(prompt), "prompt": prompt, "ranks": ranks,
                "layer_types": {k: types[k] for k in layers},
                "trainable_parameters": trained_parameters(tensors),
                "training": {"blend_of": [a["concept"], b["concept"]], "weight": weight}}
    if grain is not None:
        metadata["grain"] = grain_metadata(grain)
    return Adapter(metadata, tensors)

"""Text conditioning: a registry of text encoders that turn concept prompts into token embeddings.

Every encoder maps a list of prompts to a (batch, tokens, dim) tensor for the generator's
cross-attention. Three kinds ship here:

- `learned`: no text model at all. Each concept owns a few learned tokens, trained with the base
  model; a new concept adds one small trainable table that is saved inside its adapter. It works
  offline with nothing downloaded, which is what this project's tests and shipped base use.
- `clip`: open_clip's text tower (frozen). Its weights come from a local file or the local Hugging
  Face cache; it never downloads unless the caller explicitly allows it.
- `teacher-clip`: the diffusion teacher's own CLIP text encoder (a diffusers pipeline's
  `text_encoder/` and `tokenizer/`), so a base trained on InstructPix2Pix pairs conditions on the
  very token embeddings the teacher was steered by, with nothing more to download.

A checkpoint records the encoder's name and settings (`spec()`), and loading refuses a generator
whose text width or encoder differs from the one it was trained with.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Callable

import torch
from torch import nn

from e2gan.errors import E2GANError
from e2gan.hub.download import cached_snapshot, download_snapshot, fetch_command, offline
from e2gan.registry import Registry

CACHED_PROMPTS = 256  # a frozen text model's embeddings kept (about 0.2 MB each for CLIP's 77 tokens)

TEXT_ENCODERS: Registry[Callable[..., "TextEncoder"]] = Registry("text encoder")


def concept_key(prompt: str) -> str:
    """Normalise a prompt to a key: 'Pencil  Sketch!' -> 'pencil_sketch'."""
    key = re.sub(r"[^a-z0-9]+", "_", prompt.lower()).strip("_")
    if not key:
        raise E2GANError(f"empty concept prompt: {prompt!r}")
    return key


class TextEncoder(nn.Module):
    """Base class: `forward(prompts) -> (B, T, embedding_dim)`; `spec()` rebuilds it."""

    name: str = ""
    embedding_dim: int

    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def knows(self, prompt: str) -> bool:
        """Whether this encoder can embed `prompt` without new trainable parameters."""
        return True


@TEXT_ENCODERS.register("learned")
class LearnedConceptEncoder(TextEncoder):
    """One learned (tokens, dim) table per concept, keyed by the normalised prompt."""

    name = "learned"

    def __init__(self, embedding_dim: int = 768, tokens_per_concept: int = 4,
                 concepts: list[str] | None = None) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.tokens_per_concept = tokens_per_concept
        self.tables = nn.ParameterDict()
        for concept in concepts or []:
            self.add_concept(concept)

    @property
    def concepts(self) -> list[str]:
        return list(self.tables.keys())

    def knows(self, prompt: str) -> bool:
        return concept_key(prompt) in self.tables

    def add_concept(self, prompt: str, initial: torch.Tensor | None = None) -> nn.Parameter:
        """Add a concept's table. New concepts start at the mean of the known ones (a point the
        base generator already understands) rather than at random."""
        key = concept_key(prompt)
        if key in self.tables:
            raise E2GANError(f"concept {key!r} already has an embedding")
        if initial is None:
            if len(self.tables):
                initial = torch.stack([t.detach() for t in self.tables.values()]).mean(dim=0)
                initial = initial + 0.01 * torch.randn_like(initial)
            else:
                initial = torch.randn(self.tokens_per_concept, self.embedding_dim) * 0.02
        if initial.shape != (self.tokens_per_concept, self.embedding_dim):
            raise E2GANError(
                f"concept embedding for {key!r} has shape {tuple(initial.shape)}, expected "
                f"({self.tokens_per_concept}, {self.embedding_dim})")
        self.tables[key] = nn.Parameter(initial.clone())
        return self.tables[key]

    def forward(self, prompts: list[str]) -> torch.Tensor:
        rows = []
        for prompt in prompts:
            key = concept_key(prompt)
            if key not in self.tables:
                known = ", ".join(self.tables.keys()) or "none"
                raise E2GANError(
                    f"the learned text encoder has no embedding for concept {key!r} (known: "
                    f"{known}); fine-tune an adapter for it or use a text encoder such as 'clip'")
            rows.append(self.tables[key])
        return torch.stack(rows)

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "embedding_dim": self.embedding_dim,
                "tokens_per_concept": self.tokens_per_concept, "concepts": self.concepts}


class FrozenTextEncoder(TextEncoder):
    """A pretrained text model that is never trained (`clip`, `teacher-clip`): each prompt is
    embedded once and cached (the last `CACHED_PROMPTS` used: a studio embeds whatever its
    visitors type, for the process's life). Subclasses set `model`, `model_name`, `pretrained` and
    `embedding_dim`, and implement `_embed(prompts) -> (B, T, embedding_dim)`."""

    model_name: str
    pretrained: str | None

    def __init__(self) -> None:
        super().__init__()
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    def _embed(self, prompts: list[str]) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> torch.Tensor:
        missing = [p for p in dict.fromkeys(prompts) if p not in self._cache]
        found = dict(zip(missing, self._embed(missing))) if missing else {}
        for prompt in dict.fromkeys(prompts):
            if prompt in found:
                self._cache[prompt] = found[prompt]
            else:
                found[prompt] = self._cache[prompt]
            self._cache.move_to_end(prompt)
        while len(self._cache) > CACHED_PROMPTS:
            self._cache.popitem(last=False)
        return torch.stack([found[p] for p in prompts])

    def _apply(self, fn, recurse=True):
        self._cache.clear()  # cached embeddings live on the old device
        return super()._apply(fn, recurse)

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "embedding_dim": self.embedding_dim,
                "model_name": self.model_name, "pretrained": self.pretrained}


@TEXT_ENCODERS.register("clip")
class OpenCLIPTextEncoder(FrozenTextEncoder):
    """open_clip's frozen text tower; the pooled, normalised embedding is one token.

    `pretrained` is an open_clip tag (e.g. 'laion2b_s34b_b79k', resolved in the local HF cache) or a
    path to a checkpoint file. Downloads happen only with `allow_download=True`; otherwise a missing
    file is an `E2GANError` that says what to fetch.
    """

    name = "clip"

    def __init__(self, model_name: str = "ViT-B-32", pretrained: str | None = "laion2b_s34b_b79k",
                 allow_download: bool = False, model: nn.Module | None = None,
                 tokenizer: Callable | None = None) -> None:
        super().__init__()
        import open_clip  # heavy import only when this encoder is used

        self.model_name = model_name
        self.pretrained = pretrained
        if model is None:
            model = self._load(open_clip, model_name, pretrained, allow_download)
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer or open_clip.get_tokenizer(model_name)
        self.embedding_dim = int(self.model.text_projection.shape[-1]
                                 if self.model.text_projection is not None
                                 else self.model.ln_final.normalized_shape[0])

    @staticmethod
    def _load(open_clip, model_name: str, pretrained: str | None, allow_download: bool) -> nn.Module:
        path = resolve_open_clip_weights(model_name, pretrained, allow_download)
        try:
            return open_clip.create_model(model_name, pretrained=path)
        except Exception as error:  # a corrupt or mismatched file
            raise E2GANError(f"cannot load open_clip weights {path} for {model_name}: {error}") from None

    def _embed(self, prompts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(prompts).to(self._device())
        return self.model.encode_text(tokens, normalize=True).float()[:, None, :]


def resolve_open_clip_weights(model_name: str, pretrained: str | None,
                              allow_download: bool = False, *,
                              on_progress: Callable[[Any], None] | None = None,
                              should_stop: Callable[[], bool] | None = None) -> str | None:
    """A local file for open_clip weights: a path as given, else the file in the local Hugging
    Face cache. We look the file up ourselves with `local_files_only` rather than let open_clip
    call the Hub, so an offline machine gets an immediate, clear error instead of a hang. With
    `allow_download` a missing file is fetched into that cache by `e2gan.hub.download.download_snapshot`
    (progress and cancel as there)."""
    import os

    import open_clip  # optional: the `clip` encoder only

    if pretrained is None:
        return None  # random weights (tests, or a user training the text side from scratch)
    if os.path.isfile(pretrained):
        return pretrained
    config = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not config:
        raise E2GANError(f"open_clip has no pretrained weights {pretrained!r} for {model_name!r} "
                         "and no such file exists")
    repository = config.get("hf_hub", "")
    if not repository:
        if allow_download:
            return open_clip.download_pretrained(config)
        raise E2GANError(f"open_clip weights {model_name}/{pretrained} are only available by URL "
                         f"({config.get('url')}); download them and pass the file path")
    model_id, filename = os.path.split(repository)  # "org/repo/" means the default file name
    candidates = ["open_clip_model.safetensors", filename or "open_clip_pytorch_model.bin"]
    for candidate in candidates:
        folder = cached_snapshot(model_id, [candidate])
        if folder is not None and (folder / candidate).is_file():
            return str(folder / candidate)
    if allow_download and not offline():
        for candidate in candidates:  # the first the repo has; one file, not both
            folder = download_snapshot(model_id, allow_patterns=[candidate],
                                       on_progress=on_progress, should_stop=should_stop)
            if folder is not None and (folder / candidate).is_file():
                return str(folder / candidate)
    raise E2GANError(
        f"open_clip weights {model_name}/{pretrained} are not on this machine (looked for "
        f"{model_id}/{candidates[-1]} in the Hugging Face cache); download them where the network "
        f"allows with {fetch_command(model_id)}, or pass a local file")


@TEXT_ENCODERS.register("teacher-clip")
class TeacherCLIPTextEncoder(FrozenTextEncoder):
    """A Stable Diffusion pipeline's frozen CLIP text encoder: all token states (B, 77, 768 for
    SD 1.x), exactly what the teacher's UNet cross-attends to.

    `model_name` is the pipeline's folder or Hugging Face repo id (local cache only unless
    `allow_download`); only its `text_encoder/` and `tokenizer/` are read.
    """

    name = "teacher-clip"

    def __init__(self, model_name: str = "timbrooks/instruct-pix2pix", pretrained: str | None = None,
                 embedding_dim: int | None = None, allow_download: bool = False) -> None:
        super().__init__()
        from transformers import CLIPTextModel, CLIPTokenizer

        # the teachers package registers every teacher on import: only this encoder needs it
        from e2gan.teachers.weights import resolve_model_folder

        folder = resolve_model_folder(model_name, allow_download, parts=("text_encoder", "tokenizer"))
        try:
            self.tokenizer = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"), local_files_only=True)
            model = CLIPTextModel.from_pretrained(str(folder / "text_encoder"), local_files_only=True)
        except (OSError, ValueError) as error:
            raise E2GANError(f"cannot load the CLIP text encoder of {model_name}: "
                             f"{str(error).splitlines()[0][:300]}") from None
        self.model = model.eval().requires_grad_(False)
        self.model_name = model_name
        self.pretrained = pretrained  # kept for the spec's shape; the folder decides the weights
        self.embedding_dim = int(model.config.hidden_size)
        if embedding_dim is not None and embedding_dim != self.embedding_dim:
            raise E2GANError(f"the text encoder of {model_name} is {self.embedding_dim}-d, but "
                             f"{embedding_dim}-d was expected")
        self.max_tokens = int(min(self.tokenizer.model_max_length, model.config.max_position_embeddings))

    def _embed(self, prompts: list[str]) -> torch.Tensor:
        # Padded to full length as the diffusers pipelines do: same tokens, same embeddings.
        tokens = self.tokenizer(prompts, padding="max_length", max_length=self.max_tokens,
                                truncation=True, return_tensors="pt").input_ids.to(self._device())
        return self.model(tokens)[0].float()


def build_text_encoder(spec: dict[str, Any], **overrides: Any) -> TextEncoder:
    """Rebuild an encoder from its `spec()` (the learned tables' values come from the weights)."""
    spec = {**spec, **overrides}
    name = spec.pop("name", None)
    if name is None:
        raise E2GANError("text encoder spec has no 'name'")
    spec.pop("embedding_dim", None) if name == "clip" else None
    return TEXT_ENCODERS.get(name)(**spec)


def text_encoder_from_option(name: str, model: str | None = None, *,
                             default_teacher_model: str | None = None,
                             allow_download: bool = False) -> TextEncoder | None:
    """The encoder a user picked by name (the CLI's --text-encoder / --text-model).

    'learned' gives None: the training recipe makes its tables from the datasets' prompts.
    'clip' takes 'MODEL' or 'MODEL:PRETRAINED' (an open_clip tag or a weights file). 'teacher-clip'
    takes a diffusers pipeline folder or repo id, by default `default_teacher_model` (the model the
    training pairs were made with) and else the encoder's own default.
    """
    if name == "learned":
        if model:
            raise E2GANError("the learned text encoder takes no model; --text-model goes with "
                             "--text-encoder clip or teacher-clip")
        return None
    spec: dict[str, Any] = {"name": name}
    if name == "clip" and model:
        model_name, _, pretrained = model.partition(":")
        spec["model_name"] = model_name or "ViT-B-32"
        if pretrained:  # else the encoder's default tag
            spec["pretrained"] = pretrained
    elif name == "teacher-clip" and (model or default_teacher_model):
        spec["model_name"] = model or default_teacher_model
    elif model:
        spec["model_name"] = model
    if allow_download:
        spec["allow_download"] = True
    return build_text_encoder(spec)


def check_compatible(trained_with: dict[str, Any], encoder: TextEncoder) -> None:
    """Refuse to condition a generator on embeddings from another encoder."""
    current = encoder.spec()
    for field in ("name", "embedding_dim", "model_name", "pretrained"):
        if trained_with.get(field) != current.get(field):
            raise E2GANError(
                f"this model was trained with text encoder {trained_with.get('name')!r} "
                f"({field}={trained_with.get(field)!r}) but {current.get('name')!r} "
                f"({field}={current.get(field)!r}) was given; use the encoder it was trained with")

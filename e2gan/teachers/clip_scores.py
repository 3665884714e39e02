"""CLIP scores of image edits: one open_clip model, batched, used by the teachers' candidate
filter, the `clip` embedder and the CLIP metrics alike.

`ClipScorer.edit_scores` gives InstructPix2Pix's filter scores (Brooks et al. 2023, after
StyleGAN-NADA's directional loss) for (source, edit) pairs:

- ``image_similarity``: cos(E_I(source), E_I(edit)) -- the edit kept the picture;
- ``direction_similarity``: cos(E_I(edit) - E_I(source), E_T(edit caption) - E_T(source caption))
  -- the image changed the way the text changed;
- ``caption_similarity``: cos(E_I(edit), E_T(edit caption)) -- the edit shows the concept;
- ``source_caption_similarity``: cos(E_I(source), E_T(source caption)).

Embeddings are L2-normalised before differences are taken, as InstructPix2Pix's
``ClipSimilarity`` does. Weights come only from a local file or the local Hugging Face cache
(`e2gan.text.resolve_open_clip_weights`): open_clip is never given a tag it could download.
Tests use `ClipScorer.tiny_random`, a few-layer CLIP built in code.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from e2gan.errors import E2GANError
from e2gan.text import resolve_open_clip_weights

DEFAULT_MODEL = "ViT-B-32"
# The weights the rest of the project assumes (also the text encoder's default in e2gan.text).
DEFAULT_PRETRAINED = {"ViT-B-32": "laion2b_s34b_b79k"}
# A CLIP small enough to build and run in milliseconds: 32 px images, one layer per tower. It keeps
# open_clip's real BPE vocabulary so the real tokenizer works with it.
TINY_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "head_width": 16, "layers": 1},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
_EPS = 1e-8


def default_pretrained(model_name: str) -> str:
    """The weights tag used when none is given: ours for ViT-B-32, open_clip's first otherwise."""
    import open_clip

    if model_name in DEFAULT_PRETRAINED:
        return DEFAULT_PRETRAINED[model_name]
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if not tags:
        raise E2GANError(f"open_clip knows no pretrained weights for model {model_name!r}; "
                         "pass a checkpoint file as pretrained")
    return tags[0]


def clip_weights_available(model_name: str = DEFAULT_MODEL,
                           pretrained: str | None = None) -> tuple[bool, str]:
    """(True, local file) when real CLIP weights are on this machine, else (False, why not).

    Never downloads; cheap enough for a status line (it only looks in the local HF cache).
    """
    try:
        tag = pretrained or default_pretrained(model_name)
        path = resolve_open_clip_weights(model_name, tag, allow_download=False)
    except E2GANError as error:
        return False, str(error)
    except Exception as error:  # open_clip not importable, unknown model name, ...
        return False, f"open_clip CLIP {model_name} unavailable: {error}"
    return True, str(path)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity; 0 where either row is zero (e.g. an edit that changed nothing)."""
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), _EPS)
    return ((a * b).sum(axis=1) / norms).astype(np.float32)


class ClipScorer:
    """An open_clip model in eval mode with its preprocessing and tokenizer."""

    def __init__(self, model: nn.Module, tokenizer: Callable, preprocess: Callable, *,
                 model_name: str, pretrained: str | None, device: str | torch.device = "cpu",
                 batch_size: int = 32) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.preprocess = preprocess
        self.model_name = model_name
        self.pretrained = pretrained
        self.batch_size = batch_size
        self.embedding_dim = int(self.model.text_projection.shape[-1]
                                 if getattr(self.model, "text_projection", None) is not None
                                 else self.model.visual.output_dim)

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, model_name: str = DEFAULT_MODEL, pretrained: str | None = None,
                        device: str | torch.device = "cpu") -> ClipScorer:
        """Real CLIP weights from a checkpoint file or the local HF cache.

        `pretrained` is a checkpoint path or an open_clip tag (default: `default_pretrained`). A
        file that is not here raises `E2GANError` naming what to download; nothing is fetched.
        """
        import open_clip


        tag = pretrained or default_pretrained(model_name)
        path = resolve_open_clip_weights(model_name, tag, allow_download=False)
        try:
            model = open_clip.create_model(model_name, pretrained=path, device=device)
            tokenizer = open_clip.get_tokenizer(model_name)
        except Exception as error:  # corrupt file, wrong architecture, tokenizer not cached ...
            raise E2GANError(f"cannot load open_clip {model_name} from {path}: {error}") from None
        preprocess_cfg = dict(open_clip.get_model_preprocess_cfg(model))
        # A tag's weights may come with their own normalisation; a bare file path loses it.
        tag_cfg = open_clip.get_pretrained_cfg(model_name, tag) or {}
        preprocess_cfg.update({key: tag_cfg[key] for key in
                               ("mean", "std", "interpolation", "resize_mode") if key in tag_cfg})
        return cls(model, tokenizer, _image_transform(preprocess_cfg), model_name=model_name,
                   pretrained=tag, device=device)

    @classmethod
    def tiny_random(cls, seed: int = 0, device: str | torch.device = "cpu") -> ClipScorer:
        """A randomly initialised few-layer CLIP (`TINY_CONFIG`), the same for the same seed.

        Its scores mean nothing semantically, but every code path (preprocessing, tokenizing,
        batching, normalising) is the real one; tests and offline demos use it.
        """
        import open_clip
        from open_clip.model import CLIP

        with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
            torch.manual_seed(seed)
            model = CLIP(**TINY_CONFIG)
        tokenizer = open_clip.SimpleTokenizer(context_length=TINY_CONFIG["text_cfg"]["context_length"])
        preprocess = _image_transform(dict(open_clip.get_model_preprocess_cfg(model)))
        return cls(model, tokenizer, preprocess, model_name="tiny-random", pretrained=None,
                   device=device)

    def spec(self) -> dict[str, Any]:
        """What the embeddings depend on (a cache key for reference statistics)."""
        return {"model_name": self.model_name, "pretrained": self.pretrained,
                "embedding_dim": self.embedding_dim}

    # --- embeddings ---------------------------------------------------------------------------

    @torch.inference_mode()
    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, D) float32, each row of unit length."""
        rows = [np.zeros((0, self.embedding_dim), np.float32)]
        for start in range(0, len(images), self.batch_size):
            batch = torch.stack([self.preprocess(image.convert("RGB"))
                                 for image in images[start:start + self.batch_size]])
            features = self.model.encode_image(batch.to(self.device), normalize=True)
            rows.append(features.float().cpu().numpy())
        return np.concatenate(rows)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, D) float32, each row of unit length. Repeated texts are encoded once."""
        if isinstance(texts, str):
            raise E2GANError("embed_texts takes a list of texts, not one string")
        unique = list(dict.fromkeys(texts))
        encoded: dict[str, np.ndarray] = {}
        for start in range(0, len(unique), self.batch_size):
            chunk = unique[start:start + self.batch_size]
            tokens = self.tokenizer(chunk).to(self.device)
            features = self.model.encode_text(tokens, normalize=True).float().cpu().numpy()
            encoded.update(zip(chunk, features))
        if not texts:
            return np.zeros((0, self.embedding_dim), np.float32)
        return np.stack([encoded[text] for text in texts]).astype(np.float32)

    # --- scores -------------------------------------------------------------------------------

    def edit_scores(self, sources: Sequence[Image.Image], edits: Sequence[Image.Image],
                    source_caption: str | Sequence[str],
                    edit_caption: str | Sequence[str]) -> dict[str, np.ndarray]:
        """InstructPix2Pix's CLIP filter scores for each (source, edit) pair, each an (N,) array.

        A caption is one string for all pairs or one per pair.
        """
        if len(sources) != len(edits):
            raise E2GANError(f"edit_scores got {len(sources)} sources but {len(edits)} edits")
        source_text = self._captions(source_caption, len(sources), "source_caption")
        edit_text = self._captions(edit_caption, len(sources), "edit_caption")
        # One image batch for both sides, one text batch for both captions.
        images = self.embed_images(list(sources) + list(edits))
        texts = self.embed_texts(source_text + edit_text)
        source_image, edit_image = images[:len(sources)], images[len(sources):]
        source_texts, edit_texts = texts[:len(sources)], texts[len(sources):]
        return {
            "image_similarity": _cosine(source_image, edit_image),
            "direction_similarity": _cosine(edit_image - source_image, edit_texts - source_texts),
            "caption_similarity": _cosine(edit_image, edit_texts),
            "source_caption_similarity": _cosine(source_image, source_texts),
        }

    @staticmethod
    def _captions(caption: str | Sequence[str], count: int, name: str) -> list[str]:
        if isinstance(caption, str):
            return [caption] * count
        captions = list(caption)
        if len(captions) != count:
            raise E2GANError(f"{name} has {len(captions)} entries for {count} image pairs")
        return captions


def _image_transform(preprocess_cfg: dict[str, Any]) -> Callable:
    """open_clip's evaluation transform (resize, centre crop, normalise) for a preprocess config."""
    import open_clip

    return open_clip.image_transform(
        preprocess_cfg["size"], is_train=False, mean=preprocess_cfg.get("mean"),
        std=preprocess_cfg.get("std"), interpolation=preprocess_cfg.get("interpolation"),
        resize_mode=preprocess_cfg.get("resize_mode"))

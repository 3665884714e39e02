"""CLIP-based scores of a maker's edits: directional similarity and CMMD.

- CLIP directional similarity (InstructPix2Pix, after StyleGAN-NADA): for each pair,
  cos(E_I(output) - E_I(source), E_T(edit caption) - E_T(source caption)), averaged over pairs.
  It asks whether the image moved the way the text moved: > 0 along the concept, < 0 against it.
- CMMD (Jayasumana et al. 2024, "Rethinking FID"): the squared maximum mean discrepancy between
  CLIP image embeddings of reference and generated images, with a Gaussian RBF kernel of
  bandwidth sigma = 10, times 1000 -- the constants and the (biased, diagonal-including) estimator
  of google-research/cmmd, so a set against itself scores exactly 0. Unlike FID it assumes no
  normal distribution and is unbiased in the number of images. The paper embeds with CLIP
  ViT-L/14 at 336 px; values from another CLIP (ours defaults to ViT-B-32) compare only with each
  other.

The `*_from_embeddings` functions are pure numpy; the others embed with a
`e2gan.teachers.clip_scores.ClipScorer`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from PIL import Image
from sklearn.metrics.pairwise import rbf_kernel

from e2gan.errors import E2GANError
from e2gan.teachers.clip_scores import ClipScorer

CMMD_SIGMA = 10.0
CMMD_SCALE = 1000.0
# What the source images show before the edit, when the caller has no caption for them: the
# text direction then runs from a plain photo to the concept.
DEFAULT_SOURCE_CAPTION = "a photo"


def _unit_rows(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or not len(array):
        raise E2GANError(f"{name} must be a non-empty (N, D) array of embeddings, got shape {array.shape}")
    return array


def directional_similarities_from_embeddings(sources: np.ndarray, outputs: np.ndarray,
                                             source_text: np.ndarray,
                                             edit_text: np.ndarray) -> np.ndarray:
    """Per-pair cos(output - source, edit_text - source_text); text rows broadcast. 0 where
    either change is zero (an output identical to its source has no direction)."""
    sources, outputs = _unit_rows(sources, "sources"), _unit_rows(outputs, "outputs")
    if sources.shape != outputs.shape:
        raise E2GANError(f"{len(sources)} source embeddings but {len(outputs)} output embeddings")
    image_change = outputs - sources
    text_change = np.atleast_2d(np.asarray(edit_text, np.float64) - np.asarray(source_text, np.float64))
    dot = (image_change * text_change).sum(axis=1)
    norms = np.linalg.norm(image_change, axis=1) * np.linalg.norm(text_change, axis=1)
    return np.where(norms > 1e-12, dot / np.maximum(norms, 1e-12), 0.0)


def cmmd_from_embeddings(reference: np.ndarray, generated: np.ndarray,
                         sigma: float = CMMD_SIGMA, scale: float = CMMD_SCALE) -> float:
    """scale * MMD^2 with k(x, y) = exp(-|x - y|^2 / (2 sigma^2)) (google-research/cmmd)."""
    reference, generated = _unit_rows(reference, "reference"), _unit_rows(generated, "generated")
    if reference.shape[1] != generated.shape[1]:
        raise E2GANError(f"embedding widths differ: {reference.shape[1]} vs {generated.shape[1]}")
    gamma = 1.0 / (2.0 * sigma ** 2)
    value = (rbf_kernel(reference, reference, gamma=gamma).mean()
             + rbf_kernel(generated, generated, gamma=gamma).mean()
             - 2.0 * rbf_kernel(reference, generated, gamma=gamma).mean())
    return float(scale * max(value, 0.0))  # a tiny negative is float round-off of a zero


def directional_similarity(sources: Sequence[Image.Image], outputs: Sequence[Image.Image],
                           edit_caption: str, scorer,
                           source_caption: str = DEFAULT_SOURCE_CAPTION) -> float:
    """Mean CLIP directional similarity of `outputs` (edits of `sources`) to the text change."""
    if len(sources) != len(outputs) or not sources:
        raise E2GANError(f"directional similarity needs matching, non-empty lists; got "
                         f"{len(sources)} sources and {len(outputs)} outputs")
    images = scorer.embed_images(list(sources) + list(outputs))
    source_text, edit_text = scorer.embed_texts([source_caption, edit_caption])
    return float(directional_similarities_from_embeddings(
        images[:len(sources)], images[len(sources):], source_text, edit_text).mean())


def cmmd(reference: Sequence[Image.Image], generated: Sequence[Image.Image], scorer) -> float:
    """CMMD between two image sets, embedded with `scorer`'s CLIP image tower."""
    if not reference or not generated:
        raise E2GANError("CMMD needs at least one reference and one generated image")
    return cmmd_from_embeddings(scorer.embed_images(list(reference)),
                                scorer.embed_images(list(generated)))


def evaluate_edits(sources: Sequence[Image.Image], outputs: Sequence[Image.Image],
                   targets: Sequence[Image.Image], prompt: str, device: str = "cpu",
                   scorer=None, source_caption: str = DEFAULT_SOURCE_CAPTION) -> dict[str, Any]:
    """A maker's outputs judged by CLIP against the teacher's `targets` for the same `sources`.

    Returns ``direction_similarity`` (outputs, mean over pairs), ``direction_similarity_teacher``
    (the teacher's own edits: the score to match), ``image_similarity`` (output vs source) and
    ``cmmd`` (teacher edits vs outputs). `scorer` defaults to the local CLIP weights.
    """
    if not (len(sources) == len(outputs) == len(targets)) or not sources:
        raise E2GANError(f"evaluate_edits needs as many sources, outputs and targets (got "
                         f"{len(sources)}, {len(outputs)}, {len(targets)}), at least one each")
    scorer = scorer or ClipScorer.from_pretrained(device=device)
    count = len(sources)
    images = scorer.embed_images(list(sources) + list(outputs) + list(targets))  # one batched pass
    source_emb, output_emb, target_emb = images[:count], images[count:2 * count], images[2 * count:]
    source_text, edit_text = scorer.embed_texts([source_caption, prompt])
    directions = directional_similarities_from_embeddings(source_emb, output_emb, source_text, edit_text)
    teacher = directional_similarities_from_embeddings(source_emb, target_emb, source_text, edit_text)
    image_similarity = (source_emb * output_emb).sum(axis=1)  # rows are unit length
    return {"direction_similarity": round(float(directions.mean()), 5),
            "direction_similarity_teacher": round(float(teacher.mean()), 5),
            "image_similarity": round(float(image_similarity.mean()), 5),
            "cmmd": round(cmmd_from_embeddings(target_emb, output_emb), 5),
            "clip_model": f"{scorer.model_name}/{scorer.pretrained}"}

"""Choosing the best of several candidate edits of one image, InstructPix2Pix-style.

InstructPix2Pix (Brooks et al. 2023, section 3.1) made many candidate edits per image and kept one
only where CLIP agreed it was good: the edit still shows the same picture (image-image similarity),
the picture changed the way the text changed (directional similarity) and the edit shows the
concept (image-caption similarity). The E2GAN paper picked the best of several diffusion models per
image by hand; `CandidateFilter` does it automatically, for candidates that differ in knobs,
seeds or teachers. The CLIP scores come from `e2gan.teachers.clip_scores.ClipScorer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from e2gan.errors import E2GANError

# InstructPix2Pix's thresholds (their code keeps image similarity >= 0.75; the E2GAN issue asked
# for 0.7, a little more permissive for stylised edits that change more of the picture).
DEFAULT_MIN_IMAGE_SIMILARITY = 0.7
DEFAULT_MIN_DIRECTION_SIMILARITY = 0.2
DEFAULT_MIN_CAPTION_SIMILARITY = 0.2
# The key of each score in a pair's `scores` (PairRecord.scores).
SCORE_KEYS = {"image_similarity": "clip_image_similarity",
              "direction_similarity": "clip_direction_similarity",
              "caption_similarity": "clip_caption_similarity"}


@dataclass
class CandidateFilter:
    """Score candidate edits with CLIP and keep, per image, the passing one that changed most in
    the direction of the text (the highest directional similarity), as InstructPix2Pix ranks them.

    `source_caption` describes an unedited image; the edit caption is the concept's description.
    """

    scorer: Any  # e2gan.teachers.clip_scores.ClipScorer (anything with its `edit_scores`)
    source_caption: str = "a photo"
    min_image_similarity: float = DEFAULT_MIN_IMAGE_SIMILARITY
    min_direction_similarity: float = DEFAULT_MIN_DIRECTION_SIMILARITY
    min_caption_similarity: float = DEFAULT_MIN_CAPTION_SIMILARITY

    def settings(self) -> dict[str, Any]:
        """What decides which edits pass (stored with rejections, so a rerun with other
        thresholds looks at rejected images again)."""
        scorer_spec = self.scorer.spec() if hasattr(self.scorer, "spec") else {}
        return {"source_caption": self.source_caption,
                "min_image_similarity": self.min_image_similarity,
                "min_direction_similarity": self.min_direction_similarity,
                "min_caption_similarity": self.min_caption_similarity,
                "clip": {k: v for k, v in scorer_spec.items() if k != "embedding_dim"}}

    def score(self, sources: list[Image.Image], candidates: list[list[Image.Image]],
              edit_caption: str) -> list[list[dict[str, float]]]:
        """scores[c][i]: the scores of candidate c's edit of image i (one CLIP call for all)."""
        count = len(sources)
        if any(len(edits) != count for edits in candidates):
            raise ValueError("every candidate needs one edit per source image")
        flat_edits = [edit for edits in candidates for edit in edits]
        raw = self.scorer.edit_scores(sources * len(candidates), flat_edits,
                                      self.source_caption, edit_caption)
        missing = sorted(set(SCORE_KEYS) - set(raw))
        if missing:
            raise E2GANError(f"the CLIP scorer gave no {', '.join(missing)}")
        return [[{SCORE_KEYS[k]: round(float(np.asarray(raw[k])[c * count + i]), 6) for k in SCORE_KEYS}
                 for i in range(count)] for c in range(len(candidates))]

    def passes(self, scores: dict[str, float]) -> bool:
        return (scores["clip_image_similarity"] >= self.min_image_similarity
                and scores["clip_direction_similarity"] >= self.min_direction_similarity
                and scores["clip_caption_similarity"] >= self.min_caption_similarity)

    def choose(self, candidate_scores: list[dict[str, float]]) -> tuple[int | None, int]:
        """(index of the kept candidate or None when none passes, index of the best overall).

        The best overall is reported for rejected images, so a user can see how close they were.
        """
        ranked = sorted(range(len(candidate_scores)),
                        key=lambda c: (-candidate_scores[c]["clip_direction_similarity"], c))
        passing = [c for c in ranked if self.passes(candidate_scores[c])]
        return (passing[0] if passing else None), ranked[0]

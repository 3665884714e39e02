"""Choosing which training pairs a concept's fine-tune sees.

The paper's similarity clustering (embed, K-means with k = samples wanted, keep the pair nearest
each centre) arrives with the embedders; random selection, its baseline, is here.
"""

from __future__ import annotations

import numpy as np

from e2gan.data.dataset import PairDataset
from e2gan.errors import E2GANError

METHODS = ("random",)


def select_pairs(dataset: PairDataset, k: int, method: str = "random", seed: int = 0) -> list[str]:
    """Ids of `k` training pairs of `dataset`, deterministic given `seed`."""
    if method not in METHODS:
        raise E2GANError(f"unknown selection method {method!r}; known: {', '.join(METHODS)}")
    train = [record.id for record in dataset.split("train")]
    if k < 1:
        raise E2GANError(f"k must be at least 1, got {k}")
    if k > len(train):
        raise E2GANError(f"asked for {k} pairs but {dataset.root} has only {len(train)} training pairs")
    chosen = np.random.default_rng(seed).choice(len(train), size=k, replace=False)
    return [train[i] for i in sorted(chosen)]

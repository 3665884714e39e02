"""Choosing which training pairs a concept's fine-tune sees.

`cluster` is the paper's similarity clustering (Sec. 4.2.3): embed every training pair, run
K-means with k = the number of pairs wanted, and keep the pair nearest each centre, so the few
pairs kept still cover the variety of the data. `random` is its baseline. `one_look` first keeps
the pairs that agree on what the edit does (a diffusion teacher draws each seed's own palette and
detail; cluster selection would then pick pairs from every look, and a loss that sees them all
learns their average): each pair's edit direction (the edit's embedding minus its source's) is
clustered into looks, the largest look is kept when the directions form separate looks at all,
and cluster selection runs inside it. All are deterministic given the seed. The embedder
defaults to CLIP's image tower where its weights are on this machine and to the weight-free
built-in features elsewhere; the `Selection` says which and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score

from e2gan.data.dataset import PairDataset
from e2gan.curation.embedders import Embedder, create_embedder
from e2gan.errors import E2GANError

METHODS = ("cluster", "random", "one_look")
# Directions split into looks only when the split is real: a mean silhouette of at least this
# ("reasonable structure" in Kaufman & Rousseeuw's reading of the score; K-means finds weak
# structure, 0.25-0.4, in any one look's directions, since photos differ). Pairs of one look (the
# built-in teacher's, a well-behaved editor's) stay together.
LOOK_SILHOUETTE = 0.5
MAX_LOOKS = 4


@dataclass
class Selection:
    ids: list[str]  # the chosen training pairs
    method: str
    all_ids: list[str] = field(default_factory=list)  # every training pair, in dataset order
    labels: list[int] = field(default_factory=list)  # cluster of each pair in all_ids (cluster)
    distances: list[float] = field(default_factory=list)  # to its cluster centre (cluster)
    projection: list[list[float]] = field(default_factory=list)  # 2-D PCA of the embeddings
    embedder: str = ""  # what embedded the pairs (cluster)
    embedder_note: str = ""  # why that embedder, when it was chosen automatically
    # one_look: the training pairs left out as another look (all_ids then holds the look kept),
    # and how consistent the edit directions are (mean cosine to their mean) in all the pairs
    # and in the look kept
    other_look_ids: list[str] = field(default_factory=list)
    consistency: dict[str, float] = field(default_factory=dict)


def _check(dataset: PairDataset, k: int, method: str) -> list[str]:
    if method not in METHODS:
        raise E2GANError(f"unknown selection method {method!r}; known: {', '.join(METHODS)}")
    train = [record.id for record in dataset.split("train")]
    if k < 1:
        raise E2GANError(f"k must be at least 1, got {k}")
    if k > len(train):
        raise E2GANError(f"asked for {k} pairs but {dataset.root} has only {len(train)} training pairs")
    return train


def embed_pairs(dataset: PairDataset, ids: list[str],
                embedder: str | Embedder = "builtin") -> np.ndarray:
    """One row per pair: the source's and the edit's embeddings side by side.

    All images go to the embedder in one call: the built-in embedder standardises its features
    over the set it is given, so embedding in chunks would put the chunks on different scales.
    """
    embed = create_embedder(embedder)[0] if isinstance(embedder, str) else embedder
    sources, edits = zip(*(dataset.load_pair(dataset.get(pair_id)) for pair_id in ids))
    return np.concatenate([embed(list(sources)), embed(list(edits))], axis=1)


def edit_directions(dataset: PairDataset, ids: list[str], embed: Embedder) -> np.ndarray:
    """One unit row per pair: the edit's embedding minus its source's. Sources and edits go to
    the embedder in one call, so both are on one scale (see `embed_pairs`)."""
    sources, edits = zip(*(dataset.load_pair(dataset.get(pair_id)) for pair_id in ids))
    embedded = embed(list(sources) + list(edits))
    directions = embedded[len(ids):] - embedded[:len(ids)]
    return directions / np.maximum(np.linalg.norm(directions, axis=1, keepdims=True), 1e-12)


def _consistency(directions: np.ndarray) -> float:
    mean = directions.mean(axis=0)
    mean /= max(float(np.linalg.norm(mean)), 1e-12)
    return float((directions @ mean).mean())


def split_looks(directions: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each pair's look (0 = the largest), or all 0 when the directions form no separate looks."""
    best, best_score = np.zeros(len(directions), int), LOOK_SILHOUETTE
    for looks in range(2, min(MAX_LOOKS, len(directions) - 1) + 1):
        labels = KMeans(n_clusters=looks, n_init=4, random_state=seed).fit_predict(directions)
        score = silhouette_score(directions, labels, metric="cosine")
        if score >= best_score:
            best, best_score = labels, score
    sizes = np.bincount(best)
    rank = np.argsort(-sizes, kind="stable")  # relabel by size, largest first
    return np.argsort(rank)[best]


def select(dataset: PairDataset, k: int, method: str = "cluster", seed: int = 0,
           embedder: str | Embedder | None = None,
           embedder_settings: dict[str, Any] | None = None) -> Selection:
    """k training pairs of `dataset`. `embedder` is a registry name (None: `default_embedder`)
    with `embedder_settings` for its factory, or an `Embedder` function."""
    train = _check(dataset, k, method)
    if method == "random":
        chosen = np.random.default_rng(seed).choice(len(train), size=k, replace=False)
        return Selection([train[i] for i in sorted(chosen)], method, train)
    if callable(embedder):
        embed, name, note = embedder, getattr(embedder, "__name__", "custom"), ""
    else:
        embed, name, note = create_embedder(embedder, **(embedder_settings or {}))
    other_look, consistency = [], {}
    candidates = train
    if method == "one_look":
        directions = edit_directions(dataset, train, embed)
        looks = split_looks(directions, seed)
        kept = looks == 0
        candidates = [pair_id for pair_id, keep in zip(train, kept) if keep]
        other_look = [pair_id for pair_id, keep in zip(train, kept) if not keep]
        consistency = {"all": round(_consistency(directions), 4),
                       "kept": round(_consistency(directions[kept]), 4)}
        k = min(k, len(candidates))  # a look smaller than k: all of it
    embeddings = embed_pairs(dataset, candidates, embed)
    kmeans = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(embeddings)
    distances = np.linalg.norm(embeddings - kmeans.cluster_centers_[kmeans.labels_], axis=1)
    chosen = []
    for cluster in range(k):
        members = np.flatnonzero(kmeans.labels_ == cluster)
        chosen.append(int(members[np.argmin(distances[members])]))
    components = min(2, embeddings.shape[0], embeddings.shape[1])
    projection = PCA(n_components=components, random_state=seed).fit_transform(embeddings)
    return Selection([candidates[i] for i in sorted(chosen)], method, candidates,
                     kmeans.labels_.tolist(), distances.round(5).tolist(),
                     projection.round(5).tolist(), name, note, other_look, consistency)


def select_pairs(dataset: PairDataset, k: int, method: str = "random", seed: int = 0,
                 embedder: str | Embedder | None = None) -> list[str]:
    """Ids of `k` training pairs of `dataset`."""
    return select(dataset, k, method, seed, embedder).ids

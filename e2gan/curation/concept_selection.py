"""Choosing which concepts the shared base model is trained on (E2GAN Sec. 4.2.1).

The base should have seen a little of everything, so that any later concept is close to
something it knows and its fine-tune is short. The paper picks the base's concepts by clustering:
edit one fixed set of photos with every candidate concept, embed the edited images, average each
concept's embeddings into one point, run K-means with k clusters over those points, and keep the
concept nearest each cluster's centre. Concepts held out for evaluating fine-tunes on unseen
edits (always `winter`, plus any the caller names) are not candidates.

The embedder is the one pair selection uses (`e2gan.curation.embedders`): CLIP's image tower where its
weights are on this machine, the weight-free built-in features elsewhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import numpy as np
from PIL import Image
from sklearn.cluster import KMeans

from e2gan.curation.embedders import Embedder, create_embedder
from e2gan.errors import E2GANError
from e2gan.teachers.base import Teacher
from e2gan.teachers.builtin import BuiltinTeacher

# The paper keeps winter out of the base to test fine-tuning on an edit the base never saw.
ALWAYS_HELD_OUT = ("winter",)


@dataclass
class ConceptCluster:
    chosen: str  # the member nearest the cluster's centre
    members: list[str]  # every candidate in this cluster, nearest the centre first
    distances: list[float]  # of each member's mean embedding to the centre


@dataclass
class ConceptSelection:
    chosen: list[str]  # one concept per cluster, in the teacher's catalogue order
    held_out: list[str]  # never candidates
    clusters: list[ConceptCluster] = field(default_factory=list)  # in the order of `chosen`
    embedder: str = ""
    embedder_note: str = ""  # why that embedder, when it was chosen automatically
    images: int = 0  # how many source photos each concept edited

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _held_out_names(known: list[str], hold_out: Iterable[str]) -> list[str]:
    """`winter` (when the teacher knows it) plus the caller's names, checked, without repeats."""
    held_out = [name for name in ALWAYS_HELD_OUT if name in known]
    for name in hold_out:
        name = name.strip()
        if not name:
            continue
        if name not in known:
            raise E2GANError(f"cannot hold out unknown concept {name!r}; known: {', '.join(known)}")
        if name not in held_out:
            held_out.append(name)
    return held_out


def _embed_concepts(teacher: Teacher, candidates: list[str], prompts: dict[str, str],
                    images: list[Image.Image], seed: int, embed: Embedder) -> np.ndarray:
    """(concepts, D): each candidate's mean embedding over its edits of `images`.

    Every edit goes to the embedder in one call: the built-in embedder standardises its features
    over the set it is given, so embedding concept by concept would put them on different scales.
    """
    seeds = [seed + index for index in range(len(images))]
    edits = [edit for name in candidates for edit in teacher.edit(images, prompts[name], seeds)]
    embeddings = np.asarray(embed(edits), dtype=np.float64)
    return embeddings.reshape(len(candidates), len(images), -1).mean(axis=1)


def select_concepts(images: list[Image.Image], k: int, hold_out: Iterable[str] = (),
                    seed: int = 0, embedder: str | Embedder | None = None,
                    embedder_settings: dict[str, Any] | None = None,
                    teacher: Teacher | None = None) -> ConceptSelection:
    """k of `teacher`'s concepts (default: the built-in teacher's) that cover its catalogue, by
    K-means over each concept's mean embedding of its edits of `images`. `embedder` is a registry
    name (None: `default_embedder`) with `embedder_settings`, or an `Embedder` function.
    Deterministic for (images, k, hold_out, seed, embedder)."""
    if teacher is None:
        teacher = BuiltinTeacher()
    concepts = teacher.concepts()
    known = [concept.name for concept in concepts]
    held_out = _held_out_names(known, hold_out)
    candidates = [name for name in known if name not in held_out]
    if k < 1:
        raise E2GANError(f"k must be at least 1, got {k}")
    if k > len(candidates):
        raise E2GANError(f"asked for k={k} concepts but only {len(candidates)} candidates remain "
                         f"({len(known)} concepts, {len(held_out)} held out: {', '.join(held_out)})")
    if not images:
        raise E2GANError("concept selection needs at least one source photo")
    if callable(embedder):
        embed, name, note = embedder, getattr(embedder, "__name__", "custom"), ""
    else:
        embed, name, note = create_embedder(embedder, **(embedder_settings or {}))
    prompts = {concept.name: concept.prompt for concept in concepts}
    means = _embed_concepts(teacher, candidates, prompts, images, seed, embed)
    kmeans = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(means)
    distances = np.linalg.norm(means - kmeans.cluster_centers_[kmeans.labels_], axis=1)
    clusters = []
    for cluster in range(k):
        members = np.flatnonzero(kmeans.labels_ == cluster)
        members = members[np.argsort(distances[members], kind="stable")]
        clusters.append(ConceptCluster(candidates[members[0]], [candidates[i] for i in members],
                                       [round(float(distances[i]), 5) for i in members]))
    clusters.sort(key=lambda cluster: candidates.index(cluster.chosen))
    return ConceptSelection([cluster.chosen for cluster in clusters], held_out, clusters, name,
                            note, len(images))


def square_photos(images: Iterable[Image.Image], size: int) -> list[Image.Image]:
    """Each image's centre square at `size` pixels: every concept then edits, and the embedder
    sees, photos of one size, whatever the source's own sizes are."""
    photos = []
    for image in images:
        image = image.convert("RGB")
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        photos.append(image.crop((left, top, left + side, top + side))
                      .resize((size, size), Image.Resampling.LANCZOS))
    return photos

"""Step 3, Curate: the paper's cluster selection of k training pairs, reviewed by a person.

`e2gan.curation.selection.select` embeds every training pair and keeps the pair nearest each K-means
centre. Here the choice is saved (selection.json) with the clusters, so a user can drop a bad pair
and the next-nearest pair of the same cluster takes its place, keeping every cluster covered.
Pairs may also be filtered by a score the teacher stored (e.g. CLIP direction similarity) before
clustering.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from e2gan.data.dataset import PairDataset
from e2gan.curation.embedders import EMBEDDERS
from e2gan.errors import E2GANError
from e2gan.files import atomic_write_json
from e2gan.curation.selection import select

from app.workspace import ConceptFolder


def score_names(dataset: PairDataset) -> list[str]:
    """Numeric scores stored with the pairs (CLIP scores from a filtering teacher), if any."""
    names: set[str] = set()
    for record in dataset.records:
        names.update(key for key, value in record.scores.items() if isinstance(value, (int, float)))
    return sorted(names)


def _filtered(dataset: PairDataset, score: str | None, minimum: float | None) -> PairDataset:
    """The dataset with training pairs scoring under `minimum` left out (held-out pairs stay)."""
    if not score or minimum is None:
        return dataset
    if score not in score_names(dataset):
        raise E2GANError(f"the pairs have no score {score!r}; scores here: {score_names(dataset) or 'none'}")
    keep = [record for record in dataset.records if record.split == "test"
            or float(record.scores.get(score, float("-inf"))) >= minimum]
    return PairDataset(dataset.root, dataset.info, keep)


def run_selection(folder: ConceptFolder, k: int, method: str = "cluster", seed: int = 0,
                  embedder: str = "builtin", score: str | None = None,
                  minimum: float | None = None) -> dict[str, Any]:
    """Select k training pairs and save the choice; returns what selection.json holds."""
    dataset = _filtered(folder.require_dataset(), score, minimum)
    train = len(dataset.split("train"))
    if train == 0:
        raise E2GANError("no training pairs left to select from (lower the score filter)")
    k = min(int(k), train)
    chosen = select(dataset, k, method, seed, embedder=embedder)
    data = {"method": method, "k": k, "seed": seed, "embedder": embedder,
            "filter": {"score": score, "minimum": minimum} if score else None,
            "ids": chosen.ids, "all_ids": chosen.all_ids, "labels": chosen.labels,
            "distances": chosen.distances, "projection": chosen.projection, "dropped": [],
            # one_look: the pairs of other looks, left out before clustering, and how much the
            # pairs' edits agree with and without them
            "other_look": chosen.other_look_ids, "consistency": chosen.consistency}
    atomic_write_json(folder.selection_file, data)
    return data


def is_stale(folder: ConceptFolder, data: dict[str, Any] | None) -> bool:
    """Whether a saved selection was made before the pairs changed: a chosen pair is gone, or
    (without a score filter) the training pairs are not the ones it chose among."""
    dataset = folder.dataset()
    if not data or dataset is None:
        return False
    train = {record.id for record in dataset.split("train")}
    if not set(data["ids"]) <= train:
        return True
    return not data.get("filter") and set(data["all_ids"]) | set(data.get("other_look", [])) != train


def drop_pair(folder: ConceptFolder, pair_id: str) -> tuple[dict[str, Any], str | None]:
    """Drop `pair_id` from the selection; the nearest-to-centre pair of its cluster that is not
    chosen or dropped replaces it. Returns (new selection, replacement id or None)."""
    data = folder.selection()
    if not data:
        raise E2GANError("select pairs first")
    if pair_id not in data["ids"]:
        raise E2GANError(f"pair {pair_id!r} is not in the selection")
    data["ids"].remove(pair_id)
    data["dropped"].append(pair_id)
    replacement = None
    if data["labels"]:  # cluster selection: stay within the dropped pair's cluster
        cluster = data["labels"][data["all_ids"].index(pair_id)]
        taken = set(data["ids"]) | set(data["dropped"])
        candidates = sorted((distance, candidate) for candidate, label, distance
                            in zip(data["all_ids"], data["labels"], data["distances"])
                            if label == cluster and candidate not in taken)
        if candidates:
            replacement = candidates[0][1]
            order = {candidate: index for index, candidate in enumerate(data["all_ids"])}
            data["ids"] = sorted([*data["ids"], replacement], key=order.__getitem__)
    atomic_write_json(folder.selection_file, data)
    return data, replacement


def embedder_choices() -> list[str]:
    return EMBEDDERS.names()


def scatter(data: dict[str, Any] | None) -> go.Figure:
    """All training pairs on the 2-D PCA of their embeddings, clusters coloured, chosen marked."""
    figure = go.Figure()
    figure.update_layout(height=420, margin=dict(l=10, r=10, t=30, b=10), template="plotly_white",
                         title="pair embeddings (PCA); ◆ = chosen, × = dropped")
    if not data or not data.get("projection"):
        figure.add_annotation(text="run the selection to see the clusters", showarrow=False)
        return figure
    chosen, dropped = set(data["ids"]), set(data["dropped"])
    xs = [point[0] for point in data["projection"]]
    ys = [point[1] if len(point) > 1 else 0.0 for point in data["projection"]]
    kinds = ["chosen" if i in chosen else "dropped" if i in dropped else "other" for i in data["all_ids"]]
    symbols = {"chosen": "diamond", "dropped": "x", "other": "circle"}
    sizes = {"chosen": 11, "dropped": 9, "other": 6}
    for kind in ("other", "chosen", "dropped"):
        index = [i for i, k in enumerate(kinds) if k == kind]
        if not index:
            continue
        figure.add_trace(go.Scatter(
            x=[xs[i] for i in index], y=[ys[i] for i in index], mode="markers", name=kind,
            text=[f"{data['all_ids'][i]} · cluster {data['labels'][i]}" for i in index],
            hoverinfo="text",
            marker=dict(color=[data["labels"][i] for i in index], colorscale="Turbo",
                        cmin=0, cmax=max(data["labels"]) or 1,
                        symbol=symbols[kind], size=sizes[kind],
                        line=dict(width=1, color="black") if kind != "other" else None)))
    return figure

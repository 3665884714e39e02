"""Where a new concept's learned tokens start: at the known concept whose edit is already closest.

A LoRA fine-tune of a few CPU minutes moves the base only a little, so its starting point decides
much of the result. The mean of the base's concept tables is a point the generator understands,
but with colour remaps among the base's concepts (cyanotype, thermal camera, duotone) their mean
remaps hues too (winter on the shipped base: the mean starts at 12.4 dB against the teacher,
worse than the unedited photo's 13.4; the closest table, cyanotype, starts at 15.2), and five
minutes of LoRA only partly make up for it (the studio's winter fine-tune ends at 19.53 dB from
the mean, 19.90 from the closest table). So the start is chosen by trying every table the base knows,
and their mean, on a few of the concept's own training pairs and keeping the one with the lowest
L1 to the teacher's edits: the same criterion the generator is then trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Dataset

from e2gan.text import LearnedConceptEncoder

MEAN = "<mean of known concepts>"


@dataclass(frozen=True)
class ConceptStart:
    table: torch.Tensor  # (tokens, dim), detached
    source: str  # a known concept's key, or MEAN
    l1_by_candidate: dict[str, float]  # every candidate's L1 to the edits (empty for "mean")


def mean_table(encoder: LearnedConceptEncoder) -> torch.Tensor:
    return torch.stack([table.detach() for table in encoder.tables.values()]).mean(dim=0)


@torch.no_grad()
def closest_concept_start(generator: nn.Module, encoder: LearnedConceptEncoder, pairs: Dataset,
                          count: int = 8) -> ConceptStart:
    """Score each known table (and their mean) by L1 of the generator's edits of `count`
    training pairs against the teacher's, as at inference (eval mode: no noise). Needs at
    least one known table."""
    candidates = {key: table.detach() for key, table in encoder.tables.items()}
    candidates[MEAN] = mean_table(encoder)
    step = max(1, len(pairs) // count)  # spread over the pairs, not the first few
    items = [pairs[index] for index in range(0, len(pairs), step)][:count]
    sources = torch.stack([item["source"] for item in items])
    edits = torch.stack([item["edited"] for item in items])
    parameter = next(generator.parameters())
    sources, edits = sources.to(parameter.device), edits.to(parameter.device)
    was_training = generator.training
    generator.eval()
    scores = {}
    for key, table in candidates.items():
        text = table.to(sources.device).unsqueeze(0).expand(len(items), -1, -1)
        scores[key] = (generator(sources, text) - edits).abs().mean().item()
    generator.train(was_training)
    best = min(scores, key=scores.get)
    return ConceptStart(candidates[best].clone(), best, scores)

"""The per-batch step of a generation: every candidate edit of each image, and the one kept.

With one teacher and one candidate this is a plain teacher call. With several (other knobs and
seeds, or several teachers) a `CandidateFilter` scores them with CLIP and the best passing one is
kept; images whose candidates all fail go to the rejection log, so a rerun does not make them
again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2gan.data.pair_format import append_line, cut_unfinished_line
from e2gan.data.shards import order_key
from e2gan.files import atomic_write_bytes
from e2gan.teachers import Teacher
from e2gan.teachers.candidates import CandidateFilter

REJECTED_FILE = "rejected.jsonl"
# Candidate c of pair i is made with seed + i + c * stride: candidate 0 is the plain run's edit,
# and the other candidates' seeds never meet another pair's.
CANDIDATE_SEED_STRIDE = 1_000_003


@dataclass
class Choice:
    edit: Any  # the kept edit (PIL image), or None when every candidate failed the filter
    teacher: Teacher
    seed: int
    scores: dict[str, Any]
    parameters: dict[str, Any]


class CandidateRun:
    """Makes every candidate edit of a batch and picks one per image."""

    def __init__(self, pool: list[Teacher], candidate_filter: CandidateFilter | None, prompt: str,
                 phrasings: dict[str, str], seed: int) -> None:
        self.pool, self.filter, self.prompt, self.seed = pool, candidate_filter, prompt, seed
        self.phrasings = phrasings
        self.parameters = [member.parameters() for member in pool]

    def prompt_for(self, member: Teacher) -> str:
        return self.phrasings.get(member.phrasing, self.prompt)

    def edit_batch(self, images: list, indices: list[int]) -> list[Choice]:
        candidate_edits = []
        for number, member in enumerate(self.pool):
            seeds = [self.seed + index + number * CANDIDATE_SEED_STRIDE for index in indices]
            candidate_edits.append(member.edit(images, self.prompt_for(member), seeds))
        scores = None
        if self.filter is not None:
            caption = self.phrasings.get("description", self.prompt)
            scores = self.filter.score(images, candidate_edits, caption)
        choices = []
        for position, index in enumerate(indices):
            kept, best = 0, 0
            if scores is not None:
                kept, best = self.filter.choose([scores[c][position] for c in range(len(self.pool))])
            number = best if kept is None else kept
            member = self.pool[number]
            parameters = dict(self.parameters[number])
            if self.prompt_for(member) != self.prompt:
                parameters["teacher_prompt"] = self.prompt_for(member)
            if len(self.pool) > 1:
                parameters["candidate"] = number
            choices.append(Choice(
                edit=None if kept is None else candidate_edits[number][position], teacher=member,
                seed=self.seed + index + number * CANDIDATE_SEED_STRIDE,
                scores={} if scores is None else dict(scores[number][position]),
                parameters=parameters))
        return choices


def dataset_parameters(teachers: list[Teacher], num_candidates: int,
                       candidate_filter: CandidateFilter | None) -> dict[str, Any]:
    """The teacher_params of dataset.json: the teacher's (or every teacher's) settings, and the
    candidate count and filter settings when candidates were compared."""
    parameters = (teachers[0].parameters() if len(teachers) == 1
                  else {"teachers": [each.parameters() for each in teachers]})
    if num_candidates > 1 or candidate_filter is not None:
        parameters = {**parameters, "candidates": num_candidates}
    if candidate_filter is not None:
        parameters["clip_filter"] = candidate_filter.settings()
    return parameters


class Rejections:
    """The log of images whose candidates all failed the filter: ``rejected.jsonl`` (one
    ``{"id", "scores", "filter"}`` per line, fsynced like the metadata), ``rejected-<shard>.jsonl``
    per process in a sharded run. Only lines made with the current filter settings count."""

    def __init__(self, root: Path, candidate_filter: CandidateFilter | None,
                 shard: int | None = None) -> None:
        self.root = root
        self.settings = candidate_filter.settings() if candidate_filter is not None else None
        self.path = root / (REJECTED_FILE if shard is None else f"rejected-{shard:05d}.jsonl")
        self.ids = {line["id"] for line in self._lines()} if self.settings is not None else set()
        if self.path.is_file():
            cut_unfinished_line(self.path)

    def _lines(self) -> list[dict]:
        lines = []
        for path in [self.root / REJECTED_FILE, *sorted(self.root.glob("rejected-*.jsonl"))]:
            if not path.is_file():
                continue
            for text in path.read_text(encoding="utf-8").splitlines(keepends=True):
                try:
                    entry = json.loads(text) if text.endswith("\n") else None
                except ValueError:
                    entry = None  # a damaged line: that image is simply made again
                if isinstance(entry, dict) and entry.get("filter") == self.settings:
                    lines.append(entry)
        return lines

    def add(self, pair_id: str, scores: dict[str, Any]) -> None:
        line = json.dumps({"id": pair_id, "scores": scores, "filter": self.settings}, sort_keys=True)
        append_line(self.path, (line + "\n").encode("utf-8"))
        self.ids.add(pair_id)

    def merge(self, order: list[str]) -> None:
        """Fold the shard logs into rejected.jsonl in source order (lines of other filter settings
        are dropped: they no longer decide anything)."""
        shards = sorted(self.root.glob("rejected-*.jsonl"))
        if not shards or self.settings is None:
            return
        lines = {entry["id"]: entry for entry in self._lines()}
        ordered = sorted(lines.values(), key=order_key(order, lambda entry: entry["id"]))
        atomic_write_bytes(self.root / REJECTED_FILE, b"".join(
            (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8") for entry in ordered))
        for shard in shards:
            shard.unlink()

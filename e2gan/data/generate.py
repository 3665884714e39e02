"""Make a paired dataset: a teacher edits source images into a concept.

Resumable by construction: pairs are written one by one (each atomically), ids come from the source
images, and a rerun with the same arguments skips the ids already present, so a killed run never
duplicates or loses pairs. `should_stop` is polled between batches for cooperative cancelling.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from e2gan.data.dataset import DatasetInfo, PairDataset, PairDatasetWriter, assign_splits, unique_pair_ids
from e2gan.errors import E2GANError
from e2gan.teachers import Teacher


@dataclass
class GenerationResult:
    dataset: PairDataset
    made: int
    skipped: int
    seconds: float
    stopped_early: bool

    def summary(self) -> dict[str, Any]:
        return {"dataset": str(self.dataset.root), "pairs": len(self.dataset), "made": self.made,
                "skipped_existing": self.skipped, "seconds": round(self.seconds, 3),
                "pairs_per_second": round(self.made / max(self.seconds, 1e-9), 3),
                "complete": self.dataset.info.complete, "stopped_early": self.stopped_early}


def generate_pairs(teacher: Teacher, source, prompt: str, out_root: str | os.PathLike,
                   concept: str | None = None, seed: int = 0, test_fraction: float = 0.2,
                   batch_size: int = 8, on_progress: Callable[[dict], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> GenerationResult:
    """Edit every image of `source` (an `ImageSource`) with `teacher` into `out_root`.

    The seed of pair i is `seed + i` over the source's order, so a pair's edit does not depend on
    which other pairs were made in the same run (resume gives identical pairs).
    """
    if not 0.0 <= test_fraction < 1.0:
        raise E2GANError(f"test fraction must be in [0, 1), got {test_fraction}")
    ids = unique_pair_ids(source.ids)
    if not ids:
        raise E2GANError("the image source has no images")
    splits = assign_splits(ids, test_fraction, seed)
    info = DatasetInfo(concept=concept or prompt, prompt=prompt, prompts=[prompt],
                       teacher=teacher.name, teacher_params=teacher.parameters())
    writer = PairDatasetWriter(Path(out_root), info)
    done = writer.existing_ids()
    todo = [(index, source_id, pair_id) for index, (source_id, pair_id)
            in enumerate(zip(source.ids, ids)) if pair_id not in done]
    started, made, stopped = time.perf_counter(), 0, False
    for start in range(0, len(todo), batch_size):
        if should_stop and should_stop():
            stopped = True
            break
        chunk = todo[start:start + batch_size]
        images = [source.load(source_id) for _, source_id, _ in chunk]
        seeds = [seed + index for index, _, _ in chunk]
        edits = teacher.edit(images, prompt, seeds)
        for (index, source_id, pair_id), image, edit, pair_seed in zip(chunk, images, edits, seeds):
            writer.add(pair_id, image, edit, seed=pair_seed, split=splits[pair_id], origin=source_id)
            made += 1
        if on_progress:
            elapsed = time.perf_counter() - started
            rate = made / max(elapsed, 1e-9)
            on_progress({"done": len(done) + made, "total": len(ids), "made": made,
                         "seconds": elapsed, "eta_seconds": (len(todo) - made) / max(rate, 1e-9)})
    dataset = writer.finalize() if not stopped else PairDataset.open(writer.root)
    return GenerationResult(dataset, made, len(done), time.perf_counter() - started, stopped)

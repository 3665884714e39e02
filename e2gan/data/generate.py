"""Make a paired dataset: a teacher edits source images into a concept.

Resumable by construction: pairs are written one by one (each atomically), ids come from the source
images, and a rerun with the same arguments skips the ids already present, so a killed run never
duplicates or loses pairs. `should_stop` is polled between batches, and teachers that can stop
inside a batch (the diffusion ones) poll it after every denoising step; a stopped batch is dropped
whole and made again by the rerun.

Candidate selection: with `candidates` > 1 (or several teachers) every image gets several edits
(other knobs and seeds), a `CandidateFilter` scores them with CLIP and the best passing one is
kept, its scores stored in the pair's record. Images whose candidates all fail are logged in
``rejected.jsonl`` (with the filter settings), so a rerun does not make them again. That per-batch
step lives in `e2gan.data.candidate_run`.

Sharding: given an accelerate `PartialState` of several processes (`accelerate launch -m e2gan.cli
pairs ...`), the main process creates (or repairs) the dataset, the images still to make are split
between the processes, each appends to its own metadata and rejection files, and the main process
merges them in source order at the end: the same dataset a single process makes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from e2gan.data.candidate_run import (CANDIDATE_SEED_STRIDE, CandidateRun, Rejections,
                                      dataset_parameters)
from e2gan.data.dataset import (DatasetInfo, PairDataset, PairDatasetWriter, assign_splits,
                                merge_metadata_shards, unique_pair_ids)
from e2gan.data.pair_format import IMAGE_FOLDERS
from e2gan.errors import E2GANError
from e2gan.files import open_image
from e2gan.teachers import (GenerationStopped, PHRASINGS, Teacher, free_text_phrasings,
                            resolve_builtin_concept)
from e2gan.teachers.candidates import CandidateFilter
from e2gan.teachers.clip_scores import ClipScorer
from e2gan.text import concept_key

__all__ = ["CANDIDATE_SEED_STRIDE", "GenerationResult", "build_candidate_filter", "distributed_state",
           "generate_pairs", "phrase_concept", "resolve_concept"]


@dataclass
class GenerationResult:
    dataset: PairDataset
    made: int
    skipped: int
    seconds: float
    stopped_early: bool
    rejected: int = 0
    process_index: int = 0
    num_processes: int = 1

    def summary(self) -> dict[str, Any]:
        return {"dataset": str(self.dataset.root), "pairs": len(self.dataset), "made": self.made,
                "rejected": self.rejected, "skipped_existing": self.skipped,
                "seconds": round(self.seconds, 3),
                "pairs_per_second": round(self.made / max(self.seconds, 1e-9), 3),
                "complete": self.dataset.info.complete, "stopped_early": self.stopped_early,
                "phrasings": self.dataset.info.phrasings,
                "processes": self.num_processes}


@dataclass(frozen=True)
class PairsProgress:
    """After each batch of edits: how far the pair maker is (`on_progress`'s event)."""

    done: int  # pairs of the source dealt with, this run's and earlier runs' (kept or rejected)
    total: int  # pairs of the source in all
    made: int = 0  # written by this run
    rejected: int = 0  # refused by the candidate filter in this run
    seconds: float = 0.0
    eta_seconds: float | None = None


def generate_pairs(teacher: Teacher | Sequence[Teacher], source, prompt: str,
                   out_root: str | os.PathLike, concept: str | None = None, seed: int = 0,
                   test_fraction: float = 0.2, batch_size: int = 8,
                   on_progress: Callable[[PairsProgress], None] | None = None,
                   should_stop: Callable[[], bool] | None = None, *,
                   phrasings: dict[str, str] | None = None, candidates: int = 1,
                   candidate_filter: CandidateFilter | None = None,
                   distributed: Any = None) -> GenerationResult:
    """Edit every image of `source` (an `ImageSource`) with `teacher` into `out_root`.

    `prompt` is what the GAN will be conditioned on (stored with every pair); a teacher is given
    `phrasings[teacher.phrasing]` when present (an instruction for InstructPix2Pix). `teacher` may
    be several teachers, each contributing `candidates` candidate settings. `distributed` is an
    accelerate `PartialState` (or None for one process).

    The seed of pair i is `seed + i` over the source's order, so a pair's edit does not depend on
    which other pairs were made in the same run (resume gives identical pairs).

    About `test_fraction` of the pairs are held out (split "test"): drawn image by image, except
    from a source that holds whole photos out (`ImageSource.photo_splits`: the built-in photos),
    whose test pairs are all crops of photos no training pair comes from.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise E2GANError(f"test fraction must be in [0, 1), got {test_fraction}")
    if batch_size < 1:
        raise E2GANError(f"batch size must be at least 1, got {batch_size}")
    teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
    if not teachers:
        raise E2GANError("no teacher given")
    # A source that holds whole photos out (the built-in photos) deals its images for this test
    # fraction and splits them by photo; any other is split image by image below.
    by_photo = source.photo_splits(test_fraction)
    if by_photo is not None:
        source, source_splits = by_photo
    ids = unique_pair_ids(source.ids)
    if not ids:
        raise E2GANError("the image source has no images")
    for each in teachers:
        each.prepare()  # a missing model fails here, before anything is written
    pool = [variant for each in teachers for variant in each.variants(candidates)]
    if len(pool) > 1 and candidate_filter is None:
        raise E2GANError(f"{len(pool)} candidate edits per image need a CLIP filter to choose "
                         "between them (--clip-filter)")
    phrasings = {kind: text for kind, text in (phrasings or {}).items() if text}
    splits = (assign_splits(ids, test_fraction, seed) if by_photo is None else
              {pair_id: source_splits[source_id] for source_id, pair_id in zip(source.ids, ids)})
    # Each phrasing as given, and the prompt for a teacher whose phrasing was not given.
    used = {**{each.phrasing: prompt for each in teachers}, **phrasings}
    info = DatasetInfo(concept=concept or prompt, prompt=prompt,
                       prompts=list(dict.fromkeys([prompt, *phrasings.values()])),
                       phrasings={kind: used[kind] for kind in [*PHRASINGS, *used] if kind in used},
                       teacher="+".join(dict.fromkeys(each.name for each in teachers)),
                       teacher_params=dataset_parameters(teachers, len(pool), candidate_filter))
    root = Path(out_root)
    _check_resumed_crop_size(root, source)
    rank = distributed.process_index if distributed is not None else 0
    processes = distributed.num_processes if distributed is not None else 1
    if rank == 0:
        writer = PairDatasetWriter(root, info)  # creates, or repairs what a killed run left
    if processes > 1:
        distributed.wait_for_everyone()
        writer = PairDatasetWriter(root, info, shard=rank)
    rejections = Rejections(root, candidate_filter, shard=rank if processes > 1 else None)
    done, rejected_before = writer.existing_ids(), len(rejections.ids)
    todo = [(index, source_id, pair_id) for index, (source_id, pair_id)
            in enumerate(zip(source.ids, ids)) if pair_id not in done and pair_id not in rejections.ids]
    if processes > 1:
        with distributed.split_between_processes(todo) as share:
            todo = list(share)

    run = CandidateRun(pool, candidate_filter, prompt, phrasings, seed)
    started, made, rejected, stopped = time.perf_counter(), 0, 0, False
    for member in pool:
        member.stop_requested = should_stop
    try:
        for start in range(0, len(todo), batch_size):
            if should_stop and should_stop():
                stopped = True
                break
            chunk = todo[start:start + batch_size]
            images = [source.load(source_id) for _, source_id, _ in chunk]
            try:
                chosen = run.edit_batch(images, [index for index, _, _ in chunk])
            except GenerationStopped:
                stopped = True
                break
            for (index, source_id, pair_id), image, choice in zip(chunk, images, chosen):
                if choice.edit is None:
                    rejections.add(pair_id, choice.scores)
                    rejected += 1
                    continue
                writer.add(pair_id, image, choice.edit, seed=choice.seed, split=splits[pair_id],
                           origin=source.origin(source_id), scores=choice.scores, teacher=choice.teacher.name,
                           teacher_params=choice.parameters)
                made += 1
            if on_progress:
                elapsed = time.perf_counter() - started
                rate = (made + rejected) / max(elapsed, 1e-9)
                on_progress(PairsProgress(len(done) + len(rejections.ids) + made, len(ids), made,
                                          rejected, elapsed,
                                          (len(todo) - made - rejected) / max(rate, 1e-9)))
    finally:
        for member in pool:
            member.stop_requested = None

    if processes > 1:
        distributed.wait_for_everyone()
    if rank == 0:
        records = merge_metadata_shards(root, order=ids)
        rejections.merge(order=ids)
        all_rejected = Rejections(root, candidate_filter).ids
        if processes > 1:  # the main process reports what every process made
            made = len(records) - len(done)
            rejected = len(all_rejected) - rejected_before
        if not stopped and {record.id for record in records} | all_rejected >= set(ids):
            PairDatasetWriter(root, info).finalize()
    if processes > 1:
        distributed.wait_for_everyone()  # every process returns the merged dataset
    return GenerationResult(PairDataset.open(root), made, len(done), time.perf_counter() - started,
                            stopped, rejected, rank, processes)


def _check_resumed_crop_size(root: Path, source) -> None:
    """A resumed dataset of crops keeps its crop size: 64 px and 128 px pairs in one dataset
    would train and be judged as one. Checked before the writer reopens (and touches) it."""
    crop_size = getattr(source, "crop_size", None)
    folder = root / IMAGE_FOLDERS[0]
    made = next(folder.glob("*.png"), None) if crop_size is not None and folder.is_dir() else None
    if made is None:
        return
    with open_image(made, str(made)) as image:
        width, height = image.size
    if (width, height) != (crop_size, crop_size):
        raise E2GANError(f"dataset {root} was made at {width} px, not {crop_size}; resume it at "
                         f"size {width} (pairs --size {width}) or write to another folder")


# --- setting a run up (the CLI and the studio) -------------------------------------------------

def phrase_concept(text: str, instruction: str | None = None, description: str | None = None,
                   named_only: bool = False) -> tuple[str, dict[str, str]]:
    """(concept name, phrasings) for `text`: a built-in concept (by name, prompt or instruction)
    brings both of its phrasings; free text gets `free_text_phrasings` (a description is turned
    into an instruction and back). `instruction` / `description`, when given, replace either.
    `named_only` (a teacher that knows only named concepts) refuses free text, naming the ways
    out."""
    try:
        concept = resolve_builtin_concept(text)
    except E2GANError:
        if named_only:
            raise
        concept = None
    if concept is not None:
        name, phrasings = concept.name, concept.phrasings()
    else:
        name, phrasings = concept_key(text), free_text_phrasings(text)
    overrides = {"instruction": instruction, "description": description}
    phrasings.update({kind: " ".join(value.split()) for kind, value in overrides.items()
                      if value and value.strip()})
    return name, phrasings


def resolve_concept(teachers: Sequence[Teacher], text: str, instruction: str | None = None,
                    description: str | None = None) -> tuple[str, str, dict[str, str]]:
    """(prompt, concept name, phrasings) for `text` as `phrase_concept` reads it; a teacher that
    knows only named concepts (the built-in one) refuses free text. The prompt (what the GAN is
    conditioned on) is the description."""
    named_only = any(each.concepts() is not None for each in teachers)
    name, phrasings = phrase_concept(text, instruction, description, named_only=named_only)
    return phrasings["description"], name, phrasings


def build_candidate_filter(spec: str, device: str = "cpu", **thresholds: Any) -> CandidateFilter:
    """A CLIP candidate filter from 'MODEL' or 'MODEL:PRETRAINED' (an open_clip tag or a weights
    file; the local HF cache only), or 'tiny-random' (meaningless scores: for tests and dry runs).
    `thresholds` are CandidateFilter fields; None keeps a default."""
    if spec == "tiny-random":
        scorer = ClipScorer.tiny_random(device=device)
    else:
        model_name, _, pretrained = spec.partition(":")
        scorer = ClipScorer.from_pretrained(model_name or "ViT-B-32", pretrained or None, device=device)
    return CandidateFilter(scorer, **{k: v for k, v in thresholds.items() if v is not None})


def distributed_state():
    """accelerate's `PartialState` when this process is one of several (`accelerate launch`,
    torchrun), else None: a plain run never initialises torch.distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    # Without cpu=True accelerate treats CPU-only processes as one unsharded run.
    return PartialState(cpu=not torch.cuda.is_available())

"""Sharded generation: several processes write one dataset, identical to a single-process run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from e2gan.data.dataset import (
    DatasetInfo,
    PairDataset,
    PairDatasetWriter,
    merge_metadata_shards,
    shard_metadata_paths,
)
from e2gan.data.generate import generate_pairs
from e2gan.data.sources import builtin_photos
from e2gan.errors import E2GANError
from e2gan.teachers import create_teacher

REPO = Path(__file__).resolve().parents[1]
PROMPT = "a snowy winter scene"


def _snapshot(root: Path) -> tuple[list[dict], dict[str, bytes]]:
    dataset = PairDataset.open(root)
    files = {str(p.relative_to(root)): p.read_bytes() for folder in ("source", "edited")
             for p in sorted((root / folder).iterdir())}
    return [record.to_dict() for record in dataset], files


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_processes_under_accelerate_launch_make_the_single_process_dataset(tmp_path):
    single = generate_pairs(create_teacher("builtin"), builtin_photos(6, size=32), PROMPT,
                            tmp_path / "single", concept="winter", batch_size=2)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    # accelerate's multi-process launcher (torchrun underneath); on a CPU-only machine the
    # processes join a gloo group (see e2gan.data.generate.distributed_state).
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
               "-m", "e2gan.cli", "pairs", "--concept", "winter", "--count", "6", "--size", "32",
               "--batch-size", "2", "--out", str(tmp_path / "sharded"), "--json"]
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]
    summaries = [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1  # only the main process reports
    assert summaries[0]["processes"] == 2 and summaries[0]["made"] == 6 and summaries[0]["complete"]
    assert "[pairs 1/2]" in finished.stderr  # the second process really did a share
    sharded = tmp_path / "sharded"
    assert not shard_metadata_paths(sharded)  # merged
    assert _snapshot(sharded) == _snapshot(single.dataset.root)
    assert PairDataset.open(sharded).info.complete


def _info() -> DatasetInfo:
    return DatasetInfo(concept="winter", prompt=PROMPT, prompts=[PROMPT], teacher="builtin")


def test_shard_writers_append_side_by_side_and_merge_in_source_order(tmp_path):
    teacher = create_teacher("builtin")
    source = builtin_photos(6, size=32)
    images = {i: source.load(i) for i in source.ids}
    root = tmp_path / "d"
    PairDatasetWriter(root, _info())  # the main process creates the dataset
    shards = [PairDatasetWriter(root, _info(), shard=rank) for rank in (0, 1)]
    for position, pair_id in enumerate(reversed(source.ids)):  # out of order on purpose
        [edit] = teacher.edit([images[pair_id]], PROMPT, [position])
        shards[position % 2].add(pair_id, images[pair_id], edit, seed=position)
    assert {p.name for p in shard_metadata_paths(root)} == {"metadata-00000.jsonl", "metadata-00001.jsonl"}
    assert sorted(PairDataset.open(root).ids) == sorted(source.ids)  # readers see the union
    with pytest.raises(E2GANError, match="cannot finalize"):
        shards[0].finalize()
    merged = merge_metadata_shards(root, order=source.ids)
    assert [record.id for record in merged] == source.ids
    assert not shard_metadata_paths(root)
    assert PairDataset.open(root).ids == source.ids


def test_a_merge_cut_off_before_deleting_the_shards_counts_each_pair_once(tmp_path):
    root = tmp_path / "d"
    source = builtin_photos(2, size=32)
    PairDatasetWriter(root, _info())
    shard = PairDatasetWriter(root, _info(), shard=1)
    for pair_id in source.ids:
        shard.add(pair_id, source.load(pair_id), source.load(pair_id))
    shard_file = shard_metadata_paths(root)[0]
    kept = shard_file.read_bytes()
    merge_metadata_shards(root)
    shard_file.write_bytes(kept)  # as if the process died between the two steps
    assert PairDataset.open(root).ids == source.ids
    conflicting = kept.replace(b'"seed": null', b'"seed": 5', 1)
    shard_file.write_bytes(conflicting)
    with pytest.raises(E2GANError, match="different content"):
        PairDataset.open(root)


def test_a_killed_sharded_run_is_finished_by_a_plain_rerun(tmp_path):
    teacher = create_teacher("builtin")
    source = builtin_photos(6, size=32)
    reference = generate_pairs(teacher, source, PROMPT, tmp_path / "reference", concept="winter")
    root = tmp_path / "d"
    PairDatasetWriter(root, reference.dataset.info)
    shard = PairDatasetWriter(root, reference.dataset.info, shard=1)
    for index in (4, 5):  # the second process had finished its share, the first had not started
        record = reference.dataset.get(source.ids[index])
        shard.add_files(record, reference.dataset.path_of(record, "source"),
                        reference.dataset.path_of(record, "edited"))
    with open(shard_metadata_paths(root)[0], "ab") as handle:
        handle.write(b'{"id": "half a line')  # killed mid-append
    (root / "edited" / "orphan.png").write_bytes(b"left by a killed write")
    result = generate_pairs(teacher, source, PROMPT, root, concept="winter")
    assert (result.made, result.skipped) == (4, 2)
    assert result.dataset.info.complete and not shard_metadata_paths(root)
    assert _snapshot(root) == _snapshot(reference.dataset.root)

"""The paired-dataset format: writing, resuming, crash repair, validation, subsets, training view."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from e2gan.data.dataset import (
    METADATA_FILE,
    DatasetInfo,
    PairDataset,
    PairDatasetWriter,
    assign_splits,
    safe_pair_id,
    unique_pair_ids,
    write_subset,
)
from e2gan.data.torch_data import PairTensorDataset, image_to_tensor, tensor_to_image
from e2gan.errors import E2GANError


def random_image(seed: int, width: int = 40, height: int = 32) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def make_info(**overrides) -> DatasetInfo:
    fields = dict(concept="snowy", prompt="make it snowy", prompts=["make it snowy"], teacher="fake")
    fields.update(overrides)
    return DatasetInfo(**fields)


def write_dataset(root, count: int = 4, finalize: bool = True, **add_fields) -> PairDatasetWriter:
    writer = PairDatasetWriter(root, make_info())
    for index in range(count):
        writer.add(f"{index:04d}", random_image(index), random_image(100 + index), seed=index, **add_fields)
    if finalize:
        writer.finalize()
    return writer


def test_write_then_open_round_trips(tmp_path):
    root = tmp_path / "ds"
    writer = PairDatasetWriter(root, make_info(teacher_params={"steps": 4}))
    writer.add("0000", random_image(0), random_image(1), seed=7, split="test", scores={"clip": 0.3}, origin="o")
    writer.add("0001", random_image(2), random_image(3), prompt="add snow")
    opened = writer.finalize()

    assert len(opened) == 2
    assert opened.info.complete and opened.info.num_pairs == 2 and opened.info.concept == "snowy"
    first, second = opened.records
    assert (first.seed, first.split, first.scores, first.origin) == (7, "test", {"clip": 0.3}, "o")
    assert first.teacher == "fake" and first.teacher_params == {"steps": 4}
    assert first.source == "source/0000.png" and first.edited == "edited/0000.png"
    assert second.prompt == "add snow" and first.prompt == "make it snowy"
    assert [r.id for r in opened.split("test")] == ["0000"]
    assert [r.id for r in opened.split("train")] == ["0001"]
    source, edited = opened.load_pair(first)
    assert np.array_equal(np.asarray(source), np.asarray(random_image(0)))
    assert np.array_equal(np.asarray(edited), np.asarray(random_image(1)))
    assert opened.path_of(first, "edited") == root / "edited" / "0000.png"
    info_json = json.loads((root / "dataset.json").read_text())
    assert info_json["format"] == "e2gan-pairs" and info_json["version"] == 1


def test_reopen_resumes_and_marks_incomplete_until_finalized(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root, count=2)
    with PairDatasetWriter(root, make_info()) as writer:
        assert writer.existing_ids() == {"0000", "0001"}
        assert PairDataset.open(root).info.complete is False
        writer.add("0002", random_image(5), random_image(6))
    assert PairDataset.open(root).info.complete is False  # leaving the block does not finalize
    writer.finalize()
    reopened = PairDataset.open(root)
    assert reopened.ids == ["0000", "0001", "0002"] and reopened.info.num_pairs == 3


def test_duplicate_id_refused_even_after_reopen(tmp_path):
    root = tmp_path / "ds"
    writer = write_dataset(root, count=1)
    with pytest.raises(E2GANError, match="already in dataset"):
        writer.add("0000", random_image(0), random_image(1))
    with pytest.raises(E2GANError, match="already in dataset"):
        PairDatasetWriter(root, make_info()).add("0000", random_image(0), random_image(1))


def test_bad_ids_and_splits_refused(tmp_path):
    writer = PairDatasetWriter(tmp_path / "ds", make_info())
    for bad_id in ("../escape", "", ".hidden", "a/b"):
        with pytest.raises(E2GANError, match="id"):
            writer.add(bad_id, random_image(0), random_image(1))
    with pytest.raises(E2GANError, match="split"):
        writer.add("ok", random_image(0), random_image(1), split="validation")


def test_reopen_with_other_concept_or_teacher_refused(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root, count=1)
    with pytest.raises(E2GANError, match="concept 'snowy'"):
        PairDatasetWriter(root, make_info(concept="sketch"))
    with pytest.raises(E2GANError, match="teacher 'fake'"):
        PairDatasetWriter(root, make_info(teacher="other"))


def test_reopen_with_another_look_of_the_teacher_refused(tmp_path):
    # The built-in teacher's version 2 fixes a look per look seed: resuming a dataset with another
    # version or look seed would mix two looks in one concept's pairs.
    root = tmp_path / "ds"
    PairDatasetWriter(root, make_info(teacher_params={"version": 2, "look_seed": 0}))
    with pytest.raises(E2GANError, match="teacher look_seed 0, not 1"):
        PairDatasetWriter(root, make_info(teacher_params={"version": 2, "look_seed": 1}))
    with pytest.raises(E2GANError, match="teacher version 2, not 1"):
        PairDatasetWriter(root, make_info(teacher_params={"version": 1, "look_seed": 0}))
    PairDatasetWriter(root, make_info(teacher_params={"version": 2, "look_seed": 0, "steps": 4}))


def test_writer_refuses_a_folder_that_is_not_a_dataset(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    with pytest.raises(E2GANError, match="not an e2gan dataset"):
        PairDatasetWriter(tmp_path / "stuff", make_info())


def test_truncated_last_line_is_repaired_and_orphans_removed(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root, count=3, finalize=False)
    metadata = root / METADATA_FILE
    lines = metadata.read_bytes().split(b"\n")
    # A crash mid-append: the third line is cut short, its images exist but nothing points at them.
    metadata.write_bytes(b"\n".join(lines[:2]) + b"\n" + lines[2][:25])
    (root / "source" / ".0009.png.abc.tmp").write_bytes(b"half")  # an interrupted atomic write
    (root / "source" / "0005.png").write_bytes(b"orphan")
    (root / "source" / "README.txt").write_text("left alone")

    assert PairDataset.open(root).ids == ["0000", "0001"]  # readers skip the unfinished tail

    writer = PairDatasetWriter(root, make_info())
    assert writer.existing_ids() == {"0000", "0001"}
    assert metadata.read_bytes().endswith(b"\n") and metadata.read_bytes().count(b"\n") == 2
    assert sorted(p.name for p in (root / "source").iterdir()) == ["0000.png", "0001.png", "README.txt"]
    assert sorted(p.name for p in (root / "edited").iterdir()) == ["0000.png", "0001.png"]
    writer.add("0002", random_image(9), random_image(10))
    assert writer.finalize().ids == ["0000", "0001", "0002"]


def test_crash_right_after_creation_reopens(tmp_path):
    root = tmp_path / "ds"
    PairDatasetWriter(root, make_info())
    (root / METADATA_FILE).unlink()  # as if killed between dataset.json and metadata.jsonl
    writer = PairDatasetWriter(root, make_info())
    writer.add("0000", random_image(0), random_image(1))
    assert writer.finalize().ids == ["0000"]


def test_crash_between_images_and_metadata_leaves_a_readable_dataset(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    writer = write_dataset(root, count=2, finalize=False)

    def crash(self, record):
        raise KeyboardInterrupt

    monkeypatch.setattr(PairDatasetWriter, "_append", crash)
    with pytest.raises(KeyboardInterrupt):
        writer.add("0002", random_image(2), random_image(3))
    monkeypatch.undo()
    assert PairDataset.open(root).ids == ["0000", "0001"]
    assert (root / "source" / "0002.png").exists()
    PairDatasetWriter(root, make_info())
    assert not (root / "source" / "0002.png").exists()


def test_open_reports_problems_clearly(tmp_path):
    with pytest.raises(E2GANError, match="not found"):
        PairDataset.open(tmp_path / "nowhere")
    (tmp_path / "plain").mkdir()
    with pytest.raises(E2GANError, match="not an e2gan dataset"):
        PairDataset.open(tmp_path / "plain")

    root = tmp_path / "ds"
    write_dataset(root, count=3)
    (root / "edited" / "0001.png").unlink()
    with pytest.raises(E2GANError, match=r"missing 1 image.*edited/0001\.png"):
        PairDataset.open(root)

    root = tmp_path / "ds2"
    write_dataset(root, count=3)
    metadata = root / METADATA_FILE
    lines = metadata.read_text().splitlines()
    lines[1] = "{not json"
    metadata.write_text("\n".join(lines) + "\n")
    with pytest.raises(E2GANError, match="line 2 is not valid JSON"):
        PairDataset.open(root)
    lines[1] = json.dumps({**json.loads(lines[0]), "source": "../../etc/passwd"})
    metadata.write_text("\n".join(lines) + "\n")
    with pytest.raises(E2GANError, match="line 2: source must be"):
        PairDataset.open(root)

    (root / "dataset.json").write_text(json.dumps({"format": "e2gan-pairs", "version": 99}))
    with pytest.raises(E2GANError, match="version 99"):
        PairDataset.open(root)


def test_assign_splits_is_deterministic_and_order_free():
    ids = [f"{i:03d}" for i in range(50)]
    splits = assign_splits(ids, 0.2, seed=3)
    assert splits == assign_splits(list(reversed(ids)), 0.2, seed=3)
    assert sum(split == "test" for split in splits.values()) == 10
    assert splits != assign_splits(ids, 0.2, seed=4)
    assert list(assign_splits(["a", "b"], 0.1).values()).count("test") == 1  # small sets still get one
    assert set(assign_splits(ids, 0.0).values()) == {"train"}
    with pytest.raises(E2GANError):
        assign_splits(ids, 1.0)


def test_id_helpers():
    assert safe_pair_id("Café photo (2)") == "Cafe_photo_2"
    assert safe_pair_id("...") == "pair"
    assert unique_pair_ids(["a", "A", "a b", "a_b"]) == ["a", "A-2", "a_b", "a_b-2"]


def test_write_subset_copies_selected_pairs(tmp_path):
    source = write_dataset(tmp_path / "ds", count=4).finalize()
    subset = write_subset(source, ["0003", "0001"], tmp_path / "sub")
    assert subset.ids == ["0001", "0003"] and subset.info.complete and subset.info.num_pairs == 2
    assert subset.records[0].seed == 1 and subset.info.concept == "snowy"
    assert (tmp_path / "sub" / "edited" / "0003.png").read_bytes() == (tmp_path / "ds" / "edited" / "0003.png").read_bytes()
    assert not (tmp_path / "sub.partial").exists()

    with pytest.raises(E2GANError, match="already exists"):
        write_subset(source, ["0000"], tmp_path / "sub")
    assert write_subset(source, ["0000"], tmp_path / "sub", overwrite=True).ids == ["0000"]
    with pytest.raises(E2GANError, match="not in dataset"):
        write_subset(source, ["nope"], tmp_path / "other")


def test_write_subset_interrupted_leaves_nothing_at_out_root(tmp_path, monkeypatch):
    source = write_dataset(tmp_path / "ds", count=4).finalize()
    real_add_files = PairDatasetWriter.add_files
    calls = []

    def failing_add_files(self, *args):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_add_files(self, *args)

    monkeypatch.setattr(PairDatasetWriter, "add_files", failing_add_files)
    with pytest.raises(OSError, match="disk full"):
        write_subset(source, source.ids, tmp_path / "sub")
    assert not (tmp_path / "sub").exists() and not (tmp_path / "sub.partial").exists()

    # An existing dataset being overwritten survives a failed overwrite untouched.
    monkeypatch.undo()
    write_subset(source, ["0000"], tmp_path / "sub")
    calls.clear()
    monkeypatch.setattr(PairDatasetWriter, "add_files", failing_add_files)
    with pytest.raises(OSError):
        write_subset(source, source.ids, tmp_path / "sub", overwrite=True)
    assert PairDataset.open(tmp_path / "sub").ids == ["0000"]


def test_stale_partial_folder_is_replaced(tmp_path):
    source = write_dataset(tmp_path / "ds", count=2).finalize()
    (tmp_path / "sub.partial" / "source").mkdir(parents=True)
    (tmp_path / "sub.partial" / "source" / "junk.png").write_bytes(b"junk")
    assert write_subset(source, ["0000"], tmp_path / "sub").ids == ["0000"]
    assert not (tmp_path / "sub" / "source" / "junk.png").exists()


# --- training view -------------------------------------------------------------------------------


def test_image_tensor_round_trip():
    image = random_image(0, width=48, height=32)
    tensor = image_to_tensor(image, 32)
    assert tensor.shape == (3, 32, 32) and tensor.dtype == torch.float32
    assert tensor.min() >= -1 and tensor.max() <= 1
    # The shorter side already matches, so the centre crop is a plain slice of the original.
    assert np.array_equal(np.asarray(tensor_to_image(tensor)), np.asarray(image)[:, 8:40])
    assert np.asarray(tensor_to_image(tensor * 5)).max() == 255  # clamped, not wrapped
    assert tensor_to_image(tensor.unsqueeze(0)).size == (32, 32)


def test_pair_tensor_dataset_shapes_ranges_and_selection(tmp_path):
    writer = PairDatasetWriter(tmp_path / "ds", make_info())
    for index in range(4):
        writer.add(f"{index}", random_image(index), random_image(10 + index), split="test" if index == 3 else "train")
    dataset = writer.finalize()

    train = PairTensorDataset(dataset, "train", size=16, augment=False)
    assert len(train) == 3
    item = train[0]
    assert item["source"].shape == item["edited"].shape == (3, 16, 16)
    assert item["source"].dtype == torch.float32 and -1 <= item["source"].min() and item["source"].max() <= 1
    assert item["prompt"] == "make it snowy" and item["id"] == "0"
    assert len(PairTensorDataset(dataset, None, size=16, augment=False)) == 4
    assert [r.id for r in PairTensorDataset(dataset, "train", 16, False, ids=["2", "3"]).records] == ["2"]
    with pytest.raises(E2GANError, match="no pairs"):
        PairTensorDataset(dataset, "test", 16, False, ids=["0"])
    with pytest.raises(E2GANError, match="not in dataset"):
        PairTensorDataset(dataset, None, 16, False, ids=["missing"])

    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=2)))
    assert batch["source"].shape == (2, 3, 16, 16) and batch["id"] == ["0", "1"]


def test_flip_is_identical_for_both_images_and_decoding_is_cached(tmp_path, monkeypatch):
    writer = PairDatasetWriter(tmp_path / "ds", make_info())
    image = random_image(0, 24, 24)
    writer.add("0", image, image)  # identical images: any flip mismatch shows as a difference
    dataset = writer.finalize()

    loads = []
    real_load_pair = PairDataset.load_pair
    monkeypatch.setattr(PairDataset, "load_pair", lambda self, record: loads.append(1) or real_load_pair(self, record))
    view = PairTensorDataset(dataset, None, size=24, augment=True)
    plain = image_to_tensor(image, 24)
    torch.manual_seed(0)
    flipped_count = 0
    for _ in range(40):
        item = view[0]
        assert torch.equal(item["source"], item["edited"])
        if torch.equal(item["source"], plain.flip(-1)):
            flipped_count += 1
        else:
            assert torch.equal(item["source"], plain)
    assert 5 < flipped_count < 35
    assert len(loads) == 1
    assert torch.equal(PairTensorDataset(dataset, None, 24, augment=False)[0]["source"], plain)


def test_preloading_on_threads_decodes_each_pair_once_to_what_lazy_reading_gives(tmp_path, monkeypatch):
    writer = PairDatasetWriter(tmp_path / "ds", make_info())
    for index in range(9):
        writer.add(f"{index}", random_image(index), random_image(20 + index))
    dataset = writer.finalize()
    lazy = [PairTensorDataset(dataset, None, 16, augment=False)[i] for i in range(9)]

    loads = []
    real_load_pair = PairDataset.load_pair
    monkeypatch.setattr(PairDataset, "load_pair", lambda self, record: loads.append(record.id) or real_load_pair(self, record))
    preloaded = PairTensorDataset(dataset, None, 16, augment=False)
    preloaded.preload(threads=4)
    assert sorted(loads) == [str(i) for i in range(9)]  # every pair, once, before any is read
    for index, item in enumerate(lazy):
        again = preloaded[index]
        assert again["id"] == item["id"]
        assert torch.equal(again["source"], item["source"]) and torch.equal(again["edited"], item["edited"])
    assert len(loads) == 9  # reading decodes nothing more


def test_edited_of_another_size_is_aligned_to_the_source(tmp_path):
    # A horizontal ramp: cropping a different region of it shows up as a different mean.
    ramp = np.tile(np.linspace(0, 255, 40, dtype=np.uint8)[None, :, None], (20, 1, 3))
    source = Image.fromarray(ramp)
    stretched = source.resize((40, 40), Image.Resampling.BILINEAR)  # another aspect ratio
    writer = PairDatasetWriter(tmp_path / "ds", make_info())
    writer.add("0", source, stretched)
    item = PairTensorDataset(writer.finalize(), None, size=20, augment=False)[0]
    assert item["edited"].shape == (3, 20, 20)
    assert (item["source"] - item["edited"]).abs().max() < 0.05

"""The built-in photos: shipped with attribution and licences, and held out whole for judging."""

from __future__ import annotations

import fnmatch
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from e2gan.data.attribution import BUILTIN_PHOTOS, shipped_photos
from e2gan.data.builtin import (BuiltinPhotos, HeldOutPhotos, builtin_photos, held_out_photos,
                                origin_photo, held_out_before)
from e2gan.data.generate import generate_pairs
from e2gan.data.pair_format import PairRecord
from e2gan.data.sources import folder_source, open_source
from e2gan.teachers import create_teacher, resolve_builtin_concept

ROOT = Path(__file__).resolve().parents[1]
# What each licence needs beside the photo: a URL (Creative Commons) or the texts (the GPLs).
NEEDS_TEXTS = {"GPL-2.0-or-later": {"LICENSES/GPL-2.txt"},
               "LGPL-3.0": {"LICENSES/LGPL-3.txt", "LICENSES/GPL-3.txt"}}
SHIPPABLE = {"GPL-2.0-or-later", "LGPL-3.0", "CC-BY-2.0", "CC-BY-4.0", "CC-BY-SA-3.0",
             "CC-BY-SA-4.0", "CC0-1.0", "public-domain"}


def _manifest() -> list[dict]:
    return json.loads((BUILTIN_PHOTOS / "attribution.json").read_text(encoding="utf-8"))["photos"]


def test_at_least_40_photos_each_with_an_author_a_shippable_licence_and_its_texts():
    entries = _manifest()
    assert len(entries) >= 40
    for entry in entries:
        assert entry["title"] and entry["author"] and entry["source"] and entry["upstream"], entry
        assert entry["licence"] in SHIPPABLE, entry
        assert entry["licence_url"] or entry["licence"] == "public-domain", entry
        assert entry["changes"] == "resized from the original"
        assert set(entry["licence_files"]) == NEEDS_TEXTS.get(entry["licence"], set()), entry
        for text in entry["licence_files"]:
            assert (BUILTIN_PHOTOS / text).stat().st_size > 5000, text
        assert min(entry["size"]) <= 448 and min(entry["size"]) <= min(entry["original_size"])


def test_every_shipped_photo_is_attributed_and_every_attributed_photo_ships():
    entries = _manifest()
    shipped = {path.name for path in BUILTIN_PHOTOS.iterdir() if path.suffix == ".jpg"}
    assert {entry["file"] for entry in entries} == shipped
    assert len({entry["id"] for entry in entries}) == len(entries)
    for entry in entries:
        with Image.open(BUILTIN_PHOTOS / entry["file"]) as image:
            assert list(image.size) == entry["size"] and image.mode == "RGB"
    assert len(shipped_photos()) == len(entries)


def test_the_folder_stays_small():
    total = sum(path.stat().st_size for path in BUILTIN_PHOTOS.rglob("*") if path.is_file())
    assert total < 3 * 2**20


def test_the_wheel_carries_every_file_of_the_folder():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["e2gan.data"]
    for path in BUILTIN_PHOTOS.rglob("*"):
        if path.is_file():
            relative = path.relative_to(BUILTIN_PHOTOS.parent).as_posix()
            assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


def test_a_fifth_of_the_photos_are_held_out_and_the_rest_train():
    photos = shipped_photos()
    held_out = [photo for photo in photos if photo.held_out]
    assert 0.15 <= len(held_out) / len(photos) <= 0.25
    source = builtin_photos(200, size=32, seed=0)
    test_photos = {source.photo_of(i).id for i in source.ids if source.splits[i] == "test"}
    train_photos = {source.photo_of(i).id for i in source.ids if source.splits[i] == "train"}
    assert test_photos == {photo.id for photo in held_out}
    assert train_photos == {photo.id for photo in photos if not photo.held_out}


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.2, 0.25, 0.5])
def test_the_dealing_is_photo_level_for_any_fraction_and_a_prefix_is_the_smaller_source(fraction):
    source = builtin_photos(40, size=32, seed=3, test_fraction=fraction)
    tests = [i for i in source.ids if source.splits[i] == "test"]
    assert len(tests) == held_out_before(40, fraction) and source.splits[source.ids[0]] == "train"
    for source_id in source.ids:
        assert source.photo_of(source_id).held_out == (source.splits[source_id] == "test")
    smaller = source.take(15)
    assert isinstance(smaller, BuiltinPhotos) and smaller.ids == source.ids[:15]
    assert all(smaller.photo_of(i) == source.photo_of(i) for i in smaller.ids)
    assert np.array_equal(np.asarray(smaller.load(smaller.ids[-1])),
                          np.asarray(source.load(source.ids[14])))


def test_pairs_from_the_builtin_source_hold_whole_photos_out(tmp_path):
    concept = resolve_builtin_concept("night")
    # The source is dealt for 0.2; the pair maker re-deals it for its own fraction.
    result = generate_pairs(create_teacher("builtin"), builtin_photos(30, size=32, seed=1),
                            concept.prompt, tmp_path / "pairs", concept="night", seed=1,
                            test_fraction=0.3)
    records = result.dataset.records
    test = [record for record in records if record.split == "test"]
    train = [record for record in records if record.split == "train"]
    assert len(test) == 9 and len(train) == 21
    test_photos = {origin_photo(record.origin) for record in test}
    train_photos = {origin_photo(record.origin) for record in train}
    assert None not in test_photos | train_photos
    assert not test_photos & train_photos
    held_out = {photo.id for photo in shipped_photos() if photo.held_out}
    assert test_photos <= held_out and not train_photos & held_out
    report = held_out_photos(records)
    assert report == HeldOutPhotos(9, len(test_photos), 0, crops=True)
    assert report.describe() == (f"The 9 held-out pairs are crops of {len(test_photos)} photos, "
                                 "none of which is used for training.")
    # The images are the re-dealt source's, crop for crop.
    dealt = BuiltinPhotos(30, 32, 1, 0.3)
    pair = result.dataset.load_pair(test[0])[0]
    assert np.array_equal(np.asarray(pair), np.asarray(dealt.load(test[0].id)))


def test_other_sources_are_still_split_image_by_image(tmp_path):
    for index in range(10):
        Image.new("RGB", (24, 24), (index * 20, 40, 90)).save(tmp_path / f"photo{index}.png")
    source = folder_source(tmp_path)
    assert source.photo_splits(0.2) is None and source.origin("photo3") == "photo3"
    result = generate_pairs(create_teacher("builtin"), source, "night", tmp_path / "pairs",
                            test_fraction=0.2)
    records = result.dataset.records
    assert sum(record.split == "test" for record in records) == 2
    assert {record.origin for record in records} == set(source.ids)
    assert held_out_photos(records).describe() == ("The 2 held-out pairs come from 2 images "
                                                   "that no training pair uses.")


def test_the_report_says_when_held_out_pairs_share_photos_with_training():
    def record(pair_id, split, origin):
        return PairRecord(pair_id, "p", split=split, origin=origin)

    pool = [record("a", "test", "pool-00000-plasma-Kite"), record("b", "train", "pool-00001-plasma-Kite"),
            record("c", "test", "pool-00002-mate-Aqua")]
    assert held_out_photos(pool) == HeldOutPhotos(2, 2, 1, crops=True)
    assert "1 of which training pairs are cut from too" in held_out_photos(pool).describe()
    old = [record("builtin-00001", "test", "builtin-00001"), record("builtin-00002", "train", "builtin-00002")]
    assert "flatter" in held_out_photos(old).describe()
    assert held_out_photos([record("a", "train", "builtin:mate-Aqua")]).describe() == "No held-out pairs."


def test_open_source_builtin_defaults():
    source = open_source("builtin")
    assert isinstance(source, BuiltinPhotos) and len(source) == 200
    assert sum(split == "test" for split in source.splits.values()) == 40


def test_the_pairs_page_says_how_many_photos_the_held_out_pairs_come_from(tmp_path):
    from app.pairs import dataset_line, held_out_line
    from app.workspace import ConceptSpec, Workspace

    workspace = Workspace.create(tmp_path / "workspace")
    folder = workspace.concept("night")
    folder.save_spec(ConceptSpec(name="night", prompt="night"))
    generate_pairs(create_teacher("builtin"), builtin_photos(20, size=32, seed=2), "night",
                   folder.pairs_dir, concept="night", test_fraction=0.2)
    dataset = folder.dataset()
    photos = {record.origin for record in dataset.split("test")}
    expected = f"The 4 held-out pairs are crops of {len(photos)} photos, none of which is used for training."
    assert held_out_line(dataset) == expected and expected in dataset_line(folder)

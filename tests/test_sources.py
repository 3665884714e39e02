"""Image sources: folders, zip archives and the packaged photos, read lazily and reproducibly."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from e2gan.data.image_source import ImageSource
from e2gan.data.sources import builtin_photos, folder_source, open_source, zip_source
from e2gan.errors import E2GANError

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _gradient(width: int = 40, height: int = 30) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 128)], axis=-1).astype(np.uint8)


def _png_bytes(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture()
def mixed_folder(tmp_path: Path) -> Path:
    """One image in each awkward format a user's folder might hold, plus things to ignore."""
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(_gradient()).save(folder / "a_rgb.png")
    Image.fromarray(_gradient()[..., 0]).save(folder / "b_gray.png")
    rgba = np.dstack([_gradient(), np.full((30, 40), 128, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(folder / "c_rgba.png")
    sixteen_bit = (np.mgrid[0:30, 0:40][1] * 1000 + 20000).astype(np.uint16)
    Image.fromarray(sixteen_bit).save(folder / "d_16bit.png")
    Image.fromarray(_gradient()).save(folder / "e photo (1).JPG")
    (folder / "notes.txt").write_text("not an image")
    Image.fromarray(_gradient()).save(folder / ".hidden.png")
    return folder


def test_folder_source_reads_every_format_as_rgb_in_name_order(mixed_folder):
    source = folder_source(mixed_folder)
    assert isinstance(source, ImageSource)
    assert len(source) == 5
    assert source.ids == ["a_rgb", "b_gray", "c_rgba", "d_16bit", "e_photo_1"]
    images = dict(source)
    assert list(images) == source.ids
    for image in images.values():
        assert image.mode == "RGB" and image.size == (40, 30)
    # 16-bit data is rescaled by its range, not clipped to white.
    sixteen_bit = np.asarray(images["d_16bit"])
    assert sixteen_bit.min() < 10 and sixteen_bit.max() > 245
    # Half-transparent pixels are composited over white, so they get lighter.
    assert np.asarray(images["c_rgba"]).mean() > np.asarray(images["a_rgb"]).mean()


def test_folder_source_loads_by_id_to_resume(mixed_folder):
    source = folder_source(mixed_folder)
    done = set(source.ids[:2])
    remaining = [source_id for source_id in source.ids if source_id not in done]
    assert np.array_equal(np.asarray(source.load(remaining[0])), np.asarray(dict(source)["c_rgba"]))
    with pytest.raises(KeyError):
        source.load("missing")


def test_corrupt_image_is_a_clear_error_naming_the_file(mixed_folder):
    (mixed_folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    source = folder_source(mixed_folder)  # listing is lazy: nothing is decoded yet
    with pytest.raises(E2GANError, match="broken.png"):
        list(source)


def test_tiny_image_is_a_clear_error(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "tiny.png")
    with pytest.raises(E2GANError, match="tiny.png.*at least 16"):
        list(folder_source(tmp_path))


def test_folder_without_images_is_an_error(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(E2GANError, match="no images in folder"):
        folder_source(tmp_path)
    with pytest.raises(E2GANError, match="folder not found"):
        folder_source(tmp_path / "missing")


def test_clashing_names_get_distinct_safe_ids(tmp_path):
    for name in ["cat.png", "cat.jpg", "Cat.bmp", "über café.png"]:
        Image.fromarray(_gradient()).save(tmp_path / name)
    ids = folder_source(tmp_path).ids
    assert len({source_id.lower() for source_id in ids}) == 4
    assert all(SAFE_ID.match(source_id) for source_id in ids), ids


@pytest.fixture()
def archive(tmp_path: Path) -> Path:
    path = tmp_path / "images.zip"
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr("top.png", _png_bytes(Image.fromarray(_gradient())))
        zipped.writestr("set one/deeper/Photo 2.png", _png_bytes(Image.fromarray(_gradient()).convert("L")))
        zipped.writestr("set one/readme.txt", "ignore me")
        zipped.writestr("__MACOSX/set one/._Photo 2.png", b"resource fork")
        zipped.writestr(".thumbnails/top.png", _png_bytes(Image.fromarray(_gradient())))
        zipped.writestr("set one/", b"")
    return path


def test_zip_source_reads_images_at_any_depth_skipping_junk(archive):
    source = zip_source(archive)
    assert source.ids == ["set_one__deeper__Photo_2", "top"]
    assert all(SAFE_ID.match(source_id) for source_id in source.ids)
    for _, image in source:
        assert image.mode == "RGB" and image.size == (40, 30)


def test_zip_member_that_is_not_an_image_names_the_member(tmp_path):
    path = tmp_path / "bad-member.zip"
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr("fine.png", _png_bytes(Image.fromarray(_gradient())))
        zipped.writestr("folder/garbage.jpg", b"definitely not a jpeg")
    source = zip_source(path)
    assert source.load("fine").size == (40, 30)
    with pytest.raises(E2GANError, match="bad-member.zip:folder/garbage.jpg"):
        source.load("folder__garbage")


def test_broken_or_empty_zip_is_a_clear_error(tmp_path):
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK this is not a zip archive")
    with pytest.raises(E2GANError, match="cannot read zip file .*broken.zip"):
        zip_source(broken)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zipped:
        zipped.writestr("notes.txt", "no images here")
    with pytest.raises(E2GANError, match="no images in zip file"):
        zip_source(empty)


def test_builtin_photos_have_the_requested_count_size_and_ids():
    source = builtin_photos(9, size=48, seed=0)
    assert len(source) == 9
    assert source.ids[0] == "builtin-00000" and source.ids[-1] == "builtin-00008"
    images = [image for _, image in source]
    assert all(image.mode == "RGB" and image.size == (48, 48) for image in images)
    # Varied: no two crops alike.
    arrays = [np.asarray(image, dtype=np.float64) for image in images]
    for first in range(len(arrays)):
        for second in range(first + 1, len(arrays)):
            assert np.abs(arrays[first] - arrays[second]).mean() > 5.0


def test_builtin_photos_are_reproducible_and_random_access():
    first = builtin_photos(6, size=32, seed=5)
    second = builtin_photos(6, size=32, seed=5)
    in_order = [np.asarray(image) for _, image in first]
    # Loading ids out of order (as a resumed run does) gives the same pixels.
    for source_id in reversed(second.ids):
        assert np.array_equal(np.asarray(second.load(source_id)), in_order[second.ids.index(source_id)])
    other_seed = [np.asarray(image) for _, image in builtin_photos(6, size=32, seed=6)]
    assert any(not np.array_equal(a, b) for a, b in zip(in_order, other_seed))


def test_builtin_photos_refuse_nonsense_arguments():
    with pytest.raises(E2GANError, match="at least 1"):
        builtin_photos(0)
    with pytest.raises(E2GANError, match="at least 16"):
        builtin_photos(3, size=8)


def test_open_source_dispatches_on_the_spec(mixed_folder, archive):
    builtin = open_source("builtin")
    assert len(builtin) == 200 and builtin.ids[0] == "builtin-00000"
    assert len(open_source("builtin", count=7, size=32)) == 7
    assert open_source("builtin", count=1, size=32).load("builtin-00000").size == (32, 32)
    assert open_source(str(mixed_folder)).ids == folder_source(mixed_folder).ids
    assert open_source(str(mixed_folder), count=2).ids == ["a_rgb", "b_gray"]
    assert open_source(str(archive)).ids == zip_source(archive).ids
    assert len(open_source(str(archive), count=1)) == 1


def test_open_source_errors_are_clear(tmp_path):
    with pytest.raises(E2GANError, match="image source not found: .*nowhere"):
        open_source(str(tmp_path / "nowhere"))
    text_file = tmp_path / "list.txt"
    text_file.write_text("a.png\n")
    with pytest.raises(E2GANError, match="folder, a .zip file or 'builtin'"):
        open_source(str(text_file))
    with pytest.raises(E2GANError, match="at least 1"):
        open_source("builtin", count=0)

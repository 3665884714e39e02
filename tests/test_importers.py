"""Importing your own pairs: matched folders and img2img-turbo's paired layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from e2gan.data.dataset import PairDataset
from e2gan.data.importers import import_folders, import_img2img_turbo, import_zip
from e2gan.errors import E2GANError


def random_pixels(seed: int, width: int = 32, height: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def save_rgb(path, seed: int, width: int = 32, height: int = 24) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(random_pixels(seed, width, height)).save(path)


def make_folders(tmp_path, stems=("a", "b", "c")):
    source_dir, edited_dir = tmp_path / "before", tmp_path / "after"
    for index, stem in enumerate(stems):
        save_rgb(source_dir / f"{stem}.png", index)
        save_rgb(edited_dir / f"{stem}.png", 100 + index)
    return source_dir, edited_dir


def test_import_folders_pairs_by_stem_with_mixed_modes_and_suffixes(tmp_path):
    source_dir, edited_dir = make_folders(tmp_path, stems=("rgb",))
    gray = np.random.default_rng(1).integers(0, 256, size=(24, 32), dtype=np.uint8)
    Image.fromarray(gray, mode="L").save(source_dir / "gray.jpg")
    save_rgb(edited_dir / "gray.png", 2, width=64, height=48)  # another size: kept as is
    rgba = np.dstack([random_pixels(3), np.full((24, 32), 255, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(source_dir / "alpha.png")
    save_rgb(edited_dir / "alpha.webp", 4)
    deep = (np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 80).astype(np.uint16)
    Image.fromarray(deep).save(source_dir / "deep.png")  # 16-bit grayscale PNG
    save_rgb(edited_dir / "deep.png", 5)
    (source_dir / ".hidden.png").write_bytes(b"ignored")

    dataset = import_folders(source_dir, edited_dir, "make it snowy", tmp_path / "out", test_fraction=0.25, seed=1)

    assert isinstance(dataset, PairDataset) and dataset.info.complete
    assert sorted(dataset.ids) == ["alpha", "deep", "gray", "rgb"]
    assert dataset.info.concept == "out" and dataset.info.prompt == "make it snowy"
    assert dataset.info.teacher == "imported"
    assert len(dataset.split("test")) == 1 and len(dataset.split("train")) == 3
    for record in dataset:
        source, edited = dataset.load_pair(record)
        assert source.mode == edited.mode == "RGB"
        assert record.prompt == "make it snowy" and record.seed is None
    gray_source, gray_edited = dataset.load_pair(dataset.get("gray"))
    assert gray_source.size == (32, 24) and gray_edited.size == (64, 48)
    deep_source = np.asarray(dataset.load_pair(dataset.get("deep"))[0])
    assert deep_source.min() == 0 and deep_source.max() == 255  # rescaled, not clipped to white
    alpha_source = np.asarray(dataset.load_pair(dataset.get("alpha"))[0])
    assert np.array_equal(alpha_source, random_pixels(3))
    assert not (tmp_path / "out.partial").exists()


def test_import_folders_splits_are_deterministic(tmp_path):
    stems = [f"img{i}" for i in range(10)]
    source_dir, edited_dir = make_folders(tmp_path, stems=stems)
    first = import_folders(source_dir, edited_dir, "p", tmp_path / "one", test_fraction=0.3, seed=5)
    second = import_folders(source_dir, edited_dir, "p", tmp_path / "two", test_fraction=0.3, seed=5)
    assert [r.split for r in first] == [r.split for r in second]
    assert len(first.split("test")) == 3


def test_import_folders_reports_unmatched_stems(tmp_path):
    source_dir, edited_dir = make_folders(tmp_path)
    save_rgb(source_dir / "lonely.png", 7)
    save_rgb(edited_dir / "stray.jpg", 8)
    with pytest.raises(E2GANError, match=r"only in .*before \(lonely\).*only in .*after \(stray\)"):
        import_folders(source_dir, edited_dir, "p", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_import_folders_names_a_corrupt_image_and_leaves_nothing(tmp_path):
    source_dir, edited_dir = make_folders(tmp_path)
    (edited_dir / "b.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(E2GANError, match=r"cannot read image .*after/b\.png"):
        import_folders(source_dir, edited_dir, "p", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_import_folders_other_errors(tmp_path):
    source_dir, edited_dir = make_folders(tmp_path)
    with pytest.raises(E2GANError, match="folder not found"):
        import_folders(tmp_path / "missing", edited_dir, "p", tmp_path / "out")
    with pytest.raises(E2GANError, match="empty"):
        import_folders(source_dir, edited_dir, "  ", tmp_path / "out")
    save_rgb(source_dir / "a.jpg", 9)
    with pytest.raises(E2GANError, match="two images named 'a'"):
        import_folders(source_dir, edited_dir, "p", tmp_path / "out")
    (source_dir / "a.jpg").unlink()
    import_folders(source_dir, edited_dir, "p", tmp_path / "out")
    with pytest.raises(E2GANError, match="already exists"):
        import_folders(source_dir, edited_dir, "p", tmp_path / "out")
    assert len(import_folders(source_dir, edited_dir, "p", tmp_path / "out", overwrite=True, concept="x")) == 3
    empty_a, empty_b = tmp_path / "ea", tmp_path / "eb"
    empty_a.mkdir(), empty_b.mkdir()
    with pytest.raises(E2GANError, match="no images"):
        import_folders(empty_a, empty_b, "p", tmp_path / "out2")


def make_turbo(root, train: dict[str, str], test: dict[str, str] | None):
    for split, prompts in (("train", train), ("test", test)):
        if prompts is None:
            continue
        for index, name in enumerate(prompts):
            save_rgb(root / f"{split}_A" / name, index)
            save_rgb(root / f"{split}_B" / name, 50 + index)
        (root / f"{split}_prompts.json").write_text(json.dumps(prompts))


def test_import_img2img_turbo_keeps_splits_and_prompts(tmp_path):
    root = tmp_path / "turbo"
    train = {"x.png": "snowy street", "y.png": "snowy street", "z.png": "snowy field"}
    test = {"x.png": "snowy hill", "w.png": "snowy street"}
    make_turbo(root, train, test)
    save_rgb(root / "train_A" / "unlisted.png", 99)  # not in the prompts file: not a pair

    dataset = import_img2img_turbo(root, tmp_path / "out", concept="snowy")

    assert dataset.info.concept == "snowy" and dataset.info.prompt == "snowy street"
    assert dataset.info.prompts[0] == "snowy street" and set(dataset.info.prompts) == {"snowy street", "snowy field", "snowy hill"}
    assert sorted(r.id for r in dataset.split("train")) == ["x", "y", "z"]
    assert sorted(r.id for r in dataset.split("test")) == ["w", "x-2"]  # reused name made unique
    assert dataset.get("x-2").prompt == "snowy hill" and dataset.get("z").prompt == "snowy field"
    assert dataset.get("x-2").origin == "import:img2img-turbo:test_A/x.png"
    source, edited = dataset.load_pair(dataset.get("y"))
    assert np.array_equal(np.asarray(source), random_pixels(1))
    assert np.array_equal(np.asarray(edited), random_pixels(51))


def test_import_img2img_turbo_without_test_split_draws_one(tmp_path):
    root = tmp_path / "turbo"
    make_turbo(root, {f"{i}.jpg": "sketch" for i in range(10)}, None)
    dataset = import_img2img_turbo(root, tmp_path / "out", test_fraction=0.2)
    assert len(dataset) == 10 and len(dataset.split("test")) == 2


def test_import_img2img_turbo_clear_errors(tmp_path):
    with pytest.raises(E2GANError, match="not found"):
        import_img2img_turbo(tmp_path / "nowhere", tmp_path / "out")

    root = tmp_path / "turbo"
    make_turbo(root, {"a.png": "p"}, None)
    (root / "train_prompts.json").unlink()
    with pytest.raises(E2GANError, match="train_prompts.json"):
        import_img2img_turbo(root, tmp_path / "out")

    (root / "train_prompts.json").write_text(json.dumps({"a.png": "p", "gone.png": "p"}))
    with pytest.raises(E2GANError, match=r"do not exist: train_A/gone\.png, train_B/gone\.png"):
        import_img2img_turbo(root, tmp_path / "out")

    (root / "train_prompts.json").write_text(json.dumps(["a.png"]))
    with pytest.raises(E2GANError, match="JSON object"):
        import_img2img_turbo(root, tmp_path / "out")

    (root / "train_prompts.json").write_text(json.dumps({"a.png": "p"}))
    (root / "test_A").mkdir()
    with pytest.raises(E2GANError, match="test_B"):
        import_img2img_turbo(root, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["../../secret.png", "ABSOLUTE", "link.png"])
def test_import_img2img_turbo_reads_nothing_outside_its_root(tmp_path, name):
    """A prompts file names images; `../`, absolute names and symlinks must not lead out."""
    secret = tmp_path / "secret.png"
    save_rgb(secret, 7)
    root = tmp_path / "turbo"
    make_turbo(root, {"a.png": "p"}, None)
    if name == "ABSOLUTE":
        name = str(secret)
    if name == "link.png":
        (root / "train_A" / name).symlink_to(secret)
        (root / "train_B" / name).symlink_to(secret)
    (root / "train_prompts.json").write_text(json.dumps({"a.png": "p", name: "p"}))
    with pytest.raises(E2GANError, match=r"points outside .*train_A"):
        import_img2img_turbo(root, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_symlink_out_of_a_source_folder_is_refused_one_inside_is_read(tmp_path):
    source_dir, edited_dir = make_folders(tmp_path)
    (source_dir / "c.png").unlink()
    (source_dir / "c.png").symlink_to(source_dir / "a.png")  # inside: fine
    assert len(import_folders(source_dir, edited_dir, "p", tmp_path / "out")) == 3
    outside = tmp_path / "elsewhere.png"
    save_rgb(outside, 3)
    (edited_dir / "c.png").unlink()
    (edited_dir / "c.png").symlink_to(outside)
    with pytest.raises(E2GANError, match="image .*c.png points outside"):
        import_folders(source_dir, edited_dir, "p", tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


def _zip(path, files: dict[str, bytes]):
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def _png(seed: int) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(random_pixels(seed)).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_zip_of_two_named_folders_or_img2img_turbo_imports_and_a_bad_one_names_its_problem(tmp_path):
    # two folders matched by name, zipped inside a top folder, with macOS clutter ignored
    pairs = {f"mine/Before/{stem}.png": _png(i) for i, stem in enumerate("abc")}
    pairs |= {f"mine/After/{stem}.png": _png(10 + i) for i, stem in enumerate("abc")}
    pairs["__MACOSX/mine/._a.png"] = b"junk"
    dataset = import_zip(_zip(tmp_path / "folders.zip", pairs), tmp_path / "one", "a snowy scene",
                         concept="snow")
    assert len(dataset) == 3 and dataset.info.prompt == "a snowy scene" and dataset.info.concept == "snow"
    # img2img-turbo's layout keeps its own prompts
    turbo = {"train_A/x.png": _png(1), "train_B/x.png": _png(2), "train_A/y.png": _png(3),
             "train_B/y.png": _png(4), "train_prompts.json": json.dumps({"x.png": "p1", "y.png": "p1"})}
    assert import_zip(_zip(tmp_path / "turbo.zip", turbo), tmp_path / "two", "ignored").info.prompt == "p1"
    # an unmatched image is named, and nothing is written
    broken = dict(pairs) | {"mine/Before/d.png": _png(5)}
    with pytest.raises(E2GANError, match=r"unmatched images: 1 only in .*Before \(d\)"):
        import_zip(_zip(tmp_path / "broken.zip", broken), tmp_path / "three", "a snowy scene")
    with pytest.raises(E2GANError, match=r"no pairs in a known layout: found no folders in photos/"):
        import_zip(_zip(tmp_path / "odd.zip", {"photos/a.png": _png(1)}), tmp_path / "four", "x")
    with pytest.raises(E2GANError, match="points outside"):
        import_zip(_zip(tmp_path / "evil.zip", {str(tmp_path / "evil.png"): _png(1)}),
                   tmp_path / "five", "x")
    assert not (tmp_path / "evil.png").exists()
    with pytest.raises(E2GANError, match="cannot read zip file"):
        (tmp_path / "fake.zip").write_bytes(b"not a zip")
        import_zip(tmp_path / "fake.zip", tmp_path / "six", "x")
    with pytest.raises(E2GANError, match=r"found folders \['a', 'c'\] at its top"):
        import_zip(_zip(tmp_path / "near.zip", {"a/x.png": _png(1), "c/x.png": _png(2)}),
                   tmp_path / "seven", "x")
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["one", "two"]


def test_an_imagefolder_dataset_imports_back_with_its_splits_and_prompts(tmp_path, tiny_pairs):
    """The inverse of `e2gan dataset-export --format imagefolder`, directly and inside a zip."""
    import shutil

    from e2gan.data.export import export_dataset
    from e2gan.data.importers import import_imagefolder

    original = tiny_pairs["winter"]
    export_dataset(original, tmp_path / "hf")
    imported = import_imagefolder(tmp_path / "hf", tmp_path / "back", concept="winter")
    assert len(imported) == len(original)
    assert {s: len(imported.split(s)) for s in ("train", "test")} == \
           {s: len(original.split(s)) for s in ("train", "test")}
    assert imported.info.prompt == original.info.prompt
    first = original.records[0]
    source, edited = imported.load_pair(imported.get(first.id))
    expected_source, expected_edited = original.load_pair(first)
    assert np.array_equal(np.asarray(source), np.asarray(expected_source))
    assert np.array_equal(np.asarray(edited), np.asarray(expected_edited))
    archive = shutil.make_archive(str(tmp_path / "hf-zip"), "zip", tmp_path / "hf")
    assert len(import_zip(archive, tmp_path / "from-zip", "unused")) == len(original)
    # a row naming a missing image, and a metadata file without pair columns, are named
    (tmp_path / "hf" / "train" / "input_image" / f"{original.split('train')[0].id}.png").unlink()
    with pytest.raises(E2GANError, match=r"1 image\(s\) named in train/metadata.jsonl are missing: line 1"):
        import_imagefolder(tmp_path / "hf", tmp_path / "none")
    (tmp_path / "odd" / "train").mkdir(parents=True)
    (tmp_path / "odd" / "train" / "metadata.jsonl").write_text('{"file_name": "a.png"}\n')
    with pytest.raises(E2GANError, match=r"has columns \['file_name'\]; a paired dataset needs"):
        import_imagefolder(tmp_path / "odd", tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_cli_imports_an_imagefolder_dataset(tmp_path, tiny_pairs, capsys):
    from e2gan.cli import main
    from e2gan.data.export import export_dataset

    export_dataset(tiny_pairs["night"], tmp_path / "hf")
    code = main(["import", "imagefolder", "--root", str(tmp_path / "hf"), "--out",
                 str(tmp_path / "night"), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["pairs"] == len(tiny_pairs["night"])
    assert main(["import", "imagefolder", "--out", str(tmp_path / "x")]) == 2
    assert "import imagefolder needs --root" in capsys.readouterr().err

import json

import numpy as np
import pytest
from PIL import Image

from e2gan.data.dataset import DatasetInfo, PairDataset, PairDatasetWriter
from e2gan.data.export import export_dataset
from e2gan.data.importers import import_img2img_turbo
from e2gan.errors import E2GANError


def _pixels(seed, size=(24, 32)):
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


@pytest.fixture()
def dataset(tmp_path):
    """Five pairs, two held out; per-pair prompts, seeds, scores and teacher settings."""
    writer = PairDatasetWriter(tmp_path / "snowy", DatasetInfo(
        concept="snowy", prompt="make it snowy", prompts=["make it snowy", "a snowy photo"],
        teacher="instruct-pix2pix", teacher_params={"steps": 20}))
    for index in range(5):
        scores = {"direction_similarity": 0.2 + index / 100, "image_similarity": 0.8}
        if index == 0:
            scores.update(passed=True, note="only here")  # not shared or not numeric: left out
        writer.add(f"pair-{index}", Image.fromarray(_pixels(index)), Image.fromarray(_pixels(50 + index)),
                   prompt="a snowy photo" if index % 2 else None, seed=index,
                   split="test" if index in (1, 3) else "train", origin=f"photo:{index}",
                   scores=scores, teacher_params={"steps": 20, "guidance": [1.5, 7.0][index % 2]})
    return writer.finalize()


def test_img2img_turbo_export_is_the_importers_inverse(dataset, tmp_path):
    result = export_dataset(dataset, tmp_path / "turbo", "img2img-turbo")
    assert result["pairs"] == {"train": 3, "test": 2}
    prompts = json.loads((tmp_path / "turbo" / "test_prompts.json").read_text())
    assert prompts == {"pair-1.png": "a snowy photo", "pair-3.png": "a snowy photo"}
    assert sorted(p.name for p in (tmp_path / "turbo").iterdir()) == [
        "test_A", "test_B", "test_prompts.json", "train_A", "train_B", "train_prompts.json"]

    back = import_img2img_turbo(tmp_path / "turbo", tmp_path / "back", concept="snowy")
    assert [(r.id, r.split, r.prompt) for r in sorted(back, key=lambda r: r.id)] == \
           [(r.id, r.split, r.prompt) for r in sorted(dataset, key=lambda r: r.id)]
    for record in dataset:
        for original, returned in zip(dataset.load_pair(record), back.load_pair(back.get(record.id))):
            assert np.array_equal(np.asarray(original), np.asarray(returned))


def test_imagefolder_layout_and_metadata(dataset, tmp_path):
    export_dataset(dataset, tmp_path / "hf", "imagefolder")
    out = tmp_path / "hf"
    rows = [json.loads(line) for line in (out / "train" / "metadata.jsonl").read_text().splitlines()]
    test_rows = [json.loads(line) for line in (out / "test" / "metadata.jsonl").read_text().splitlines()]
    assert [row["pair_id"] for row in rows] == ["pair-0", "pair-2", "pair-4"]
    first = rows[0]
    assert first["input_image_file_name"] == "input_image/pair-0.png"
    assert first["edited_image_file_name"] == "edited_image/pair-0.png"
    assert first["edit_prompt"] == "make it snowy" and first["seed"] == 0
    assert first["direction_similarity"] == pytest.approx(0.2)
    assert "passed" not in first and "note" not in first
    assert json.loads(first["teacher_params"]) == {"steps": 20, "guidance": 1.5}
    # Every split's metadata has the same columns with the same types (datasets requires it).
    assert all(row.keys() == first.keys() for row in rows + test_rows)
    assert {k: type(v) for k, v in test_rows[0].items()} == {k: type(v) for k, v in first.items()}
    for row in rows + test_rows:
        for column in ("input_image_file_name", "edited_image_file_name"):
            split = "train" if row in rows else "test"
            assert (out / split / row[column]).is_file()
    assert (out / "train" / "edited_image" / "pair-2.png").read_bytes() == \
           (dataset.root / "edited" / "pair-2.png").read_bytes()
    assert "make it snowy" in (out / "README.md").read_text()


def test_imagefolder_export_loads_with_hugging_face_datasets(dataset, tmp_path):
    datasets = pytest.importorskip("datasets")
    export_dataset(dataset, tmp_path / "hf", "imagefolder")
    loaded = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "hf"),
                                   cache_dir=str(tmp_path / "cache"))
    assert sorted(loaded) == ["test", "train"]
    assert loaded["train"].num_rows == 3 and loaded["test"].num_rows == 2
    assert {"input_image", "edited_image", "edit_prompt", "pair_id", "seed"} <= set(loaded["train"].column_names)
    row = loaded["test"][0]
    record = dataset.get(row["pair_id"])
    source, edited = dataset.load_pair(record)
    assert np.array_equal(np.asarray(row["input_image"].convert("RGB")), np.asarray(source))
    assert np.array_equal(np.asarray(row["edited_image"].convert("RGB")), np.asarray(edited))
    assert row["edit_prompt"] == record.prompt


def test_export_is_atomic_and_refuses_to_overwrite(dataset, tmp_path, monkeypatch):
    out = tmp_path / "turbo"
    export_dataset(dataset, out, "img2img-turbo")
    with pytest.raises(E2GANError, match="already exists"):
        export_dataset(dataset, out, "imagefolder")
    before = sorted(p.name for p in out.iterdir())

    # A failure half-way leaves the old export whole and no .partial behind.
    import e2gan.data.export as export_module

    calls = []
    real_copy = export_module.shutil.copyfile

    def failing_copy(source, target):
        calls.append(target)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_copy(source, target)

    monkeypatch.setattr(export_module.shutil, "copyfile", failing_copy)
    with pytest.raises(OSError, match="disk full"):
        export_dataset(dataset, out, "imagefolder", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snowy", "turbo"]
    monkeypatch.undo()

    export_dataset(dataset, out, "imagefolder", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "test", "train"]


def test_export_clear_errors(dataset, tmp_path):
    with pytest.raises(E2GANError, match="unknown export format 'zip'"):
        export_dataset(dataset, tmp_path / "x", "zip")
    with pytest.raises(E2GANError, match="outside the dataset"):
        export_dataset(dataset, dataset.root / "export", "imagefolder")
    empty = PairDatasetWriter(tmp_path / "empty", DatasetInfo(concept="c", prompt="c")).finalize()
    with pytest.raises(E2GANError, match="no pairs"):
        export_dataset(empty, tmp_path / "x", "imagefolder")
    assert not (tmp_path / "x").exists()


def test_dataset_export_cli(dataset, tmp_path, capsys):
    from e2gan.cli import main

    out = tmp_path / "cli"
    assert main(["dataset-export", "--dataset", str(dataset.root), "--format", "img2img-turbo",
                 "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result == {"out": str(out), "format": "img2img-turbo", "pairs": {"train": 3, "test": 2}}
    assert main(["dataset-export", "--dataset", str(dataset.root), "--out", str(out), "--json"]) == 2
    captured = capsys.readouterr()
    assert "already exists" in json.loads(captured.out.splitlines()[-1])["error"]
    assert main(["dataset-export", "--dataset", str(dataset.root), "--out", str(out),
                 "--overwrite", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["format"] == "imagefolder"
    assert PairDataset.open(dataset.root)  # the source dataset is untouched

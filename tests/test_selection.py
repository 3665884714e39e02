import numpy as np
import pytest
from PIL import Image

from e2gan.data.dataset import DatasetInfo, PairDatasetWriter
from e2gan.errors import E2GANError
from e2gan.curation.selection import select, select_pairs


@pytest.fixture()
def three_kinds(tmp_path):
    """12 pairs of three clearly different kinds (4 of each), all in the training split."""
    rng = np.random.default_rng(0)
    writer = PairDatasetWriter(tmp_path / "d", DatasetInfo(concept="c", prompt="c"))
    kinds = {"red": (200, 30, 30), "green": (30, 200, 30), "stripes": None}
    for kind, colour in kinds.items():
        for index in range(4):
            if colour is None:
                array = np.zeros((32, 32, 3), np.uint8)
                array[:, ::4] = 255
            else:
                array = np.full((32, 32, 3), colour, np.uint8)
            array = np.clip(array + rng.integers(-10, 10, array.shape), 0, 255).astype(np.uint8)
            image = Image.fromarray(array)
            writer.add(f"{kind}-{index}", image, image)
    return writer.finalize()


def test_cluster_selection_keeps_one_pair_of_each_kind(three_kinds):
    selection = select(three_kinds, 3, "cluster", seed=0, embedder="builtin")
    assert sorted(i.split("-")[0] for i in selection.ids) == ["green", "red", "stripes"]
    # Each chosen pair is the one nearest its cluster's centre.
    labels, distances = np.array(selection.labels), np.array(selection.distances)
    for chosen in selection.ids:
        index = selection.all_ids.index(chosen)
        same = labels == labels[index]
        assert distances[index] == distances[same].min()
    assert len(selection.projection) == len(selection.all_ids) == 12
    assert all(len(point) == 2 for point in selection.projection)


def test_selection_is_deterministic_given_a_seed(three_kinds):
    for method in ("cluster", "random"):
        assert select_pairs(three_kinds, 5, method, seed=1) == select_pairs(three_kinds, 5, method, seed=1)
        assert len(set(select_pairs(three_kinds, 5, method, seed=1))) == 5


@pytest.mark.parametrize("k,method,message", [(0, "cluster", "at least 1"),
                                              (13, "cluster", "only 12"),
                                              (3, "nearest", "unknown selection method")])
def test_bad_selection_requests_are_clear_errors(three_kinds, k, method, message):
    with pytest.raises(E2GANError, match=message):
        select(three_kinds, k, method)


def test_cluster_selection_with_the_clip_image_tower(three_kinds):
    from e2gan.teachers.clip_scores import ClipScorer

    scorer = ClipScorer.tiny_random(seed=0)
    selection = select(three_kinds, 3, "cluster", seed=0, embedder="clip",
                       embedder_settings={"scorer": scorer})
    assert selection.embedder == "clip" and len(selection.ids) == 3
    assert len(selection.labels) == 12 and len(set(selection.labels)) == 3
    # An embedder function works the same way as its registry name.
    direct = select(three_kinds, 3, "cluster", seed=0, embedder=scorer.embed_images)
    assert direct.ids == selection.ids and direct.labels == selection.labels


def test_default_embedder_falls_back_to_builtin_and_says_why(three_kinds, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    selection = select(three_kinds, 3, "cluster", seed=0)
    assert selection.embedder == "builtin" and "no CLIP weights" in selection.embedder_note
    assert selection.ids == select(three_kinds, 3, "cluster", seed=0, embedder="builtin").ids


def _select_cli(capsys, *argv):
    import json

    from e2gan.cli import main

    code = main(["select", *argv, "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out.splitlines()[-1]), captured.err


def test_select_cli_embedders(capsys, three_kinds, tmp_path, monkeypatch):
    import huggingface_hub.constants

    from test_embedders import _tiny_onnx_face_model

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    dataset = str(three_kinds.root)
    code, result, err = _select_cli(capsys, "--dataset", dataset, "--k", "3")
    assert code == 0 and result["embedder"] == "builtin" and "no CLIP weights" in err
    _tiny_onnx_face_model(tmp_path / "face.onnx")
    code, result, _ = _select_cli(capsys, "--dataset", dataset, "--k", "3", "--embedder", "face",
                                  "--face-weights", str(tmp_path / "face.onnx"))
    assert code == 0 and result["embedder"] == "face" and len(result["ids"]) == 3
    for argv, message in [(["--embedder", "clip"], "huggingface-cli download"),
                          (["--embedder", "colour"], "unknown image embedder 'colour'"),
                          (["--face-weights", "f.onnx"], "goes with --embedder face")]:
        code, result, err = _select_cli(capsys, "--dataset", dataset, "--k", "3", *argv)
        assert code == 2 and message in result["error"] and err.startswith("error: ")


def _two_looks(tmp_path, looks: int) -> "PairDataset":
    """18 photos of varied content; a teacher whose seeds draw one of `looks` looks: 12 pairs
    tinted warm and darkened, then (with 2 looks) 6 turned cold and bright."""
    rng = np.random.default_rng(1)
    writer = PairDatasetWriter(tmp_path / f"looks{looks}", DatasetInfo(concept="c", prompt="c"))
    for index in range(18):
        source = rng.integers(0, 255, (32, 32, 3)).astype(np.float32)
        source = np.clip(source * rng.uniform(0.3, 1.0) + rng.uniform(0, 80), 0, 255)
        if looks == 1 or index < 12:
            edit = source * np.array([1.0, 0.55, 0.35]) * 0.8
        else:
            edit = 255 - (255 - source) * np.array([0.3, 0.6, 1.0]) * 0.5
        writer.add(f"p{index:02d}", Image.fromarray(source.astype(np.uint8)),
                   Image.fromarray(np.clip(edit, 0, 255).astype(np.uint8)))
    return writer.finalize()


def test_one_look_keeps_the_pairs_whose_edits_agree_and_says_what_it_left_out(tmp_path):
    dataset = _two_looks(tmp_path, looks=2)
    selection = select(dataset, 5, "one_look", seed=0, embedder="builtin")
    assert sorted(selection.other_look_ids) == [f"p{index:02d}" for index in range(12, 18)]
    assert len(selection.ids) == 5 and all(int(i[1:]) < 12 for i in selection.ids)
    assert sorted(selection.all_ids) == [f"p{index:02d}" for index in range(12)]
    assert selection.consistency["kept"] > selection.consistency["all"]
    # Cluster selection alone takes pairs of both looks.
    assert any(int(i[1:]) >= 12 for i in select(dataset, 5, "cluster", seed=0, embedder="builtin").ids)


def test_one_look_leaves_a_single_look_whole(tmp_path):
    dataset = _two_looks(tmp_path, looks=1)
    selection = select(dataset, 5, "one_look", seed=0, embedder="builtin")
    assert selection.other_look_ids == [] and len(selection.all_ids) == 18
    assert selection.consistency["kept"] == selection.consistency["all"]

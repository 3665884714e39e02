import numpy as np
import pytest
from PIL import Image

from e2gan.data.dataset import DatasetInfo, PairDatasetWriter
from e2gan.errors import E2GANError
from e2gan.selection import select, select_pairs


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
    selection = select(three_kinds, 3, "cluster", seed=0)
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

"""Choosing the base's training concepts (E2GAN Sec. 4.2.1): k concepts that cover the catalogue,
one per K-means cluster of the concepts' mean embeddings, never a held-out one."""

from __future__ import annotations

import json

import pytest

from e2gan.curation.concept_selection import ALWAYS_HELD_OUT, select_concepts, square_photos
from e2gan.data.sources import builtin_photos
from e2gan.errors import E2GANError
from e2gan.teachers import BUILTIN_CONCEPTS

from test_cli import assert_user_error, last_json, run

# Tiny and offline: three packaged photos at 32 px, the weight-free built-in embedder.
SIZE = 32


@pytest.fixture(scope="module")
def photos():
    return square_photos((image for _, image in builtin_photos(3, size=SIZE)), SIZE)


@pytest.fixture(scope="module")
def selection(photos):
    return select_concepts(photos, 6, hold_out=["cartoon"], seed=0, embedder="builtin")


def test_selection_is_one_concept_per_cluster_nearest_its_centre(selection):
    assert len(selection.chosen) == 6 == len(selection.clusters)
    assert len(set(selection.chosen)) == 6
    assert [cluster.chosen for cluster in selection.clusters] == selection.chosen
    for cluster in selection.clusters:
        assert cluster.members[0] == cluster.chosen
        assert cluster.distances == sorted(cluster.distances)
        assert len(cluster.distances) == len(cluster.members)
    # The clusters split exactly the candidates: every concept that is not held out, once.
    members = [name for cluster in selection.clusters for name in cluster.members]
    assert sorted(members) == sorted(set(BUILTIN_CONCEPTS) - {"winter", "cartoon"})
    assert selection.embedder == "builtin" and selection.images == 3


def test_winter_and_named_concepts_are_held_out_and_never_chosen(selection):
    assert selection.held_out == ["winter", "cartoon"]
    assert "winter" in ALWAYS_HELD_OUT
    assert not set(selection.chosen) & {"winter", "cartoon"}


def test_winter_is_held_out_even_when_every_other_concept_is_chosen(photos):
    everything_else = len(BUILTIN_CONCEPTS) - 1
    result = select_concepts(photos[:1], everything_else, embedder="builtin")
    assert result.held_out == ["winter"]
    assert sorted(result.chosen) == sorted(set(BUILTIN_CONCEPTS) - {"winter"})


def test_selection_is_deterministic_for_a_seed(photos, selection):
    again = select_concepts(photos, 6, hold_out=["cartoon"], seed=0, embedder="builtin")
    assert again.to_json() == selection.to_json()


@pytest.mark.parametrize("k, hold_out, message", [
    (0, (), "k must be at least 1, got 0"),
    (len(BUILTIN_CONCEPTS), (), f"only {len(BUILTIN_CONCEPTS) - 1} candidates remain"),
    (3, ("no_such_concept",), "cannot hold out unknown concept 'no_such_concept'"),
])
def test_bad_requests_are_clear_errors(photos, k, hold_out, message):
    with pytest.raises(E2GANError, match=message):
        select_concepts(photos, k, hold_out=hold_out, embedder="builtin")


def test_cli_prints_and_writes_the_selection(capsys, tmp_path):
    out = tmp_path / "selection.json"
    code, lines, _ = run(capsys, "select-concepts", "--k", "4", "--count", "2", "--size", str(SIZE),
                         "--hold-out", "cartoon,pop_art", "--hold-out", "night",
                         "--embedder", "builtin", "--out", str(out), "--json")
    assert code == 0
    printed = last_json(lines)
    assert len(printed["chosen"]) == 4
    assert printed["held_out"] == ["winter", "cartoon", "pop_art", "night"]
    assert not set(printed["chosen"]) & set(printed["held_out"])
    written = json.loads(out.read_text())
    assert written["chosen"] == printed["chosen"] and written["clusters"] == printed["clusters"]


def test_cli_bad_k_is_a_user_error(capsys):
    code, lines, errors = run(capsys, "select-concepts", "--k", "0", "--count", "1",
                              "--size", str(SIZE), "--embedder", "builtin", "--json")
    assert_user_error(code, lines, errors, "k must be at least 1")

import numpy as np
import pytest
from PIL import Image

from e2gan.teachers.clip_scores import ClipScorer
from e2gan.errors import E2GANError
from e2gan.evaluation.metrics.clip import (cmmd, cmmd_from_embeddings, directional_similarities_from_embeddings,
                                directional_similarity, evaluate_edits)


def _unit(array):
    return array / np.linalg.norm(array, axis=1, keepdims=True)


def _photos(count, seed=0, size=40):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(40, 216, (size, size, 3), dtype=np.uint8)) for _ in range(count)]


class BrightnessClip:
    """A transparent stand-in for CLIP: images embed by how bright and how dark they are, and the
    captions 'a bright photo' / 'a dark photo' point the same two ways."""

    model_name, pretrained = "brightness", None

    def embed_images(self, images):
        brightness = np.array([np.asarray(image, float).mean() / 255 for image in images])
        return _unit(np.stack([brightness, 1 - brightness, np.full_like(brightness, 0.5)], axis=1))

    def embed_texts(self, texts):
        table = {"a photo": [0.5, 0.5, 0.5], "a bright photo": [1, 0, 0.5], "a dark photo": [0, 1, 0.5]}
        return _unit(np.array([table[text] for text in texts], float))


def _brightened(images, amount):
    return [Image.fromarray(np.clip(np.asarray(image, int) + amount, 0, 255).astype(np.uint8))
            for image in images]


def test_cmmd_matches_the_reference_formula():
    rng = np.random.default_rng(0)
    x, y = _unit(rng.normal(size=(6, 8))), _unit(rng.normal(size=(4, 8)))

    def kernel_mean(a, b):
        return np.mean([[np.exp(-np.sum((p - q) ** 2) / (2 * 10.0 ** 2)) for q in b] for p in a])

    expected = 1000 * (kernel_mean(x, x) + kernel_mean(y, y) - 2 * kernel_mean(x, y))
    assert cmmd_from_embeddings(x, y) == pytest.approx(expected, rel=1e-9)
    assert cmmd_from_embeddings(x, y) == pytest.approx(cmmd_from_embeddings(y, x), rel=1e-12)


def test_cmmd_is_zero_for_a_set_against_itself_and_grows_with_a_shift():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 16))
    direction = _unit(rng.normal(size=(1, 16)))
    assert cmmd_from_embeddings(x, x) == pytest.approx(0.0, abs=1e-9)
    values = [cmmd_from_embeddings(x, x + shift * direction) for shift in (0.5, 1.0, 2.0, 4.0)]
    assert values[0] > 0 and all(a < b for a, b in zip(values, values[1:]))


def test_cmmd_of_images(tmp_path):
    scorer = ClipScorer.tiny_random(seed=0)
    images = _photos(6)
    assert cmmd(images, images, scorer) == pytest.approx(0.0, abs=1e-6)
    assert cmmd(images, _photos(6, seed=9), scorer) > 0
    with pytest.raises(E2GANError, match="at least one"):
        cmmd([], images, scorer)


def test_directional_similarity_of_embeddings_follows_the_text_change():
    rng = np.random.default_rng(2)
    sources = _unit(rng.normal(size=(5, 8)))
    text_source, text_edit = _unit(rng.normal(size=(2, 8)))
    change = text_edit - text_source
    along = directional_similarities_from_embeddings(sources, sources + 0.3 * change, text_source, text_edit)
    against = directional_similarities_from_embeddings(sources, sources - 0.3 * change, text_source, text_edit)
    np.testing.assert_allclose(along, 1.0, atol=1e-9)
    np.testing.assert_allclose(against, -1.0, atol=1e-9)
    unchanged = directional_similarities_from_embeddings(sources, sources, text_source, text_edit)
    np.testing.assert_array_equal(unchanged, 0.0)


def test_an_edit_along_the_text_direction_scores_higher_than_one_against_it():
    scorer, sources = BrightnessClip(), _photos(4, seed=3)
    brighter, darker = _brightened(sources, 40), _brightened(sources, -40)
    along = directional_similarity(sources, brighter, "a bright photo", scorer)
    against = directional_similarity(sources, darker, "a bright photo", scorer)
    assert along > 0.5 and against < -0.5
    assert directional_similarity(sources, darker, "a dark photo", scorer) > 0.5
    with pytest.raises(E2GANError, match="matching"):
        directional_similarity(sources, brighter[:2], "a bright photo", scorer)


def test_evaluate_edits_compares_a_maker_with_the_teacher():
    scorer, sources = BrightnessClip(), _photos(4, seed=4)
    teacher = _brightened(sources, 50)
    perfect = evaluate_edits(sources, teacher, teacher, "a bright photo", scorer=scorer)
    assert perfect["cmmd"] == pytest.approx(0.0, abs=1e-6)
    assert perfect["direction_similarity"] == perfect["direction_similarity_teacher"] > 0.5
    copycat = evaluate_edits(sources, sources, teacher, "a bright photo", scorer=scorer)
    assert copycat["direction_similarity"] == 0.0 and copycat["image_similarity"] == pytest.approx(1.0)
    assert copycat["cmmd"] > perfect["cmmd"]
    wrong_way = evaluate_edits(sources, _brightened(sources, -50), teacher, "a bright photo", scorer=scorer)
    assert wrong_way["direction_similarity"] < 0 < perfect["direction_similarity"]
    with pytest.raises(E2GANError, match="as many"):
        evaluate_edits(sources, sources[:1], teacher, "a bright photo", scorer=scorer)


def test_evaluate_edits_runs_on_an_open_clip_model():
    scorer, sources = ClipScorer.tiny_random(seed=0), _photos(3, seed=5)
    result = evaluate_edits(sources, _photos(3, seed=6), _photos(3, seed=7), "make it snowy",
                            scorer=scorer)
    assert set(result) == {"direction_similarity", "direction_similarity_teacher", "image_similarity",
                           "cmmd", "clip_model"}
    assert -1 <= result["direction_similarity"] <= 1 and result["cmmd"] > 0
    assert result["clip_model"] == "tiny-random/None"

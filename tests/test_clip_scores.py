import json

import numpy as np
import pytest
import torch
from PIL import Image

from e2gan.teachers.clip_scores import TINY_CONFIG, ClipScorer, clip_weights_available
from e2gan.errors import E2GANError


@pytest.fixture(scope="module")
def scorer():
    return ClipScorer.tiny_random(seed=0)


def _images(count, seed=0, size=40):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8))
            for _ in range(count)]


def test_embeddings_are_unit_rows_of_the_model_width(scorer):
    images = _images(3) + [Image.new("L", (50, 30), 128)]  # any mode and aspect ratio
    embedded = scorer.embed_images(images)
    texts = scorer.embed_texts(["a snowy street", "a sunny street", "a snowy street"])
    for array, rows in ((embedded, 4), (texts, 3)):
        assert array.shape == (rows, TINY_CONFIG["embed_dim"]) and array.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(array, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(texts[0], texts[2])
    assert not np.allclose(texts[0], texts[1])
    assert scorer.embed_images([]).shape == (0, TINY_CONFIG["embed_dim"])
    assert scorer.embed_texts([]).shape == (0, TINY_CONFIG["embed_dim"])


def test_tiny_random_is_deterministic_and_leaves_the_global_rng_alone(scorer):
    images = _images(2)
    state = torch.random.get_rng_state()
    same = ClipScorer.tiny_random(seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    np.testing.assert_array_equal(same.embed_images(images), scorer.embed_images(images))
    other = ClipScorer.tiny_random(seed=1)
    assert not np.allclose(other.embed_images(images), scorer.embed_images(images))


def test_batching_does_not_change_embeddings(scorer):
    images = _images(5, seed=3)
    whole = scorer.embed_images(images)
    small = ClipScorer.tiny_random(seed=0)
    small.batch_size = 2  # three model calls instead of one
    np.testing.assert_allclose(small.embed_images(images), whole, atol=1e-5)


def test_edit_scores_follow_the_instructpix2pix_definitions(scorer):
    sources, edits = _images(3, seed=1), _images(3, seed=2)
    scores = scorer.edit_scores(sources, edits, "a photo", "a snowy photo")
    assert set(scores) >= {"image_similarity", "direction_similarity", "caption_similarity"}
    source_image, edit_image = scorer.embed_images(sources), scorer.embed_images(edits)
    source_text, edit_text = scorer.embed_texts(["a photo", "a snowy photo"])

    def cosine(a, b):
        return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))

    np.testing.assert_allclose(scores["image_similarity"], cosine(source_image, edit_image), atol=1e-5)
    np.testing.assert_allclose(scores["direction_similarity"],
                               cosine(edit_image - source_image, edit_text - source_text), atol=1e-5)
    np.testing.assert_allclose(scores["caption_similarity"], cosine(edit_image, edit_text), atol=1e-5)
    # Reversing the edit (and its text) measures the same agreement; reversing only the text flips it.
    swapped = scorer.edit_scores(sources, edits, "a snowy photo", "a photo")
    np.testing.assert_allclose(swapped["direction_similarity"], -scores["direction_similarity"], atol=1e-5)
    reversed_edit = scorer.edit_scores(edits, sources, "a snowy photo", "a photo")
    np.testing.assert_allclose(reversed_edit["direction_similarity"], scores["direction_similarity"],
                               atol=1e-5)


def test_an_edit_that_changes_nothing_has_image_similarity_one_and_no_direction(scorer):
    images = _images(2, seed=5)
    scores = scorer.edit_scores(images, images, ["a photo", "a cat"], ["a sketch", "a dog"])
    np.testing.assert_allclose(scores["image_similarity"], 1.0, atol=1e-5)
    np.testing.assert_allclose(scores["direction_similarity"], 0.0, atol=1e-6)
    assert np.isfinite(scores["caption_similarity"]).all()


@pytest.mark.parametrize("sources,edits,captions,message", [
    (2, 3, "a photo", "2 sources but 3 edits"),
    (2, 2, ["a photo"], "1 entries for 2 image pairs"),
])
def test_mismatched_inputs_are_clear_errors(scorer, sources, edits, captions, message):
    with pytest.raises(E2GANError, match=message):
        scorer.edit_scores(_images(sources), _images(edits), captions, "an edit")


def test_missing_weights_name_what_to_fetch_without_downloading(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(E2GANError, match="huggingface-cli download laion/CLIP-ViT-B-32"):
        ClipScorer.from_pretrained("ViT-B-32")
    available, reason = clip_weights_available("ViT-B-32")
    assert not available and "not on this machine" in reason
    with pytest.raises(E2GANError, match="no such file"):
        ClipScorer.from_pretrained("ViT-B-32", pretrained=str(tmp_path / "missing.pt"))


def test_from_pretrained_loads_a_local_checkpoint_file(tmp_path, scorer):
    """The real loading path (open_clip config + checkpoint + tokenizer) on a tiny saved model."""
    import open_clip

    config_dir = tmp_path / "configs"
    config_dir.mkdir()
    (config_dir / "e2gan-tiny-test.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config_dir)
    checkpoint = tmp_path / "tiny.pt"
    torch.save(scorer.model.state_dict(), checkpoint)

    loaded = ClipScorer.from_pretrained("e2gan-tiny-test", pretrained=str(checkpoint))
    images = _images(2, seed=7)
    np.testing.assert_allclose(loaded.embed_images(images), scorer.embed_images(images), atol=1e-5)
    np.testing.assert_allclose(loaded.embed_texts(["a snowy photo"]),
                               scorer.embed_texts(["a snowy photo"]), atol=1e-5)
    assert clip_weights_available("e2gan-tiny-test", str(checkpoint)) == (True, str(checkpoint))
    assert loaded.spec()["pretrained"] == str(checkpoint)

    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(E2GANError, match="cannot load open_clip"):
        ClipScorer.from_pretrained("e2gan-tiny-test", pretrained=str(checkpoint))

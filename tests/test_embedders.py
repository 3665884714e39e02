import numpy as np
import pytest
from PIL import Image

from e2gan.teachers.clip_scores import ClipScorer
from e2gan.curation.embedders import (EMBEDDERS, FACE_WEIGHTS_ENV, OnnxFaceModel, create_embedder,
                             default_embedder, face_crop)
from e2gan.errors import E2GANError


@pytest.fixture(scope="module")
def scorer():
    return ClipScorer.tiny_random(seed=0)


@pytest.fixture()
def no_clip_weights(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))


def _photos(count, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)) for _ in range(count)]


def _face_on_canvas(left, top):
    """The astronaut's head (a real photo shipped with scikit-image) pasted on a grey canvas;
    her face's centre lands near (left + 105, top + 85)."""
    from skimage import data

    face = Image.fromarray(data.astronaut()).crop((100, 0, 320, 220))
    canvas = Image.new("RGB", (400, 300), (128, 128, 128))
    canvas.paste(face, (left, top))
    return canvas


def test_registry_offers_builtin_clip_and_face():
    assert {"builtin", "clip", "face"} <= set(EMBEDDERS.names())
    with pytest.raises(ValueError, match="already registered"):
        EMBEDDERS.add("clip", lambda: None)


def test_clip_embedder_is_the_open_clip_image_tower(scorer):
    images = _photos(3)
    embed, name, note = create_embedder("clip", scorer=scorer)
    embedded = embed(images)
    assert name == "clip" and note == ""
    np.testing.assert_array_equal(embedded, scorer.embed_images(images))
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), 1.0, atol=1e-5)


def test_clip_embedder_without_weights_says_what_to_fetch(no_clip_weights):
    with pytest.raises(E2GANError, match="huggingface-cli download"):
        create_embedder("clip")


def test_default_embedder_is_clip_only_where_weights_are_present(no_clip_weights, monkeypatch):
    name, note = default_embedder()
    assert name == "builtin" and "no CLIP weights" in note
    monkeypatch.setattr("e2gan.curation.embedders.clip_weights_available",  # where it is read
                        lambda *args, **kwargs: (True, "/models/clip.safetensors"))
    name, note = default_embedder()
    assert name == "clip" and "/models/clip.safetensors" in note


@pytest.mark.parametrize("left,top", [(20, 30), (170, 70)])
def test_face_crop_follows_the_face(left, top):
    crop, found = face_crop(_face_on_canvas(left, top))
    assert found and crop.width == crop.height and 60 < crop.width < 260
    # The crop is mostly photo, not grey canvas: it sits on the pasted head, wherever that is.
    grey = np.all(np.abs(np.asarray(crop).astype(int) - 128) < 3, axis=2).mean()
    assert grey < 0.25


def test_face_crop_falls_back_to_the_centre_without_a_face():
    crop, found = face_crop(Image.new("RGB", (100, 60), (90, 120, 150)))
    assert not found and crop.size == (48, 48)


def _tiny_onnx_face_model(path, size=8, dim=4):
    """A linear 'face network' (flatten, matmul) written with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(0).normal(size=(3 * size * size, dim)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"], axis=1),
         helper.make_node("MatMul", ["flat", "weight"], ["embedding"])],
        "face", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dim])],
        [numpy_helper.from_array(weight, "weight")])
    # IR version 8 (onnx 1.10+) loads in every onnxruntime of the last years.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, path)
    return weight


def test_onnx_face_model_embeds_normalised_faces(tmp_path):
    weight = _tiny_onnx_face_model(tmp_path / "face.onnx")
    model = OnnxFaceModel(tmp_path / "face.onnx")
    faces = _photos(3, seed=4)
    embedded = model(faces)
    pixels = np.stack([np.asarray(face.resize((8, 8), Image.BILINEAR)) for face in faces])
    expected = (((pixels.astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2)
                .reshape(3, -1) @ weight)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(embedded, expected, atol=1e-5)


def test_face_embedder_uses_the_named_onnx_model_over_face_crops(tmp_path, monkeypatch):
    _tiny_onnx_face_model(tmp_path / "face.onnx")
    monkeypatch.setenv(FACE_WEIGHTS_ENV, str(tmp_path / "face.onnx"))
    images = [_face_on_canvas(20, 30), _face_on_canvas(170, 70)]
    embedded = create_embedder("face")[0](images)
    assert embedded.shape == (2, 4)
    crops = [face_crop(image)[0] for image in images]
    np.testing.assert_allclose(embedded, OnnxFaceModel(tmp_path / "face.onnx")(crops), atol=1e-6)


def test_face_embedder_falls_back_to_clip_over_the_crop(scorer):
    images = [_face_on_canvas(20, 30), Image.new("RGB", (64, 64), (10, 20, 30))]
    embedded = create_embedder("face", scorer=scorer)[0](images)
    np.testing.assert_allclose(embedded, scorer.embed_images([face_crop(i)[0] for i in images]),
                               atol=1e-6)


def test_bad_face_weights_are_clear_errors(tmp_path, no_clip_weights, monkeypatch):
    monkeypatch.delenv(FACE_WEIGHTS_ENV, raising=False)
    with pytest.raises(E2GANError, match="needs a face-recognition .onnx .* or CLIP weights"):
        create_embedder("face")
    with pytest.raises(E2GANError, match="face model not found"):
        create_embedder("face", weights=str(tmp_path / "missing.onnx"))
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with pytest.raises(E2GANError, match="cannot load face model"):
        create_embedder("face", weights=str(tmp_path / "bad.onnx"))

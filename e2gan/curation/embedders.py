"""Image embedders for similarity clustering, in a registry.

Each registry entry is a factory; calling it (with its optional settings) gives an `Embedder`,
a function from a list of images to an (N, D) float32 array.

- `builtin` needs no weights: colour, texture and layout features of an image, each block
  standardised and weighted equally so none dominates by its dimension count.
- `clip`: open_clip's image tower (`e2gan.teachers.clip_scores.ClipScorer`), the paper's choice for scenes.
  `default_embedder` picks it wherever CLIP weights are on this machine.
- `face`: identity features of the face in each image, for face data (the paper uses FaceNet).
  The face is found with scikit-image's LBP frontal-face cascade (shipped with scikit-image;
  images where none is found fall back to a centre crop, as face data sets are roughly centred)
  and embedded by a face-recognition ONNX model the user points to (an ArcFace/FaceNet export:
  NCHW RGB input scaled to [-1, 1], one embedding row per face), or, without one, by the CLIP
  image tower over the crop. facenet-pytorch itself is not used: it pins torch < 2.3 and
  downloads its weights from GitHub.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
from PIL import Image, ImageOps
from skimage.color import rgb2gray, rgb2hsv, rgb2lab
from skimage.feature import hog

from e2gan.errors import E2GANError
from e2gan.registry import Registry
from e2gan.teachers.clip_scores import ClipScorer, DEFAULT_MODEL, clip_weights_available

Embedder = Callable[[list[Image.Image]], np.ndarray]
EMBEDDERS: Registry[Callable[..., Embedder]] = Registry("image embedder")
FACE_WEIGHTS_ENV = "E2GAN_FACE_WEIGHTS"  # path of a face-recognition .onnx, when not passed


def _features(image: Image.Image) -> list[np.ndarray]:
    rgb = np.asarray(image.convert("RGB").resize((64, 64), Image.BILINEAR), dtype=np.float64) / 255
    # Layout: a coarse Lab thumbnail (where light, dark and colour sit in the frame).
    layout = rgb2lab(np.asarray(image.convert("RGB").resize((8, 8), Image.BOX)) / 255).ravel()
    # Colour: a joint hue/saturation/value histogram.
    hsv = rgb2hsv(rgb).reshape(-1, 3)
    colour, _ = np.histogramdd(hsv, bins=(8, 4, 4), range=((0, 1), (0, 1), (0, 1)))
    colour = colour.ravel() / hsv.shape[0]
    # Texture: histograms of gradient orientations over a 4x4 grid.
    texture = hog(rgb2gray(rgb), orientations=8, pixels_per_cell=(16, 16), cells_per_block=(1, 1))
    return [layout, colour, texture]


@EMBEDDERS.register("builtin")
def builtin_embedder() -> Embedder:
    def embed(images: list[Image.Image]) -> np.ndarray:
        blocks = [np.stack(column) for column in zip(*(_features(image) for image in images))]
        scaled = []
        for block in blocks:
            centred = block - block.mean(axis=0)
            scale = np.sqrt((centred ** 2).sum(axis=1).mean()) or 1.0
            scaled.append(centred / scale)  # every block contributes unit mean squared norm
        return np.concatenate(scaled, axis=1).astype(np.float32)
    return embed


@EMBEDDERS.register("clip")
def clip_embedder(scorer=None, model_name: str | None = None, pretrained: str | None = None,
                  device: str = "cpu") -> Embedder:
    """open_clip's image tower; `scorer` (a `ClipScorer`) or weights loaded locally."""
    if scorer is None:
        scorer = ClipScorer.from_pretrained(model_name or DEFAULT_MODEL, pretrained, device)
    return scorer.embed_images


def default_embedder() -> tuple[str, str]:
    """("clip", why) where real CLIP weights are on this machine, else ("builtin", why not)."""
    available, detail = clip_weights_available()
    if available:
        return "clip", f"CLIP image tower ({detail})"
    return "builtin", f"built-in features, since no CLIP weights were found: {detail}"


# --- faces --------------------------------------------------------------------------------------

_DETECTION_SIDE = 160  # faces are found on a copy this size: the cascade's cost grows with area
# The cascade looks for faces of at least 32 px there (a fifth of the frame): face data sets hold
# large faces, and smaller windows multiply the cost for nothing.


def face_crop(image: Image.Image, detector=None, margin: float = 0.25) -> tuple[Image.Image, bool]:
    """The square around the largest frontal face (grown by `margin`), and whether one was found.

    Without a detection, the centre square of 80% of the short side: face data sets are centred.
    """
    from skimage import data
    from skimage.feature import Cascade

    image = image.convert("RGB")
    detector = detector or Cascade(data.lbp_frontal_face_cascade_filename())
    scale = _DETECTION_SIDE / max(image.size)
    small = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.BILINEAR)
    # The cascade misses faces that touch the border (the usual tight face crop): pad first.
    border = _DETECTION_SIDE // 5
    padded = ImageOps.expand(small, border=border, fill=(128, 128, 128))
    found = detector.detect_multi_scale(img=np.asarray(padded), scale_factor=1.1, step_ratio=1,
                                        min_size=(32, 32), max_size=padded.size)
    if found:
        face = max(found, key=lambda box: box["width"] * box["height"])
        side = max(face["width"], face["height"]) * (1 + 2 * margin) / scale
        centre_x = (face["c"] + face["width"] / 2 - border) / scale
        centre_y = (face["r"] + face["height"] / 2 - border) / scale
    else:
        side = 0.8 * min(image.size)
        centre_x, centre_y = image.width / 2, image.height / 2
    box = (round(centre_x - side / 2), round(centre_y - side / 2),
           round(centre_x + side / 2), round(centre_y + side / 2))
    return image.crop(box), bool(found)  # PIL pads any part outside the image with black


class OnnxFaceModel:
    """A face-recognition network exported to ONNX: (N, 3, H, W) RGB in [-1, 1] -> (N, D)."""

    def __init__(self, path: str | os.PathLike) -> None:
        import onnxruntime

        if not os.path.isfile(path):
            raise E2GANError(f"face model not found: {path} (give a face-recognition .onnx file)")
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:
            raise E2GANError(f"cannot load face model {path}: {error}") from None
        model_input = self.session.get_inputs()[0]
        shape = model_input.shape
        if len(shape) != 4 or shape[1] not in (3, "3"):
            raise E2GANError(f"face model {path} takes input of shape {shape}; expected (N, 3, H, W)")
        self.input_name = model_input.name
        # Dynamic sides (names, not numbers) get ArcFace's 112 px.
        self.size = tuple(side if isinstance(side, int) else 112 for side in shape[2:])
        self.batch = shape[0] if isinstance(shape[0], int) else 32

    def __call__(self, faces: list[Image.Image]) -> np.ndarray:
        height, width = self.size
        array = np.stack([np.asarray(face.convert("RGB").resize((width, height), Image.BILINEAR))
                          for face in faces]).astype(np.float32)
        array = ((array - 127.5) / 127.5).transpose(0, 3, 1, 2)
        rows = [self.session.run(None, {self.input_name: array[start:start + self.batch]})[0]
                for start in range(0, len(array), self.batch)]
        features = np.concatenate(rows).reshape(len(faces), -1)
        norms = np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-8)
        return (features / norms).astype(np.float32)


@EMBEDDERS.register("face")
def face_embedder(weights: str | None = None, scorer=None, device: str = "cpu") -> Embedder:
    """Identity features of each image's face: an ONNX face model (`weights`, or the file named
    by $E2GAN_FACE_WEIGHTS) over the face crop, else the CLIP image tower over it."""
    from skimage import data
    from skimage.feature import Cascade

    weights = weights or os.environ.get(FACE_WEIGHTS_ENV)
    if weights:
        network: Callable[[list[Image.Image]], np.ndarray] = OnnxFaceModel(weights)
    else:
        try:
            network = clip_embedder(scorer=scorer, device=device)
        except E2GANError as error:
            raise E2GANError(f"the face embedder needs a face-recognition .onnx (--face-weights or "
                             f"${FACE_WEIGHTS_ENV}) or CLIP weights; {error}") from None
    detector = Cascade(data.lbp_frontal_face_cascade_filename())

    def embed(images: list[Image.Image]) -> np.ndarray:
        return network([face_crop(image, detector)[0] for image in images])
    return embed


def create_embedder(name: str | None = None, **settings) -> tuple[Embedder, str, str]:
    """(embedder, its name, a note on the choice); no name means `default_embedder`."""
    note = ""
    if name is None:
        name, note = default_embedder()
    return EMBEDDERS.get(name)(**settings), name, note

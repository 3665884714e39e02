"""Image embedders for similarity clustering, in a registry.

`builtin` needs no weights: colour, texture and layout features of an image, each block
standardised and weighted equally so none dominates by its dimension count. Heavier embedders
(open_clip's image tower, a face-identity network) join the registry with the teachers issue.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image
from skimage.color import rgb2gray, rgb2hsv, rgb2lab
from skimage.feature import hog

from e2gan.registry import Registry

Embedder = Callable[[list[Image.Image]], np.ndarray]
EMBEDDERS: Registry[Callable[[], Embedder]] = Registry("image embedder")


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

"""Built-in concepts that move pixels: lens and water distortions, mirror folds, polygon facets.

Same contract as `e2gan.teachers.effects`: `(rgb uint8 HxWx3, look, rng) -> uint8 HxWx3`.
The warps are smooth and centred near the middle of the frame, so the content is still the
photo's own, displaced by a field a generator can learn: strength, centre and phase come from
`look`, so every image of a concept gets the same field; only low_poly's mesh points and facet
shades are per image (`rng`). Well under 100 ms at 256 px.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import Delaunay
from skimage.transform import swirl as skimage_swirl

from e2gan.teachers.image_ops import (
    as_float,
    as_uint8,
    blur,
    gradient_magnitude,
    label_means,
    luminance,
    remap,
    saturate,
    size_scale,
    smoothstep,
)


def _centred_grid(height: int, width: int, centre_x: float, centre_y: float):
    """Pixel coordinates relative to a centre, in units of half the frame's width and height."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return (x - centre_x) / (width / 2), (y - centre_y) / (height / 2)


def swirl(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # A whirlpool twist around a point near the middle, strongest at the centre and fading out.
    height, width = rgb.shape[:2]
    centre = (width * look.uniform(0.45, 0.55), height * look.uniform(0.45, 0.55))  # (column, row)
    twisted = skimage_swirl(as_float(rgb), center=centre, strength=look.uniform(3.0, 4.5),
                            radius=0.6 * min(height, width), order=1, mode="reflect")
    return as_uint8(twisted)


def fisheye(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # A circular fisheye lens: the middle bulges towards the viewer, the edges are squeezed round
    # the rim of the lens's image circle, and the corners fall outside it into black.
    image = as_float(rgb)
    height, width = image.shape[:2]
    x, y = _centred_grid(height, width, (width - 1) / 2, (height - 1) / 2)
    radius = np.sqrt(x * x + y * y)
    power = look.uniform(1.6, 1.9)
    # Reading from radius**power pulls the centre outwards (magnifies it) and keeps the rim fixed.
    stretch = np.where(radius > 1e-6, radius ** (power - 1.0), 0.0)
    source_x = (x * stretch + 1.0) * width / 2 - 0.5
    source_y = (y * stretch + 1.0) * height / 2 - 0.5
    bulged = remap(image, source_x, source_y, border=cv2.BORDER_REPLICATE)
    rim = 1.0 - smoothstep(radius, 0.96, 1.0)
    lens_falloff = 1.0 - 0.35 * radius**4
    return as_uint8(bulged * (rim * lens_falloff)[..., None])


def ripple(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # Rings spreading on a water surface: each pixel is displaced along the radius by a damped
    # sine wave, and the wave's slope catches the light.
    scale = size_scale(rgb)
    image = as_float(rgb)
    height, width = image.shape[:2]
    centre_x, centre_y = width * look.uniform(0.35, 0.65), height * look.uniform(0.35, 0.65)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    dx, dy = x - centre_x, y - centre_y
    radius = np.sqrt(dx * dx + dy * dy) + 1e-3
    wavelength = look.uniform(14.0, 20.0) * scale
    amplitude = look.uniform(2.5, 3.5) * scale
    phase = 2 * np.pi * radius / wavelength + look.uniform(0, 2 * np.pi)
    damping = np.exp(-radius / (0.8 * max(height, width)))
    shift = amplitude * np.sin(phase) * damping
    moved = remap(image, x + shift * dx / radius, y + shift * dy / radius)
    light = 1.0 + 0.25 * np.cos(phase) * damping
    return as_uint8(moved * light[..., None])


def kaleidoscope(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # The view down a kaleidoscope's mirror tube: one wedge of the picture, around its centre,
    # reflected into 6 or 8 alternating mirror copies.
    image = as_float(rgb)
    height, width = image.shape[:2]
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    dx, dy = x - centre_x, y - centre_y
    radius = np.sqrt(dx * dx + dy * dy)
    wedge = 2 * np.pi / int(look.choice([6, 8]))
    start = look.uniform(0, 2 * np.pi)
    angle = np.mod(np.arctan2(dy, dx) - start, 2 * wedge)
    folded = start + np.where(angle > wedge, 2 * wedge - angle, angle)  # mirror every other copy
    mirrored = remap(image, centre_x + radius * np.cos(folded), centre_y + radius * np.sin(folded))
    return as_uint8(saturate(mirrored, 1.15))


def low_poly(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # Faceted low-poly art: a Delaunay mesh with extra vertices on strong edges, each triangle one
    # flat colour (its mean), shaded a touch lighter or darker like a folded paper facet.
    scale = size_scale(rgb)
    image = as_float(rgb)
    height, width = image.shape[:2]
    edges = gradient_magnitude(blur(luminance(image), 1.0 * scale))
    count = max(12, int(height * width / (110 * max(scale, 0.25) ** 2) * look.uniform(0.9, 1.1)))
    # Half the vertices anywhere, half drawn in proportion to edge strength (so facets follow
    # outlines), plus the frame's corners and border points so the mesh covers every pixel.
    # Facet size is the look's; where the vertices fall and each facet's shade are per image.
    weights = (edges.ravel() + 1e-6) / (edges.sum() + 1e-6 * edges.size)
    on_edges = rng.choice(edges.size, size=count // 2, p=weights / weights.sum())
    points = [np.stack([on_edges % width, on_edges // width], axis=1).astype(np.float64),
              np.stack([rng.uniform(0, width - 1, count // 2),
                        rng.uniform(0, height - 1, count // 2)], axis=1)]
    border = max(3, int(np.sqrt(count) / 2))
    along_x, along_y = np.linspace(0, width - 1, border), np.linspace(0, height - 1, border)
    points += [np.stack([along_x, np.zeros(border)], 1), np.stack([along_x, np.full(border, height - 1)], 1),
               np.stack([np.zeros(border), along_y], 1), np.stack([np.full(border, width - 1), along_y], 1)]
    mesh = Delaunay(np.concatenate(points))
    labels = np.zeros((height, width), dtype=np.int32)
    for index, triangle in enumerate(np.round(mesh.points[mesh.simplices]).astype(np.int32)):
        cv2.fillConvexPoly(labels, triangle, index)
    colours = label_means(image, labels)
    colours *= rng.uniform(0.9, 1.1, (len(colours), 1)).astype(np.float32)
    facets = colours[labels]
    return as_uint8(saturate(facets, 1.1))

"""Small image primitives the built-in concepts are made of.

Everything works on float32 RGB (or gray) arrays in [0, 1]; `as_float` and `as_uint8` convert at
the edges. Filter sizes are given for a 256-pixel image and multiplied by `size_scale`, so an
effect looks the same at any resolution.
"""

from __future__ import annotations

import cv2
import numpy as np


def as_float(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) / 255.0


def as_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def size_scale(image: np.ndarray) -> float:
    """How much bigger than a 256-pixel image this one is, for sizing filters."""
    return min(image.shape[:2]) / 256.0


def odd_size(value: float, minimum: int = 3) -> int:
    size = max(minimum, int(round(value)))
    return size if size % 2 else size + 1


def luminance(image: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of a float RGB image, HxW."""
    return image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigmaX=max(sigma, 0.3), borderType=cv2.BORDER_REFLECT)


def noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float = 0.0) -> np.ndarray:
    """Unit gaussian noise, optionally smoothed to a blotchy low-frequency field (renormalised)."""
    field = rng.standard_normal(shape, dtype=np.float32)
    if sigma > 0:
        field = blur(field, sigma)
        field /= field.std() + 1e-6
    return field


def vignette(height: int, width: int, strength: float) -> np.ndarray:
    """Multiplier HxWx1 that darkens corners by up to `strength`."""
    y = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    radius = np.sqrt(x * x + y * y) / np.sqrt(2.0)
    return (1.0 - strength * radius**2)[..., None]


def smoothstep(value: np.ndarray, low: float, high: float) -> np.ndarray:
    t = np.clip((value - low) / (high - low), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def saturate(image: np.ndarray, amount: float) -> np.ndarray:
    """Scale saturation about the gray axis (amount > 1 boosts, < 1 desaturates)."""
    gray = luminance(image)[..., None]
    return gray + (image - gray) * amount


def flatten(image: np.ndarray, scale: float, passes: int = 2) -> np.ndarray:
    """Edge-preserving flattening, run at reduced size on big images to stay fast."""
    diameter = max(5, int(round(7 * min(scale, 1.0))))
    out = image
    for _ in range(passes):
        out = cv2.bilateralFilter(out, diameter, sigmaColor=0.12, sigmaSpace=diameter)
    return out


def posterize(image: np.ndarray, hue_step: float, saturations: int, values: int) -> np.ndarray:
    """Flat colours by rounding hue, saturation and value separately.

    Rounding RGB per channel would band near-grays (sky, walls) into pastel blotches; in HSV a
    gray stays gray.
    """
    hsv = cv2.cvtColor(np.clip(image, 0.0, 1.0), cv2.COLOR_RGB2HSV)  # H in degrees
    hsv[..., 0] = np.round(hsv[..., 0] / hue_step) * hue_step % 360.0
    hsv[..., 1] = np.round(hsv[..., 1] * (saturations - 1)) / (saturations - 1)
    hsv[..., 2] = np.round(hsv[..., 2] * (values - 1)) / (values - 1)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def ink_lines(gray: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """Multiplier HxW: 0 on dark outlines, 1 elsewhere (adaptive threshold of a smoothed gray)."""
    smooth = cv2.medianBlur(as_uint8(gray), odd_size(5 * scale, 3))
    block = odd_size(9 * scale, 3)
    lines = cv2.adaptiveThreshold(
        smooth, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block, offset
    )
    return lines.astype(np.float32) / 255.0


def sky_mask(image: np.ndarray, scale: float) -> np.ndarray:
    """HxW in [0, 1]: bright, untextured and high in the frame, which in a photo is mostly sky."""
    gray = luminance(image)
    smooth_gray = blur(gray, 3.0 * scale)
    texture = blur(np.abs(gray - smooth_gray), 3.0 * scale)
    height_weight = np.linspace(1.0, 0.2, gray.shape[0], dtype=np.float32)[:, None]
    return smoothstep(smooth_gray - 3.0 * texture, 0.5, 0.75) * height_weight


def gradient_magnitude(gray: np.ndarray) -> np.ndarray:
    dx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    dy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    return np.sqrt(dx * dx + dy * dy)


def skin_mask(image: np.ndarray, scale: float) -> np.ndarray:
    """HxW in [0, 1]: pixels in the YCrCb box where human skin of every tone falls.

    Chroma-only (Cr, Cb), so it ignores how brightly a face is lit; soft edges and a blur keep a
    grade applied through it from leaving hard borders.
    """
    ycrcb = cv2.cvtColor(np.clip(image, 0.0, 1.0), cv2.COLOR_RGB2YCrCb)  # float: Cr, Cb around 0.5
    red_chroma, blue_chroma = ycrcb[..., 1], ycrcb[..., 2]
    inside = (smoothstep(red_chroma, 0.52, 0.56) * (1.0 - smoothstep(red_chroma, 0.68, 0.72))
              * smoothstep(blue_chroma, 0.31, 0.34) * (1.0 - smoothstep(blue_chroma, 0.50, 0.53)))
    return blur(inside, 1.0 * scale)


def halftone_screen(coverage: np.ndarray, period: float, angle_degrees: float,
                    phase: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Ink HxW in [0, 1]: round dots on a rotated grid whose area follows `coverage` (0 to 1).

    A dot's radius grows with the square root of the coverage so its inked area tracks the tone;
    the extra 1.25 lets full coverage close the gaps between dots. Edges are anti-aliased over
    about one pixel.
    """
    height, width = coverage.shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = np.deg2rad(angle_degrees)
    u = (x * np.cos(angle) + y * np.sin(angle)) / period + phase[0]
    v = (-x * np.sin(angle) + y * np.cos(angle)) / period + phase[1]
    distance = np.sqrt((u - np.floor(u) - 0.5) ** 2 + (v - np.floor(v) - 0.5) ** 2)
    radius = 1.25 * np.sqrt(np.clip(coverage, 0.0, 1.0) / np.pi)
    softness = 0.5 / period
    return np.clip((radius - distance) / (2 * softness) + 0.5, 0.0, 1.0)


def jittered_cells(height: int, width: int, spacing: float, rng: np.random.Generator,
                   jitter: float = 0.8) -> np.ndarray:
    """Voronoi labels HxW (int32) of one seed point per grid cell, each moved up to `jitter`
    of a cell: irregular, evenly sized cells (tiles, tesserae).

    The nearest seed is always in the pixel's own cell or one of its eight neighbours, so nine
    vectorised distance checks replace a k-d tree.
    """
    rows, columns = int(np.ceil(height / spacing)) + 2, int(np.ceil(width / spacing)) + 2
    offsets = rng.uniform(0.5 - jitter / 2, 0.5 + jitter / 2, (rows, columns, 2)).astype(np.float32)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cell_y, cell_x = (y // spacing).astype(np.int32) + 1, (x // spacing).astype(np.int32) + 1
    best = np.full((height, width), np.inf, dtype=np.float32)
    labels = np.zeros((height, width), dtype=np.int32)
    for step_y in (-1, 0, 1):
        for step_x in (-1, 0, 1):
            row, column = cell_y + step_y, cell_x + step_x
            seed_y = (row - 1 + offsets[row, column, 0]) * spacing
            seed_x = (column - 1 + offsets[row, column, 1]) * spacing
            distance = (y - seed_y) ** 2 + (x - seed_x) ** 2
            closer = distance < best
            best[closer] = distance[closer]
            labels[closer] = (row * columns + column)[closer]
    return np.unique(labels, return_inverse=True)[1].reshape(height, width).astype(np.int32)


def label_means(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(count, channels) mean colour of each label of `labels` (0..count-1) over `image`."""
    flat = labels.ravel()
    count = int(flat.max()) + 1
    sizes = np.maximum(np.bincount(flat, minlength=count), 1)
    channels = image.reshape(len(flat), -1)
    return np.stack([np.bincount(flat, channels[:, c], minlength=count) / sizes
                     for c in range(channels.shape[1])], axis=1).astype(np.float32)


def remap(image: np.ndarray, source_x: np.ndarray, source_y: np.ndarray,
          border: int = cv2.BORDER_REFLECT) -> np.ndarray:
    """Each output pixel read from (source_x, source_y) of `image`, bilinear."""
    return cv2.remap(image, source_x.astype(np.float32), source_y.astype(np.float32),
                     cv2.INTER_LINEAR, borderMode=border)


def relief_lighting(height_field: np.ndarray, relief: float,
                    light: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(diffuse, specular reflection term) of a height field lit from unit vector `light`:
    how sculpted and moulded surfaces (bronze, clay) catch a lamp."""
    normal_x = -cv2.Sobel(height_field, cv2.CV_32F, 1, 0, ksize=3) * relief
    normal_y = -cv2.Sobel(height_field, cv2.CV_32F, 0, 1, ksize=3) * relief
    norm = np.sqrt(normal_x**2 + normal_y**2 + 1.0)
    facing = (normal_x * light[0] + normal_y * light[1] + light[2]) / norm
    reflect_z = 2.0 * facing / norm - light[2]
    return np.clip(facing, 0.0, 1.0), np.clip(reflect_z, 0.0, 1.0)

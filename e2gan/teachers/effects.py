"""The built-in concepts as pure functions: `(rgb uint8 HxWx3, look, rng) -> uint8 HxWx3`.

Each is classical image processing (OpenCV, scikit-image) that keeps the picture's structure and
reads as its concept at a glance. Two numpy Generators feed it. `look` makes the choices that
define the look (inks, palettes, tints, strengths, angles, periods, sizes): it is seeded per
concept and look seed, so every pair of a dataset shows one look. `rng` makes the per-image detail
(grain, noise fields, scattered flakes and specks, the jitter of single strokes or dots): it is
seeded per image, so pairs differ in it as photos of one print differ in grain. Pairs that
disagreed on the look would teach a GAN trained with L1 their average (a pink tint instead of two
inks). The test: if a draw differed between two photos, would a viewer call them two looks?
All take well under 100 ms on a 256x256 image on one CPU core.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.segmentation import find_boundaries, slic

from e2gan.teachers.image_ops import (
    as_float,
    as_uint8,
    blur,
    flatten,
    gradient_magnitude,
    gray_to_rgb,
    ink_lines,
    luminance,
    noise,
    odd_size,
    posterize,
    saturate,
    size_scale,
    sky_mask,
    smoothstep,
    vignette,
)


def pencil_sketch(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # Colour dodge of the gray image by its blurred negative: flat areas go paper-white and edges
    # become graphite strokes, the classic photo-to-sketch trick.
    scale = size_scale(rgb)
    gray = luminance(as_float(rgb))
    blurred = blur(gray, look.uniform(4.0, 7.0) * scale)
    dodge = np.clip(gray / np.maximum(blurred, 1e-3), 0.0, 1.0)
    strokes = dodge ** look.uniform(2.0, 2.8)
    # Light diagonal hatching in darker regions, from noise smeared along one direction.
    length = odd_size(9 * scale, 3)
    kernel = np.eye(length, dtype=np.float32)[:, ::-1] / length
    hatching = cv2.filter2D(noise(rng, gray.shape), -1, kernel)
    shade = 1.0 - blur(gray, 3.0 * scale)
    paper = strokes - 0.22 * shade * np.clip(hatching * 1.5 + 0.6, 0.0, 1.0)
    paper += 0.015 * noise(rng, gray.shape)
    tint = np.array([1.0, 0.985, 0.955], dtype=np.float32)
    return as_uint8(gray_to_rgb(np.clip(paper, 0.0, 1.0)) * tint)


def watercolor(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    scale = size_scale(rgb)
    image = as_float(rgb)
    height, width = image.shape[:2]
    # Flatten detail into washes: edge-preserving smoothing, then a median to round off shapes.
    washes = flatten(image, scale, passes=2)
    washes = cv2.medianBlur(as_uint8(washes), odd_size(5 * scale, 3)).astype(np.float32) / 255.0
    # Work in pigment density (0 = bare paper) so texture darkens paint but never white paper.
    # Watercolour is thinner than paint: less density and a little more saturation.
    density = (1.0 - np.clip(saturate(washes, look.uniform(1.15, 1.35)), 0.0, 1.0)) * look.uniform(0.68, 0.8)
    # Granulation (uneven pigment) and darker rims where a wash dried at its edge.
    granulation = 1.0 + 0.07 * noise(rng, (height, width), sigma=2.0 * scale)[..., None]
    rims = gradient_magnitude(blur(luminance(washes), 1.0 * scale))
    rims = 0.6 * smoothstep(rims, 0.04, 0.35)[..., None]
    paper_grain = 0.025 * blur(noise(rng, (height, width)), 0.7)[..., None]
    out = 1.0 - density * granulation * (1.0 + rims) - paper_grain
    # Colour bleeds a little past its edges.
    return as_uint8(blur(out, 0.7 * scale))


def cartoon(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    scale = size_scale(rgb)
    image = as_float(rgb)
    flat = flatten(image, scale, passes=3)
    # A few flat colours with a comic-book punch.
    flat = posterize(saturate(flat, look.uniform(1.3, 1.6)), 15.0, 4, int(look.integers(5, 8)))
    flat = 0.08 + 0.92 * flat
    lines = ink_lines(luminance(image), scale, offset=look.uniform(3.0, 5.0))
    return as_uint8(flat * lines[..., None])


def old_photo(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    scale = size_scale(rgb)
    image = as_float(rgb)
    height, width = image.shape[:2]
    gray = blur(luminance(image), 0.8 * scale)
    # Stretched first so dim photos do not turn to mud, then faded, sepia toned with a trace of
    # the original colour left in.
    low, high = np.percentile(gray, [1, 99])
    gray = 0.12 + 0.8 * np.clip((gray - low) / max(high - low, 1e-3), 0.0, 1.0) ** 0.8
    sepia = np.array([1.08, 0.86, 0.62], dtype=np.float32) * look.uniform(0.96, 1.04, 3).astype(np.float32)
    toned = gray_to_rgb(gray) * sepia
    toned = 0.88 * toned + 0.12 * image
    toned *= vignette(height, width, look.uniform(0.35, 0.55))
    toned += 0.045 * noise(rng, (height, width))[..., None]
    # Vertical scratches and dust specks: per-image detail, placed by the image's seed.
    marks = np.zeros((height, width), dtype=np.float32)
    for _ in range(int(rng.integers(2, 6))):
        x = int(rng.integers(0, width))
        top, bottom = sorted(rng.integers(0, height, 2).tolist())
        cv2.line(marks, (x, top), (x + int(rng.integers(-3, 4)), bottom), 0.3, 1)
    for _ in range(int(rng.integers(8, 20) * max(scale, 0.2) ** 2) + 1):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(marks, centre, max(1, int(rng.uniform(0.5, 1.8) * scale)), -0.5, -1)
    toned += blur(marks, 0.5)[..., None]
    return as_uint8(toned)


def black_and_white(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    image = as_float(rgb)
    # A film-like channel mix (jittered per look, like a coloured filter), an S-curve, fine grain.
    weights = np.array([0.3, 0.59, 0.11], dtype=np.float32) + look.uniform(-0.06, 0.06, 3).astype(np.float32)
    gray = image @ (weights / weights.sum())
    low, high = np.percentile(gray, [1, 99])
    gray = np.clip((gray - low) / max(high - low, 1e-3), 0.0, 1.0)
    contrast = look.uniform(0.6, 0.9)
    gray = gray + contrast * (gray - 0.5) * (1.0 - np.abs(2.0 * gray - 1.0))  # S-curve
    gray += 0.03 * noise(rng, gray.shape)
    return as_uint8(gray_to_rgb(gray))


def low_quality_photo(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    height, width = rgb.shape[:2]
    # A small, noisy, heavily compressed phone snapshot blown back up to size.
    factor = look.uniform(2.2, 3.0)
    small_size = (max(4, int(width / factor)), max(4, int(height / factor)))
    small = cv2.resize(as_float(rgb), small_size, interpolation=cv2.INTER_AREA)
    # The phone's colour cast is part of the look; its sensor noise is per image.
    small = small * look.uniform(0.95, 1.08, 3).astype(np.float32) + 0.03 * noise(rng, small.shape)
    quality = int(look.integers(12, 22))
    ok, encoded = cv2.imencode(".jpg", as_uint8(small)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    small = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]
    big = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    ok, encoded = cv2.imencode(".jpg", big[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality + 6])
    return np.ascontiguousarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1])


_POP_ART_PALETTES = [
    [(0.08, 0.05, 0.2), (0.93, 0.1, 0.45), (0.1, 0.75, 0.9), (1.0, 0.92, 0.15)],
    [(0.1, 0.1, 0.45), (0.95, 0.35, 0.05), (0.35, 0.85, 0.3), (1.0, 0.85, 0.8)],
    [(0.3, 0.0, 0.35), (0.1, 0.45, 0.95), (1.0, 0.4, 0.65), (0.95, 1.0, 0.3)],
    [(0.05, 0.2, 0.15), (0.95, 0.15, 0.15), (1.0, 0.75, 0.1), (0.55, 0.9, 1.0)],
]


def pop_art(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # Warhol-style screen print: four flat tones in loud colours, black outlines, halftone dots.
    scale = size_scale(rgb)
    image = as_float(rgb)
    gray = luminance(flatten(image, scale, passes=2))
    # Tone thresholds from this image's own quartiles, so every tone is used.
    thresholds = np.percentile(gray, np.array([25.0, 50.0, 75.0]) + look.uniform(-6.0, 6.0, 3))
    tone = np.digitize(gray, np.sort(thresholds))
    palette = np.array(_POP_ART_PALETTES[int(look.integers(len(_POP_ART_PALETTES)))], dtype=np.float32)
    palette = np.clip(palette + look.uniform(-0.06, 0.06, palette.shape).astype(np.float32), 0.0, 1.0)
    out = palette[tone]
    height, width = gray.shape
    period = max(3.0, 6.0 * scale)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y += rng.uniform(0.0, period)  # where the dot grid falls: per image, the screen is the same
    cell_y = (y % period) - period / 2
    cell_x = ((x + (y // period) % 2 * period / 2) % period) - period / 2
    dots = (cell_x**2 + cell_y**2) < (0.3 * period) ** 2
    out[(tone == 2) & dots] *= 0.75
    lines = ink_lines(luminance(image), scale, offset=look.uniform(4.0, 6.0))
    return as_uint8(out * lines[..., None])


def autumn_foliage(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    scale = size_scale(rgb)
    image = as_float(rgb)
    height, width = image.shape[:2]
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)  # float input: H in degrees, S and V in [0, 1]
    hue, saturation, value = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    # Greens and yellow-greens become reds, oranges and golds; how red varies in leafy blotches.
    leafy_hue = smoothstep(hue, 40.0, 65.0) * (1.0 - smoothstep(hue, 150.0, 180.0))
    greenness = leafy_hue * smoothstep(saturation, 0.08, 0.25)
    blotches = noise(rng, (height, width), sigma=5 * scale)
    target_hue = np.clip(look.uniform(18.0, 28.0) + 14.0 * blotches, 0.0, 45.0)
    hsv[..., 0] = hue * (1.0 - greenness) + target_hue * greenness
    # Foliage greens are often dull; dull orange reads as brown, so leaves get strong colour.
    vivid = np.clip(np.maximum(saturation * 1.8, 0.75), 0.0, 1.0)
    hsv[..., 1] = saturation * (1.0 - greenness) + vivid * greenness
    hsv[..., 2] = np.clip(value * (1.0 + 0.35 * greenness), 0.0, 1.0)
    out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    # Low warm autumn sun over everything, including scenes with no leaves.
    out = out * np.array([1.08, 0.98, 0.82], dtype=np.float32) * look.uniform(0.97, 1.03)
    return as_uint8(saturate(out, 1.1))


def winter(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    scale = size_scale(rgb)
    image = as_float(rgb)
    height, width = image.shape[:2]
    # Cold light: desaturated, bluish, brighter.
    cold = saturate(image, 0.55) * np.array([0.88, 0.96, 1.1], dtype=np.float32) + 0.06
    # Snow settles on bright, smooth areas and on the tops of edges (upward-facing surfaces).
    gray = luminance(image)
    smooth_gray = blur(gray, 2.0 * scale)
    texture = blur(np.abs(gray - smooth_gray), 3.0 * scale)
    tops = np.clip(-cv2.Sobel(smooth_gray, cv2.CV_32F, 0, 1, ksize=3) * 4.0, 0.0, 1.0)
    patchiness = 0.08 * noise(rng, (height, width), sigma=8 * scale)
    cover = smoothstep(0.8 * smooth_gray + 0.8 * tops - 2.0 * texture + patchiness, 0.45, 0.7)
    cover *= look.uniform(0.75, 0.95)
    # Frost creeping in from the frame's edges.
    frost = np.clip(1.0 - vignette(height, width, 1.0)[..., 0] - 0.55, 0.0, 1.0) * 2.0
    frost *= 0.7 + 0.3 * blur(noise(rng, (height, width)), 1.0 * max(scale, 0.5))
    cover = np.maximum(cover, np.clip(frost, 0.0, 1.0))
    snow = np.array([0.95, 0.97, 1.0], dtype=np.float32)
    out = cold * (1.0 - cover[..., None]) + snow * cover[..., None]
    # Falling flakes, slightly soft: how hard it snows is the look, where the flakes fall is not.
    flakes = np.zeros((height, width), dtype=np.float32)
    count = int(height * width / 300 * look.uniform(0.7, 1.3))
    xs = rng.integers(0, width, count)
    ys = rng.integers(0, height, count)
    radii = np.maximum(1, (rng.uniform(0.3, 1.6, count) * max(scale, 0.5)).round()).astype(int)
    for x, y, radius in zip(xs.tolist(), ys.tolist(), radii.tolist()):
        cv2.circle(flakes, (x, y), radius, 1.0, -1)
    flakes = blur(flakes, 0.6 * max(scale, 0.5))[..., None]
    out = out * (1.0 - 0.85 * flakes) + 0.85 * flakes
    return as_uint8(out)


def night(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    scale = size_scale(rgb)
    image = as_float(rgb)
    height, width = image.shape[:2]
    # Moonlit grade: much darker (gamma), desaturated, blue; the eye loses colour at night.
    dark = saturate(image, 0.45) ** look.uniform(1.5, 1.9) * look.uniform(0.38, 0.48)
    dark *= np.array([0.55, 0.72, 1.15], dtype=np.float32)
    # Sky becomes deep navy with stars.
    sky = sky_mask(image, scale)[..., None]
    gradient = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    zenith, horizon = np.array([0.01, 0.02, 0.08], np.float32), np.array([0.04, 0.07, 0.2], np.float32)
    sky_colour = zenith + gradient * (horizon - zenith)
    out = dark * (1.0 - sky) + sky_colour * sky
    stars = (rng.random((height, width), dtype=np.float32) > 0.997).astype(np.float32)
    out += 0.8 * blur(stars, 0.5)[..., None] * sky
    out *= vignette(height, width, 0.5)
    out += 0.012 * noise(rng, (height, width))[..., None]
    return as_uint8(out)


def _kuwahara(image: np.ndarray, radius: int) -> np.ndarray:
    """Kuwahara filter: each pixel takes the mean of its least varied quadrant (paint daubs)."""
    size = radius + 1
    gray = luminance(image)
    means, variances = [], []
    for anchor in [(0, 0), (radius, 0), (0, radius), (radius, radius)]:
        box = dict(ksize=(size, size), anchor=anchor, borderType=cv2.BORDER_REFLECT)
        means.append(cv2.boxFilter(image, -1, **box))
        mean_gray = cv2.boxFilter(gray, -1, **box)
        variances.append(cv2.boxFilter(gray * gray, -1, **box) - mean_gray * mean_gray)
    best = np.argmin(np.stack(variances), axis=0)
    stacked = np.stack(means)
    return np.take_along_axis(stacked, best[None, ..., None].repeat(3, axis=3), axis=0)[0]


def oil_painting(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    scale = size_scale(rgb)
    image = as_float(rgb)
    height, width = image.shape[:2]
    paint = _kuwahara(image, max(2, int(round(look.uniform(3.0, 4.5) * scale))))
    paint = saturate(paint, look.uniform(1.25, 1.45))
    # Brush strokes: noise smeared along one stroke direction, then lit like raised paint.
    length = odd_size(11 * scale, 3)
    angle = look.uniform(0.0, 180.0)  # one brush direction for the look; the daubs are per image
    kernel = np.zeros((length, length), dtype=np.float32)
    kernel[length // 2, :] = 1.0 / length
    rotation = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    kernel /= kernel.sum() + 1e-6
    strokes = cv2.filter2D(noise(rng, (height, width)), -1, kernel)
    relief = cv2.Sobel(strokes, cv2.CV_32F, 1, 1, ksize=3)
    canvas = 1.0 + 0.09 * np.clip(relief, -2.0, 2.0)[..., None]
    return as_uint8(paint * canvas * 1.03)


def stained_glass(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    image = as_float(rgb)
    height, width = image.shape[:2]
    # Segment at most 192 pixels wide: SLIC cost grows with area and the panes are big anyway.
    shrink = min(1.0, 192.0 / max(height, width))
    small = image
    if shrink < 1:
        small_size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
        small = cv2.resize(image, small_size, interpolation=cv2.INTER_AREA)
    segments = int(look.integers(70, 110))  # pane size
    labels = slic(small, n_segments=segments, compactness=12.0, start_label=0, channel_axis=-1)
    if shrink < 1:
        labels = cv2.resize(labels.astype(np.int32), (width, height), interpolation=cv2.INTER_NEAREST)
    count = labels.max() + 1
    flat_labels = labels.ravel()
    pixel_counts = np.maximum(np.bincount(flat_labels, minlength=count), 1)
    means = np.stack(
        [np.bincount(flat_labels, image[..., c].ravel(), minlength=count) / pixel_counts for c in range(3)],
        axis=1,
    ).astype(np.float32)
    # Glass glows: each pane saturated and lit, a little lighter or darker than its neighbours
    # (which panes are lighter is per-image detail).
    means = np.clip(saturate(means, 1.8), 0.0, 1.0)
    means *= rng.uniform(0.9, 1.2, (count, 1)).astype(np.float32)
    panes = means[labels]
    panes *= 1.0 + 0.08 * noise(rng, (height, width), sigma=2.0 * size_scale(rgb))[..., None]
    # Lead cames between the panes.
    leading = find_boundaries(labels, mode="thick")
    thickness = max(1, int(round(1.5 * size_scale(rgb))))
    leading = cv2.dilate(leading.astype(np.uint8), np.ones((thickness, thickness), np.uint8)) > 0
    panes[leading] = (0.07, 0.07, 0.08)
    return as_uint8(panes)


def thermal_camera(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    image = as_float(rgb)
    height, width = image.shape[:2]
    # "Heat" from brightness plus warm colour (skin, fur and lit surfaces read hot), at the
    # low resolution of a microbolometer sensor, stretched to the palette's full range.
    # The sky is the coldest thing in an outdoor thermal image, however bright it looks.
    warmth = np.clip(image[..., 0] - image[..., 2], 0.0, 1.0)
    heat = 0.65 * luminance(image) + 0.35 * warmth - 0.8 * sky_mask(image, size_scale(rgb))
    small = cv2.resize(heat, (max(4, width // 3), max(4, height // 3)), interpolation=cv2.INTER_AREA)
    heat = cv2.resize(blur(small, 0.8), (width, height), interpolation=cv2.INTER_LINEAR)
    low, high = np.percentile(heat, [2, 99.5])
    heat = (heat - low) / max(high - low, 1e-3)
    heat = heat * look.uniform(0.92, 1.05) + 0.015 * noise(rng, heat.shape)
    coloured = cv2.applyColorMap(as_uint8(heat), cv2.COLORMAP_INFERNO)
    return np.ascontiguousarray(coloured[..., ::-1])


def silver_sculpture(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    scale = size_scale(rgb)
    image = as_float(rgb)
    # Treat smoothed brightness as a height field, light it as polished metal: a banded
    # environment reflection, diffuse shading and a sharp specular highlight.
    smooth = flatten(image, scale, passes=2)
    height_field = blur(luminance(smooth), 1.5 * scale)
    relief = look.uniform(5.0, 7.0) / max(scale, 0.25)
    normal_x = -cv2.Sobel(height_field, cv2.CV_32F, 1, 0, ksize=3) * relief
    normal_y = -cv2.Sobel(height_field, cv2.CV_32F, 0, 1, ksize=3) * relief
    norm = np.sqrt(normal_x**2 + normal_y**2 + 1.0)
    normals = np.stack([normal_x, normal_y, np.ones_like(normal_x)], axis=-1) / norm[..., None]
    light = np.array([-0.5, -0.6, 0.62], dtype=np.float32) + look.uniform(-0.1, 0.1, 3).astype(np.float32)
    light /= np.linalg.norm(light)
    diffuse = np.clip(normals @ light, 0.0, 1.0)
    reflect_z = 2.0 * (normals @ light) * normals[..., 2] - light[2]
    specular = np.clip(reflect_z, 0.0, 1.0) ** 24
    band_phase = look.uniform(0, 1)  # where the reflected bands fall on the tones
    environment = 0.5 + 0.5 * np.sin(np.pi * (2.2 * height_field + 0.8 * normal_y / norm + band_phase))
    value = 0.3 * environment + 0.45 * diffuse * (0.5 + 0.6 * height_field) + 0.55 * specular
    # Polished metal is contrasty: stretch to near-black shadows and near-white glints.
    low, high = np.percentile(value, [1, 99.5])
    value = 0.06 + 0.92 * (value - low) / max(high - low, 1e-3)
    return as_uint8(gray_to_rgb(value) * np.array([0.9, 0.94, 1.0], dtype=np.float32))


def pixel_art(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    height, width = rgb.shape[:2]
    # A retro game sprite: ~48 big pixels on the short side, a small palette, hard edges.
    blocks = int(look.integers(40, 56))
    factor = max(1.0, min(height, width) / blocks)
    small_size = (max(1, round(width / factor)), max(1, round(height / factor)))
    small = cv2.resize(as_float(rgb), small_size, interpolation=cv2.INTER_AREA)
    small = posterize(saturate(small, look.uniform(1.2, 1.4)), 20.0, 4, 6)
    return cv2.resize(as_uint8(small), (width, height), interpolation=cv2.INTER_NEAREST)


def neon_glow(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    scale = size_scale(rgb)
    image = as_float(rgb)
    # Edges become glowing tubes in the object's own hue at full saturation, on a dark scene.
    gray = blur(luminance(image), 1.2 * scale)
    edges = gradient_magnitude(gray)
    edges = smoothstep(edges / (np.percentile(edges, 99) + 1e-6), 0.25, 0.7)
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + look.uniform(-30.0, 30.0)) % 360.0
    hsv[..., 1] = 1.0
    hsv[..., 2] = 1.0
    tube_colour = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    tubes = tube_colour * edges[..., None]
    glow = blur(tubes, 3.0 * scale) * 1.6 + blur(tubes, 9.0 * scale) * 1.2
    core = gray_to_rgb(edges) * 0.6
    out = 0.12 * image + tubes + glow + core * edges[..., None]
    return as_uint8(out)


def golden_hour(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    scale = size_scale(rgb)
    image = as_float(rgb)
    height, width = image.shape[:2]
    # Low sun from one upper corner: warm grade, orange-lifted shadows, a flare and bloom.
    warm = image * np.array([1.18, 0.98, 0.68], np.float32) + np.array([0.06, 0.02, 0.0], np.float32)
    sun_x = width * (0.1 if look.random() < 0.5 else 0.9)  # the sun's corner is the look's
    sun_y = height * look.uniform(0.0, 0.2)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    distance = np.sqrt((x - sun_x) ** 2 + (y - sun_y) ** 2) / max(height, width)
    flare = np.exp(-((distance / 0.45) ** 2))[..., None] * np.array([0.5, 0.3, 0.08], dtype=np.float32)
    bright = np.clip(luminance(warm) - 0.65, 0.0, 1.0)[..., None] * warm
    bloom = blur(bright, 6.0 * scale) * 0.8
    out = saturate(warm, look.uniform(1.15, 1.3)) + flare * look.uniform(0.8, 1.1) + bloom
    return as_uint8(out)


def blueprint(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    scale = size_scale(rgb)
    gray = blur(luminance(as_float(rgb)), 1.0 * scale)
    height, width = gray.shape
    # White technical lines on cyanotype blue over a faint drafting grid.
    edges = gradient_magnitude(gray)
    lines = smoothstep(edges / (np.percentile(edges, 98) + 1e-6), 0.15, 0.6)
    spacing = max(4, int(round(16 * scale)))
    y, x = np.mgrid[0:height, 0:width]
    grid = ((x % spacing == 0) | (y % spacing == 0)).astype(np.float32) * 0.18
    paper = np.array([0.07, 0.24, 0.52], dtype=np.float32) * look.uniform(0.92, 1.08)
    paper = paper * (1.0 + 0.04 * noise(rng, (height, width), sigma=3.0 * scale))[..., None]
    ink = np.maximum(lines, grid)[..., None]
    white = np.array([0.92, 0.96, 1.0], dtype=np.float32)
    return as_uint8(paper * (1.0 - ink) + white * ink)

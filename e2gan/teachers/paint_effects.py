"""Built-in concepts made of marks and materials: drawing and painting strokes, tiles, thread, glass.

Same contract as `e2gan.teachers.effects`: `(rgb uint8 HxWx3, look, rng) -> uint8 HxWx3`, the
picture's structure kept. Stroke direction, mark size and colour are the look's (`look`); where
each dot, dab, tile or streak falls is per image (`rng`). Well under 100 ms at 256 px.
"""

from __future__ import annotations

import cv2
import numpy as np

from e2gan.teachers.image_ops import (
    as_float,
    as_uint8,
    blur,
    flatten,
    gradient_magnitude,
    gray_to_rgb,
    ink_lines,
    jittered_cells,
    label_means,
    luminance,
    noise,
    odd_size,
    posterize,
    remap,
    saturate,
    size_scale,
    smoothstep,
)


def _smeared_noise(rng: np.random.Generator, shape: tuple[int, int], length: int,
                   angle: float) -> np.ndarray:
    """Noise smeared along one direction: the streaks a stick of charcoal or crayon leaves."""
    kernel = np.zeros((length, length), dtype=np.float32)
    kernel[length // 2, :] = 1.0
    rotation = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    streaks = cv2.filter2D(noise(rng, shape), -1, kernel / (kernel.sum() + 1e-6))
    return streaks / (streaks.std() + 1e-6)


def charcoal(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # Soft vine charcoal on textured gray paper: broad smudged shading, heavy dark contours, and
    # the paper's tooth showing through wherever the stick skipped over it.
    scale = size_scale(rgb)
    gray = luminance(as_float(rgb))
    height, width = gray.shape
    low, high = np.percentile(gray, [2, 98])
    tone = np.clip((blur(gray, 1.8 * scale) - low) / max(high - low, 1e-3), 0.0, 1.0)
    shading = (1.0 - tone) ** 1.3
    edges = gradient_magnitude(blur(gray, 1.0 * scale))
    contours = smoothstep(edges / (np.percentile(edges, 97) + 1e-6), 0.2, 0.8)
    contours = blur(contours, 0.8 * scale)
    streaks = _smeared_noise(rng, (height, width), odd_size(13 * scale), look.uniform(30.0, 60.0))
    tooth = blur(noise(rng, (height, width)), 0.6)
    darkness = np.clip(0.85 * shading + 0.9 * contours + 0.12 * streaks * shading, 0.0, 1.0)
    # Charcoal sits on the raised grain first: light strokes are broken, dark ones solid.
    darkness *= smoothstep(darkness * 1.6 - 0.25 * tooth, 0.1, 0.9)
    paper = look.uniform(0.86, 0.92) + 0.02 * tooth
    return as_uint8(gray_to_rgb(paper * (1.0 - 0.9 * darkness)) * np.array([1.0, 0.99, 0.97], np.float32))


def ink_wash(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # Sumi-e: a few flat washes of diluted ink that bleed into the rice paper, bold brush lines,
    # and a lot of untouched paper.
    scale = size_scale(rgb)
    image = as_float(rgb)
    height, width = image.shape[:2]
    gray = luminance(flatten(image, scale, passes=2))
    low, high = np.percentile(gray, [2, 98])
    gray = np.clip((gray - low) / max(high - low, 1e-3), 0.0, 1.0)
    washes = np.floor((1.0 - gray) * 3.99) / 3.0  # four dilutions, from bare paper to black
    washes = washes ** look.uniform(1.3, 1.7)
    washes = blur(washes, 1.2 * scale) * (1.0 + 0.12 * noise(rng, (height, width), sigma=2.0 * scale))
    # Brush lines only at strong outlines; a median removes the specks thresholding leaves in
    # texture, which a brush would never paint.
    lines = ink_lines(luminance(flatten(image, scale, passes=1)), scale, offset=look.uniform(8.0, 10.0))
    lines = cv2.medianBlur(as_uint8(lines), odd_size(3 * scale, 3)).astype(np.float32) / 255.0
    lines = blur(lines, 0.7 * scale)
    fibres = _smeared_noise(rng, (height, width), odd_size(9 * scale), look.uniform(0.0, 180.0))
    paper = np.array([0.95, 0.92, 0.84], np.float32) * (1.0 + 0.012 * fibres)[..., None]
    ink = np.array([0.08, 0.08, 0.09], np.float32)
    density = np.clip(0.85 * washes + (1.0 - lines), 0.0, 1.0)[..., None]
    return as_uint8(paper + density * (ink - paper))


def _dot_layer(image: np.ndarray, spacing: float, offset: float, radius: float,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(colour, coverage) of one layer of round dabs on a jittered grid, each dab one colour."""
    height, width = image.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    row, column = ((y + offset) // spacing).astype(np.int32), ((x + offset) // spacing).astype(np.int32)
    rows, columns = int(row.max()) + 1, int(column.max()) + 1
    jitter = rng.uniform(-0.2, 0.2, (rows, columns, 2)).astype(np.float32) * spacing
    centre_y = (row + 0.5) * spacing - offset + jitter[row, column, 0]
    centre_x = (column + 0.5) * spacing - offset + jitter[row, column, 1]
    # Each dab takes the colour under its centre, with its own small shift of value and hue.
    sample_y = np.clip(centre_y, 0, height - 1).astype(np.int32)
    sample_x = np.clip(centre_x, 0, width - 1).astype(np.int32)
    shift = rng.uniform(-0.1, 0.1, (rows, columns, 3)).astype(np.float32)
    colour = image[sample_y, sample_x] + shift[row, column]
    distance = np.sqrt((y - centre_y) ** 2 + (x - centre_x) ** 2)
    return colour, np.clip(radius - distance + 0.5, 0.0, 1.0)


def pointillism(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # Seurat's dots: pure, bright dabs of colour side by side on a pale ground, mixed by the eye.
    scale = size_scale(rgb)
    image = np.clip(saturate(blur(as_float(rgb), 0.8 * scale), look.uniform(1.6, 1.9)), 0.0, 1.0)
    spacing = max(3.0, 5.0 * scale)
    ground = 0.45 * image + 0.55 * np.array([0.96, 0.94, 0.88], np.float32)
    out = ground
    for offset in (0.0, spacing / 2):  # two offset layers so the dots almost cover the ground
        # Each dot's jitter and colour shift is per-image detail.
        colour, coverage = _dot_layer(image, spacing, offset, 0.42 * spacing, rng)
        out = out * (1.0 - coverage[..., None]) + colour * coverage[..., None]
    return as_uint8(out)


def crayon(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # Wax crayon on rough paper: bright simplified colours laid in diagonal strokes, white paper
    # grain showing through the lighter pressure, and waxy outlines.
    scale = size_scale(rgb)
    image = as_float(rgb)
    height, width = image.shape[:2]
    flat = posterize(saturate(flatten(image, scale, passes=2), 1.5), 20.0, 4, 6)
    strokes = _smeared_noise(rng, (height, width), odd_size(11 * scale), look.uniform(35.0, 55.0))
    tooth = blur(noise(rng, (height, width)), 0.7)
    pressure = 0.55 + 0.45 * (1.0 - luminance(flat)) + 0.12 * strokes
    coverage = smoothstep(pressure - 0.35 * tooth, 0.45, 0.75)[..., None]
    paper = np.array([0.98, 0.97, 0.94], np.float32)
    out = paper + coverage * (np.clip(flat * 1.05, 0.0, 1.0) - paper)
    lines = blur(ink_lines(luminance(image), scale, offset=look.uniform(4.0, 6.0)), 0.7 * scale)
    return as_uint8(out * (0.35 + 0.65 * lines[..., None]))


def impressionist(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # Monet-style broken colour: short, thick dabs of paint laid across the form (perpendicular
    # to the local gradient), in random order, over a loose blurred underpainting.
    scale = size_scale(rgb)
    image = np.clip(saturate(as_float(rgb), look.uniform(1.3, 1.5)), 0.0, 1.0)
    height, width = image.shape[:2]
    underpainting = blur(image, 3.0 * scale)
    source = blur(image, 1.0 * scale)
    smooth_gray = blur(luminance(image), 2.5 * scale)
    gradient_x = cv2.Sobel(smooth_gray, cv2.CV_32F, 1, 0, ksize=3)
    gradient_y = cv2.Sobel(smooth_gray, cv2.CV_32F, 0, 1, ksize=3)
    spacing = max(2.5, 5.0 * scale)
    count = int(height * width / spacing**2)
    # Every dab's place, tilt, length and colour are per-image detail (arrays sized by the image).
    ys = rng.uniform(0, height, count).astype(np.float32)
    xs = rng.uniform(0, width, count).astype(np.float32)
    iy, ix = ys.astype(np.int32), xs.astype(np.int32)
    angle = np.arctan2(gradient_y[iy, ix], gradient_x[iy, ix]) + np.pi / 2 + rng.normal(0, 0.3, count)
    half_length = rng.uniform(4.0, 7.0, count) * scale + 0.5
    colours = source[iy, ix] * rng.uniform(0.9, 1.1, (count, 1)).astype(np.float32)
    ends = np.stack([xs - np.cos(angle) * half_length, ys - np.sin(angle) * half_length,
                     xs + np.cos(angle) * half_length, ys + np.sin(angle) * half_length], axis=1)
    ends = np.round(ends).astype(np.int32).tolist()
    thickness = max(2, int(round(3.5 * scale)))
    canvas = np.ascontiguousarray(underpainting)
    for (x0, y0, x1, y1), colour in zip(ends, colours.tolist()):
        cv2.line(canvas, (x0, y0), (x1, y1), colour, thickness, cv2.LINE_AA)
    return as_uint8(canvas)


def mosaic_tiles(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # A Roman floor mosaic: small irregular stone tesserae, each one flat colour, set in pale
    # grout, their edges slightly bevelled.
    scale = size_scale(rgb)
    image = as_float(rgb)
    height, width = image.shape[:2]
    # The tile size is the look's; each tessera's shape and shade are per image.
    labels = jittered_cells(height, width, max(4.0, look.uniform(10.0, 12.0) * scale), rng)
    colours = np.clip(saturate(label_means(image, labels), 1.25), 0.0, 1.0)
    colours *= rng.uniform(0.88, 1.08, (len(colours), 1)).astype(np.float32)
    tiles = colours[labels]
    # Grout one pixel wide (two on big images) where a tile meets its right or lower neighbour.
    grout_mask = np.zeros((height, width), dtype=np.uint8)
    grout_mask[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    grout_mask[:-1, :] |= labels[:-1, :] != labels[1:, :]
    if scale >= 1.5:
        grout_mask = cv2.dilate(grout_mask, np.ones((2, 2), np.uint8))
    bevel = np.clip(cv2.distanceTransform(1 - grout_mask, cv2.DIST_L2, 3) / max(1.5, 3.0 * scale), 0.0, 1.0)
    tiles *= (0.8 + 0.2 * bevel)[..., None]
    tiles[grout_mask > 0] = np.array([0.78, 0.76, 0.7], np.float32)
    return as_uint8(tiles)


def cross_stitch(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # Embroidery on Aida cloth: one X of thread per square of the weave, each in a thread colour
    # from a small palette, the cloth and its holes showing between the stitches.
    scale = size_scale(rgb)
    image = as_float(rgb)
    height, width = image.shape[:2]
    cell = max(3, int(round(look.uniform(6.0, 7.0) * scale)))
    stitches = (max(1, width // cell + 1), max(1, height // cell + 1))
    small = cv2.resize(image, stitches, interpolation=cv2.INTER_AREA)
    small = posterize(saturate(small, 1.3), 24.0, 4, 6)
    y, x = np.mgrid[0:height, 0:width]
    thread_colour = small[y // cell, x // cell]
    u, v = (x % cell + 0.5) / cell, (y % cell + 0.5) / cell
    # Distance to either diagonal of the square; a thread is about two fifths of a square wide.
    diagonal = np.minimum(np.abs(u - v), np.abs(u + v - 1.0)) / np.sqrt(2.0)
    thread = smoothstep(0.2 - diagonal, -0.04, 0.04)
    sheen = 0.8 + 0.35 * (1.0 - diagonal / 0.2).clip(0.0, 1.0)  # rounded thread catches light
    corner = np.sqrt(np.minimum(u, 1 - u) ** 2 + np.minimum(v, 1 - v) ** 2)
    holes = 1.0 - smoothstep(corner, 0.08, 0.16)  # the weave's holes sit at the squares' corners
    cloth = np.array([0.93, 0.91, 0.84], np.float32) * (1.0 - 0.35 * holes)[..., None]
    out = cloth * (1.0 - thread[..., None]) + thread_colour * sheen[..., None] * thread[..., None]
    return as_uint8(out * (1.0 + 0.03 * noise(rng, (height, width)))[..., None])


def frosted_glass(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # Seen through frosted glass: every pixel scattered to a random nearby position, softened,
    # with the pale, cool sheen of the glass and its frost crystals on top.
    scale = size_scale(rgb)
    image = as_float(rgb)
    height, width = image.shape[:2]
    reach = look.uniform(3.0, 4.5) * max(scale, 0.35)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    scattered = remap(image, x + rng.uniform(-reach, reach, (height, width)),
                      y + rng.uniform(-reach, reach, (height, width)))
    scattered = blur(scattered, 0.8 * scale)
    crystals = blur(noise(rng, (height, width)), 0.9 * max(scale, 0.5))
    sheen = np.array([0.9, 0.95, 1.0], np.float32)
    out = 0.72 * scattered + 0.28 * sheen + 0.05 * crystals[..., None]
    return as_uint8(out)

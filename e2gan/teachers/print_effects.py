"""Built-in concepts that imitate printing processes: screens, inks, carved blocks, photo papers.

Same contract as `e2gan.teachers.effects`: `(rgb uint8 HxWx3, look, rng) -> uint8 HxWx3`, the
picture's structure kept. Inks, screens, line periods and angles come from `look` (one print run
per concept and look seed); grain, paper fibres and where a screen's dots fall from `rng` (per
image). Well under 100 ms at 256 px.
"""

from __future__ import annotations

import numpy as np

from e2gan.teachers.image_ops import (
    as_float,
    as_uint8,
    blur,
    halftone_screen,
    ink_lines,
    luminance,
    noise,
    saturate,
    size_scale,
    smoothstep,
    vignette,
)


def _tone(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """Gray in [0, 1], slightly smoothed and stretched to its own 1st-99th percentiles."""
    gray = blur(luminance(as_float(rgb)), sigma)
    low, high = np.percentile(gray, [1, 99])
    return np.clip((gray - low) / max(high - low, 1e-3), 0.0, 1.0)


def halftone_newspaper(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # A black-and-white newspaper photo: a coarse 45-degree dot screen, ink that spreads a little
    # into cheap, yellowed newsprint.
    scale = size_scale(rgb)
    gray = _tone(rgb, 0.5 * scale)
    height, width = gray.shape
    period = max(3.0, look.uniform(4.5, 5.5) * scale)
    # The screen's phase only moves the dots: per image.
    ink = halftone_screen((1.0 - gray) ** 0.9, period, 45.0, tuple(rng.uniform(0, 1, 2)))
    ink = blur(ink, 0.4 * scale)
    fibres = 1.0 + 0.025 * noise(rng, (height, width), 1.5 * scale)
    paper = np.array([0.91, 0.89, 0.82], np.float32) * fibres[..., None]
    black = np.array([0.13, 0.13, 0.14], np.float32)
    return as_uint8(paper + ink[..., None] * (black - paper))


_RISO_INKS = [
    ((1.0, 0.28, 0.55), (0.0, 0.47, 0.75)),  # fluorescent pink / medium blue
    ((1.0, 0.42, 0.0), (0.18, 0.2, 0.55)),  # orange / federal blue
    ((1.0, 0.28, 0.55), (0.0, 0.6, 0.45)),  # fluorescent pink / green
]


def risograph(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # A two-colour risograph print: the picture split into a warm and a cool ink layer, each a
    # grainy stencil, printed one after the other slightly out of register, inks overprinting.
    scale = size_scale(rgb)
    image = blur(as_float(rgb), 0.6 * scale)
    height, width = image.shape[:2]
    darkness = 1.0 - luminance(image)
    warmth = image[..., 0] - image[..., 2]
    densities = [np.clip(0.7 * darkness + 0.8 * warmth, 0.0, 1.0),
                 np.clip(1.1 * darkness**1.4 - 0.5 * warmth, 0.0, 1.0)]
    inks = _RISO_INKS[int(look.integers(len(_RISO_INKS)))]
    # How far off register the second drum prints is the print run's, so the look's too.
    shift = np.round(look.uniform(3.0, 5.0, 2) * max(scale, 0.4) * look.choice([-1, 1], 2)).astype(int)
    paper = np.array([0.96, 0.94, 0.89], np.float32)
    out = np.broadcast_to(paper, image.shape).copy()
    for layer, (density, ink) in enumerate(zip(densities, inks)):
        if layer == 1:  # the second pass lands a few pixels off the first
            density = np.roll(density, tuple(shift), axis=(0, 1))
        # The drum's stencil prints as grain, not clean dots: density against fine noise.
        grain = blur(noise(rng, (height, width)), 0.5)
        coverage = smoothstep(density * 1.1 - 0.2 * grain, 0.35, 0.75)
        # Inks are translucent and multiply where they overlap.
        out *= 1.0 - coverage[..., None] * (1.0 - np.array(ink, np.float32))
    return as_uint8(out)


def woodcut(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # A woodcut or linocut: solid black where the block was left standing, white where it was
    # cut away, and mid-tones carved into bold parallel gouge lines that wave with the form.
    scale = size_scale(rgb)
    gray = _tone(rgb, 2.0 * scale)
    height, width = gray.shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    period = max(3.0, look.uniform(7.0, 8.5) * scale)
    angle = np.deg2rad(look.uniform(-20.0, 20.0))
    across = -x * np.sin(angle) + y * np.cos(angle) + 8.0 * scale * blur(gray, 4.0 * scale)
    gouges = 0.5 + 0.5 * np.cos(2 * np.pi * across / period)
    edge_wobble = 0.06 * noise(rng, (height, width), sigma=0.8 * max(scale, 0.5))
    # The carver leaves a ridge standing along every strong contour, so light faces keep features.
    contours = ink_lines(luminance(as_float(rgb)), scale, offset=look.uniform(6.0, 8.0)) < 0.5
    ink = (gray < 0.28 + 0.45 * gouges + edge_wobble) | contours
    paper = np.array([0.95, 0.92, 0.85], np.float32)
    black = np.array([0.06, 0.05, 0.05], np.float32)
    return as_uint8(np.where(ink[..., None], black, paper))


def engraving(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # A steel engraving (banknote portraits, old book plates): fine parallel lines that thicken in
    # the shadows, bend with the form, and gain a second, crossing set in the darkest tones.
    scale = size_scale(rgb)
    gray = _tone(rgb, 0.8 * scale)
    height, width = gray.shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    period = max(2.5, look.uniform(3.2, 3.8) * scale)
    bend = 10.0 * scale * blur(gray, 3.0 * scale)
    angle = np.deg2rad(look.uniform(15.0, 35.0))
    first = -x * np.sin(angle) + y * np.cos(angle) + bend
    second = x * np.cos(angle) + y * np.sin(angle) - bend
    # Line width follows darkness: the ink is where the distance to the line's centre is small.
    lines = np.abs(np.mod(first / period, 1.0) - 0.5) * 2.0
    ink = smoothstep(0.9 * (1.0 - gray) - lines, -0.12, 0.12)
    cross = np.abs(np.mod(second / period, 1.0) - 0.5) * 2.0
    ink = np.maximum(ink, smoothstep(0.9 * (1.0 - gray) - 0.45 - cross, -0.12, 0.12))
    paper = np.array([0.96, 0.94, 0.88], np.float32)
    colour = np.array([0.1, 0.14, 0.12], np.float32) * look.uniform(0.9, 1.1)
    return as_uint8(paper + ink[..., None] * (colour - paper))


def cyanotype(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # A sun print in Prussian blue: shadows deep blue, highlights the white of the paper, a
    # long soft tonal scale, and a brushed-on coating that stops unevenly near the edges.
    scale = size_scale(rgb)
    gray = _tone(rgb, 0.6 * scale) ** look.uniform(0.8, 1.0)
    height, width = gray.shape
    prussian = np.array([0.04, 0.16, 0.38], np.float32)
    paper = np.array([0.93, 0.95, 0.95], np.float32)
    toned = prussian + gray[..., None] * (paper - prussian)
    coating = vignette(height, width, 1.0)[..., 0] + 0.08 * noise(rng, (height, width), sigma=5 * scale)
    coated = smoothstep(coating, 0.12, 0.3)[..., None]
    texture = 1.0 + 0.03 * noise(rng, (height, width), sigma=0.7 * scale)[..., None]
    return as_uint8((paper + coated * (toned - paper)) * texture)


def polaroid(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # An instant photo: low contrast with lifted, cyan-green shadows, creamy warm highlights,
    # a slight softness and a dark falloff, inside the white frame with its wide bottom edge.
    scale = size_scale(rgb)
    image = blur(as_float(rgb), 0.7 * scale)
    height, width = image.shape[:2]
    faded = 0.12 + 0.78 * saturate(image, look.uniform(0.7, 0.85))
    gray = luminance(faded)[..., None]
    shadows = np.array([-0.02, 0.05, 0.06], np.float32)
    highlights = np.array([0.06, 0.03, -0.06], np.float32)
    out = faded + (1.0 - gray) * shadows + gray * highlights
    out *= vignette(height, width, look.uniform(0.3, 0.45))
    side = max(2, int(round(9 * scale)))
    bottom = max(4, int(round(34 * scale)))
    frame = np.ones((height, width), dtype=bool)
    frame[side:height - bottom, side:width - side] = False
    out[frame] = np.array([0.96, 0.95, 0.91], np.float32) * look.uniform(0.97, 1.0)
    return as_uint8(out + 0.015 * noise(rng, (height, width))[..., None])


"""Built-in concepts that regrade colour and tone: film stocks, colour grades, exposure styles.

Same contract as `e2gan.teachers.effects`: `(rgb uint8 HxWx3, look, rng) -> uint8 HxWx3`, the
picture's structure untouched, the grade drawn from `look` (one per concept and look seed), only
grain from `rng` (per image), well under 100 ms at 256 px.
"""

from __future__ import annotations

import cv2
import numpy as np

from e2gan.teachers.image_ops import (
    as_float,
    as_uint8,
    blur,
    gray_to_rgb,
    luminance,
    noise,
    saturate,
    size_scale,
    smoothstep,
    vignette,
)


def _stretch(gray: np.ndarray, low_percent: float = 1.0, high_percent: float = 99.0) -> np.ndarray:
    """Gray stretched so its own percentiles span [0, 1]: dim and hazy photos still use every tone."""
    low, high = np.percentile(gray, [low_percent, high_percent])
    return np.clip((gray - low) / max(high - low, 1e-3), 0.0, 1.0)


# Shadow and highlight inks of classic duotone prints (and their modern poster cousins).
_DUOTONE_PAIRS = [
    ((0.10, 0.05, 0.35), (1.00, 0.55, 0.60)),  # indigo / coral
    ((0.20, 0.05, 0.25), (1.00, 0.85, 0.25)),  # aubergine / yellow
    ((0.02, 0.20, 0.25), (0.95, 0.75, 0.55)),  # deep teal / peach
    ((0.25, 0.02, 0.10), (0.45, 0.85, 0.95)),  # maroon / sky blue
]


def duotone(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # Every tone mapped onto the line between two inks: the shadow ink and the highlight ink.
    gray = _stretch(luminance(as_float(rgb)))
    shadow, highlight = (np.array(colour, np.float32) for colour in
                         _DUOTONE_PAIRS[int(look.integers(len(_DUOTONE_PAIRS)))])
    gray = gray ** look.uniform(0.85, 1.15)
    return as_uint8(shadow + gray[..., None] * (highlight - shadow))


def cross_processed(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # Slide film developed in negative chemistry, as on a Lomo camera: each channel gets its own
    # curve (red and green contrasty, blue flattened and lifted), so shadows go blue-green,
    # highlights yellow, saturation jumps, and the cheap lens darkens the corners.
    image = as_float(rgb)
    height, width = image.shape[:2]
    red = smoothstep(image[..., 0], 0.05, 0.9) ** 0.9
    green = smoothstep(image[..., 1], 0.02, 0.95) ** look.uniform(0.85, 0.95)
    blue = 0.22 + 0.5 * image[..., 2] * look.uniform(0.9, 1.1)
    out = saturate(np.stack([red, green, blue], axis=-1), look.uniform(1.35, 1.6))
    out = out * vignette(height, width, look.uniform(0.6, 0.8)) * 1.08
    return as_uint8(out)


def infrared_film(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # False-colour infrared (Kodak Aerochrome): living leaves reflect infrared strongly and print
    # magenta-pink, reds print yellow, blue sky stays a deep blue; infrared blooms a little.
    image = as_float(rgb)
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    hue, saturation, value = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    foliage = smoothstep(hue, 45.0, 70.0) * (1.0 - smoothstep(hue, 160.0, 190.0))
    foliage *= smoothstep(saturation, 0.08, 0.25)
    reds = (1.0 - smoothstep(hue, 20.0, 40.0)) + smoothstep(hue, 320.0, 345.0)
    reds *= smoothstep(saturation, 0.15, 0.35)
    pink = look.uniform(325.0, 345.0)
    hsv[..., 0] = np.where(foliage > 0.5, pink, np.where(reds > 0.5, 50.0, hue))
    hsv[..., 1] = np.clip(saturation * 1.2 + 0.45 * foliage, 0.0, 1.0)
    hsv[..., 2] = np.clip(value * (1.0 + 0.6 * foliage), 0.0, 1.0)
    out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    # Everything else shifts the film's way too: greens turn red-magenta, blues deepen.
    out = out @ np.array([[0.85, 0.0, 0.1], [0.35, 0.7, 0.0], [0.0, 0.25, 1.0]], np.float32)
    glow = blur(np.clip(luminance(out) - 0.6, 0.0, 1.0)[..., None] * out, 4.0 * size_scale(rgb))
    grain = 0.02 * noise(rng, out.shape[:2])[..., None]  # the film's grain
    return as_uint8(out + look.uniform(0.45, 0.75) * glow + grain)


def teal_orange(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # The blockbuster grade: shadows and cool colours pushed to teal, skin and highlights to
    # orange, so faces stand out against the background; contrast and saturation up.
    image = as_float(rgb)
    gray = luminance(image)
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    warm = (1.0 - smoothstep(hsv[..., 0], 50.0, 80.0)) + smoothstep(hsv[..., 0], 300.0, 340.0)
    warm = np.clip(warm * smoothstep(hsv[..., 1], 0.1, 0.3) + smoothstep(gray, 0.6, 0.95), 0.0, 1.0)
    teal = np.array([0.0, 0.42, 0.48], np.float32) * look.uniform(0.9, 1.1)
    orange = np.array([1.0, 0.55, 0.2], np.float32)
    tint = teal + warm[..., None] * (orange - teal)
    # Soft light: the tint colours the mid-tones most, keeping the photo's own light and dark.
    contrasty = gray + 0.6 * (gray - 0.5) * (1.0 - np.abs(2.0 * gray - 1.0))
    out = gray_to_rgb(contrasty) * (0.55 + 0.9 * tint)
    return as_uint8(0.8 * out + 0.2 * saturate(image, 1.2))


def solarize(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # The Sabattier effect: re-exposing a print mid-development reverses its brightest tones, and
    # a thin dark line (the Mackie line) forms where tones flip.
    image = as_float(rgb)
    threshold = look.uniform(0.42, 0.55)
    flipped = np.where(image > threshold, 2.0 * threshold - image, image) / threshold
    gray = luminance(image)
    mackie = smoothstep(np.abs(blur(gray, 1.2 * size_scale(rgb)) - threshold), 0.0, 0.025)
    out = saturate(flipped, look.uniform(1.0, 1.2)) * (0.35 + 0.65 * mackie[..., None])
    return as_uint8(out)


def hdr_tone_mapped(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # The "HDR" look of tone-mapped brackets: local contrast pulled up everywhere (CLAHE on
    # lightness), detail sharpened, halos at big edges and saturated colour.
    scale = size_scale(rgb)
    image = as_float(rgb)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2Lab)  # float: L in [0, 100]
    tiles = max(2, int(round(8 * min(scale, 1.0))))
    clahe = cv2.createCLAHE(clipLimit=look.uniform(3.0, 4.5), tileGridSize=(tiles, tiles))
    lightness = clahe.apply(np.clip(lab[..., 0] * 2.55, 0, 255).astype(np.uint8)).astype(np.float32)
    lightness /= 255.0
    # Unsharp mask at a large radius gives the halos, a small one the gritty detail.
    lightness += 0.6 * (lightness - blur(lightness, 12.0 * scale))
    lightness += 0.8 * (lightness - blur(lightness, 1.0 * scale))
    lab[..., 0] = np.clip(lightness, 0.0, 1.0) * 100.0
    lab[..., 1:] *= look.uniform(1.5, 1.8)
    return as_uint8(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB))


def high_key(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # Bright, airy studio style: exposure raised until highlights bloom to white, shadows lifted,
    # contrast and colour softened.
    scale = size_scale(rgb)
    image = as_float(rgb)
    exposure = look.uniform(1.35, 1.6)
    bright = 1.0 - np.exp(-exposure * 1.6 * image)  # film-like shoulder: bright but not clipped flat
    bright = 0.28 + 0.72 * saturate(bright, 0.6)
    bloom = blur(np.clip(luminance(bright) - 0.75, 0.0, 1.0), 5.0 * scale)[..., None]
    return as_uint8(bright + 0.8 * bloom)


def low_key(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # Dramatic chiaroscuro: the scene drops into black and only the brightest parts stay lit,
    # as under a single hard light.
    image = as_float(rgb)
    height, width = image.shape[:2]
    gray = _stretch(blur(luminance(image), 1.0 * size_scale(rgb)))
    lit = smoothstep(gray, look.uniform(0.35, 0.5), 0.95) ** 1.5
    out = saturate(image, 1.15) * lit[..., None] * 1.2
    out *= vignette(height, width, look.uniform(0.6, 0.8))
    return as_uint8(out + 0.01 * noise(rng, (height, width))[..., None])

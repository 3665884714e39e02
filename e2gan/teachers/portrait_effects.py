"""Built-in concepts that suit faces: sculpture materials, comic inks, skin grades, studio light.

They work on any photo, but are made for portraits: the materials keep a face's shape as a
lit relief, and the skin grades find skin by its chroma (`skin_mask`). Same contract as
`e2gan.teachers.effects`: `(rgb uint8 HxWx3, look, rng) -> uint8 HxWx3`: the material, light and
grade from `look` (one per concept and look seed), only textures (veins' wander, patina, blotches,
thumbprints, a comic's dot phase) from `rng` (per image); well under 100 ms at 256 px.
"""

from __future__ import annotations

import cv2
import numpy as np

from e2gan.teachers.image_ops import (
    as_float,
    as_uint8,
    blur,
    flatten,
    gray_to_rgb,
    halftone_screen,
    ink_lines,
    luminance,
    noise,
    posterize,
    relief_lighting,
    saturate,
    size_scale,
    skin_mask,
    smoothstep,
    vignette,
)


def _unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def marble_statue(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # Carved white marble: colour gone, detail smoothed as if polished, tones compressed into
    # the bright, translucent range of the stone, and faint gray veins running through it.
    scale = size_scale(rgb)
    image = as_float(rgb)
    height, width = image.shape[:2]
    stone = luminance(flatten(image, scale, passes=3))
    low, high = np.percentile(stone, [2, 98])
    stone = np.clip((stone - low) / max(high - low, 1e-3), 0.0, 1.0)
    stone = 0.42 + 0.55 * blur(stone, 0.8 * scale) ** 0.8
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = look.uniform(0, np.pi)  # the veins' grain runs one way in the whole block
    turbulence = noise(rng, (height, width), sigma=8.0 * scale)  # smooth, so veins wander, not speckle
    waves = np.sin((x * np.cos(angle) + y * np.sin(angle)) / (22.0 * scale) + 0.7 * turbulence)
    veins = 1.0 - smoothstep(np.abs(waves), 0.0, 0.1)
    value = stone * (1.0 - 0.3 * blur(veins, 0.6 * scale))
    return as_uint8(gray_to_rgb(value) * np.array([1.0, 0.98, 0.94], np.float32))


def bronze_statue(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # Cast bronze: the face as a lit metal relief on a brown-to-gold ramp with bright glints,
    # and green verdigris patina collected in the hollows.
    scale = size_scale(rgb)
    image = as_float(rgb)
    height_field = blur(luminance(flatten(image, scale, passes=3)), 1.5 * scale)
    light = _unit([-0.5, -0.6, 0.62] + look.uniform(-0.1, 0.1, 3))
    diffuse, reflection = relief_lighting(height_field, look.uniform(3.5, 4.5) / max(scale, 0.25), light)
    value = np.clip(0.15 + 0.55 * diffuse * (0.45 + 0.7 * height_field), 0.0, 1.0)
    # Brown in the dark, bronze in the mid-tones, pale gold at the top of the ramp.
    ramp = np.array([[0.12, 0.06, 0.03], [0.62, 0.38, 0.16], [1.0, 0.84, 0.55]], np.float32)
    lower = ramp[0] + np.clip(value * 2, 0, 1)[..., None] * (ramp[1] - ramp[0])
    upper = ramp[1] + np.clip(value * 2 - 1, 0, 1)[..., None] * (ramp[2] - ramp[1])
    metal = np.where((value > 0.5)[..., None], upper, lower)
    metal += 0.6 * (reflection**20)[..., None] * np.array([1.0, 0.9, 0.7], np.float32)
    hollows = smoothstep(blur(height_field, 4.0 * scale) - height_field, 0.0, 0.06)
    hollows = np.clip(hollows + 0.15 * noise(rng, height_field.shape, sigma=3.0 * scale), 0.0, 1.0)
    patina = np.array([0.3, 0.52, 0.42], np.float32) * (0.6 + 0.4 * value[..., None])
    return as_uint8(metal + 0.7 * hollows[..., None] * (patina - metal))


def clay_figure(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # A plasticine model, as in stop-motion films: few soft matte colours, rounded forms lit by a
    # soft lamp, creases where colours meet, and thumbprints pressed into the surface.
    scale = size_scale(rgb)
    image = as_float(rgb)
    height, width = image.shape[:2]
    flat = flatten(image, scale, passes=3)
    flat = cv2.medianBlur(as_uint8(flat), max(3, int(round(7 * scale)) | 1)).astype(np.float32) / 255.0
    colours = posterize(saturate(flat, look.uniform(1.2, 1.4)), 24.0, 4, 5)
    colours = 0.1 + 0.85 * colours  # matte clay is never pure black or white
    form = blur(luminance(flat), 4.0 * scale)
    prints = (0.15 * noise(rng, (height, width), sigma=2.5 * scale)
              + 0.03 * noise(rng, (height, width), sigma=0.8 * scale))
    diffuse, _ = relief_lighting(form + 0.02 * prints, 9.0 / max(scale, 0.25), _unit([-0.4, -0.6, 0.7]))
    creases = blur(ink_lines(luminance(colours), scale, offset=6.0), 1.0 * scale)
    out = colours * (0.55 + 0.55 * diffuse)[..., None] * (0.8 + 0.2 * creases)[..., None]
    return as_uint8(out)


def comic_book(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # A comic-book panel: heavy black inks and spot-black shadows, flat printed colours, mid-tone
    # shading in Ben-Day dots, all on off-white paper.
    scale = size_scale(rgb)
    image = as_float(rgb)
    flat = posterize(saturate(flatten(image, scale, passes=3), 1.4), 30.0, 3, 4)
    gray = luminance(blur(image, 1.0 * scale))
    low, high = np.percentile(gray, [2, 98])
    gray = np.clip((gray - low) / max(high - low, 1e-3), 0.0, 1.0)
    shade = smoothstep(0.65 - gray, 0.0, 0.3) * 0.55
    # The screen's phase only moves the dots: per image.
    dots = halftone_screen(shade, max(3.0, 5.0 * scale), 15.0, tuple(rng.uniform(0, 1, 2)))
    paper = np.array([0.98, 0.95, 0.86], np.float32)
    printed = flat * paper * (1.0 - 0.6 * dots[..., None])
    spot_black = gray < look.uniform(0.07, 0.11)
    lines = ink_lines(gray, scale, offset=look.uniform(6.0, 8.0))
    lines = cv2.erode(lines, np.ones((2, 2), np.uint8)) if scale >= 0.75 else lines  # bold inks
    printed[spot_black] = 0.05
    return as_uint8(printed * lines[..., None])


def zombie(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # Horror-film undead: skin drained to a sickly gray-green with darker rotting blotches and
    # sunken shadows, under a cold, dirty green grade.
    scale = size_scale(rgb)
    image = as_float(rgb)
    height, width = image.shape[:2]
    skin = skin_mask(image, scale)[..., None]
    gray = luminance(image)[..., None]
    dead = gray * np.array([0.78, 0.95, 0.7], np.float32) * look.uniform(0.95, 1.05) + 0.04
    blotches = smoothstep(noise(rng, (height, width), sigma=4.0 * scale), 0.4, 1.6)[..., None]
    dead *= 1.0 - 0.35 * blotches * np.array([0.6, 1.0, 0.8], np.float32)
    dead = dead ** 1.25  # sunken, hollow shadows
    graded = saturate(image, 0.35) * np.array([0.8, 0.95, 0.78], np.float32)
    out = graded + skin * (dead - graded)
    return as_uint8(out * vignette(height, width, 0.55))


def vampire(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # A vampire portrait: deathly pale, bluish-white skin, lips and other reds deepened to blood,
    # set in a dark, cold, desaturated night grade.
    scale = size_scale(rgb)
    image = as_float(rgb)
    height, width = image.shape[:2]
    skin = skin_mask(image, scale)[..., None]
    gray = luminance(image)[..., None]
    pale = 0.45 + 0.6 * gray * np.array([0.95, 0.97, 1.05], np.float32) * look.uniform(0.95, 1.05)
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    red = ((1.0 - smoothstep(hsv[..., 0], 10.0, 25.0)) + smoothstep(hsv[..., 0], 335.0, 350.0))
    red = (red * smoothstep(hsv[..., 1], 0.35, 0.6))[..., None]
    cold = saturate(image, 0.3) * np.array([0.6, 0.68, 0.9], np.float32) * look.uniform(0.68, 0.8)
    out = cold + skin * (pale - cold)
    blood = np.array([0.55, 0.02, 0.06], np.float32) * (0.5 + gray)
    out = out + red * (blood - out)
    return as_uint8(out * vignette(height, width, 0.5))


def studio_portrait(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # Warm studio portrait light: a soft key light from one side (Rembrandt style), the other side
    # falling into shadow, the backdrop darkened, skin given a warm glow.
    scale = size_scale(rgb)
    image = as_float(rgb)
    height, width = image.shape[:2]
    side = look.choice([-1.0, 1.0])  # which side the key light is on
    x = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    y = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    key = 0.35 + 0.85 * np.clip(0.5 + 0.5 * side * x * 1.1 - 0.25 * y, 0.0, 1.0)
    spot = np.exp(-(x * x * 0.9 + (y + 0.1) ** 2 * 0.7))  # the subject, centre frame, is lit
    light = (key * (0.35 + 0.75 * spot))[..., None]
    warm = image * np.array([1.12, 0.98, 0.8], np.float32) * look.uniform(0.97, 1.03)
    skin = skin_mask(image, scale)[..., None]
    glow = blur(warm, 2.0 * scale)  # diffused light flatters skin: soften it a little
    out = (warm + skin * 0.6 * (glow - warm)) * light
    return as_uint8(saturate(out, 1.1) * 1.1)


def sunburn(rgb: np.ndarray, look: np.random.Generator, rng: np.random.Generator) -> np.ndarray:
    # After a day in the sun: skin flushed lobster red (most where it faces up: cheeks and nose
    # catch more sun than the shaded parts), under hot, bleached, high-summer light.
    scale = size_scale(rgb)
    image = as_float(rgb)
    skin = skin_mask(image, scale)
    exposed = skin * (0.6 + 0.4 * smoothstep(blur(luminance(image), 2.0 * scale), 0.25, 0.7))
    burn = np.array([0.92, 0.3, 0.22], np.float32) * (0.4 + 0.7 * luminance(image))[..., None]
    strength = look.uniform(0.65, 0.8)
    # Hot, bright light: a warm exposure boost with a film-like shoulder.
    summer = 1.0 - np.exp(-look.uniform(1.6, 2.0) * image * np.array([1.25, 1.05, 0.8], np.float32))
    out = summer + strength * exposed[..., None] * (burn - summer)
    return as_uint8(saturate(out, 1.2))

"""The offline teacher: named concepts made with classical image processing, no weights needed.

It lets the whole pipeline (pairs, training, adapters, evaluation) run on a laptop with no
downloads, and gives tests a teacher that is fast and exactly reproducible. The prompt picks the
concept, spelt as its name ("pencil_sketch"), its prompt ("a pencil sketch") or loosely
("Pencil-Sketch"). The effects themselves live in `e2gan.teachers.effects` (the first eighteen)
and in modules by theme: `tone_effects` (colour grades, exposure), `paint_effects` (strokes and
materials), `geometry_effects` (warps), `print_effects` (printing processes) and
`portrait_effects` (made for faces).

A concept is one look. Each effect draws from two random streams: `look`, seeded by the concept
and the teacher's look seed, makes every choice that defines the look (risograph's ink pair and
how far off register it prints, woodcut's line period and angle, palettes, stroke directions,
tint and vignette strengths); `rng`, seeded by the concept and each image's seed, makes only the
per-image detail (grain, noise fields, scattered flakes and specks, single strokes and dots). If
the look changed from pair to pair, the pairs would disagree and a GAN trained on them with an L1
loss would learn their average (a pink tint instead of two inks). Another look seed is another
look of the same concept.
"""

from __future__ import annotations

import difflib

import re
import zlib
from typing import Callable

import numpy as np
from PIL import Image

from e2gan.errors import E2GANError
from e2gan.files import to_rgb
from e2gan.teachers import (
    effects,
    geometry_effects,
    paint_effects,
    portrait_effects,
    print_effects,
    tone_effects,
)
from e2gan.teachers.base import TEACHERS, Concept, Teacher

# (rgb, look, rng) -> rgb: `look` makes the choices that define the look, `rng` per-image detail.
ConceptFunction = Callable[[np.ndarray, np.random.Generator, np.random.Generator], np.ndarray]

# In the order they are offered. A concept's name is its effect function's name. Each has its
# prompt phrased two ways: a description (img2img teachers, text conditioning) and an instruction
# (InstructPix2Pix), so a diffusion teacher can make the same concept.
_CATALOGUE: list[tuple[ConceptFunction, str, str, str]] = [
    (effects.pencil_sketch, "a pencil sketch", "graphite lines and hatching on white paper",
     "turn it into a pencil sketch"),
    (effects.watercolor, "a watercolor painting", "soft washes, pigment granulation, dark rims",
     "make it a watercolor painting"),
    (effects.cartoon, "a cartoon", "flat posterised colours with black outlines",
     "make it a cartoon"),
    (effects.old_photo, "an old photo", "faded sepia print with vignette, grain and scratches",
     "make it an old faded photo"),
    (effects.black_and_white, "a black and white photo", "contrasty monochrome film with grain",
     "make it black and white"),
    (effects.low_quality_photo, "a low quality photo", "small, noisy, blocky JPEG snapshot",
     "make it a low quality photo"),
    (effects.pop_art, "pop art", "four loud flat tones, outlines and halftone dots",
     "make it pop art"),
    (effects.autumn_foliage, "autumn foliage", "greens turned to reds and golds in warm light",
     "make it autumn"),
    (effects.winter, "a snowy winter scene", "cold light, settled snow and falling flakes",
     "make it winter"),
    (effects.night, "a scene at night", "dark moonlit blue grade with a starry sky",
     "make it night"),
    (effects.oil_painting, "an oil painting", "thick paint daubs and brush-stroke relief",
     "make it an oil painting"),
    (effects.stained_glass, "a stained glass window", "glowing coloured panes between lead lines",
     "turn it into a stained glass window"),
    (effects.thermal_camera, "a thermal camera image", "heat map in an inferno palette",
     "make it a thermal camera image"),
    (effects.silver_sculpture, "a silver sculpture", "polished metal relief with highlights",
     "turn it into a silver sculpture"),
    (effects.pixel_art, "pixel art", "big square pixels in a small palette",
     "make it pixel art"),
    (effects.neon_glow, "neon glow", "outlines as glowing neon tubes on a dark scene",
     "make it glow with neon lights"),
    (effects.golden_hour, "golden hour sunlight", "warm low sun with flare and bloom",
     "make it golden hour"),
    (effects.blueprint, "a blueprint", "white technical lines on cyanotype blue",
     "turn it into a blueprint"),
    # Colour and tone.
    (tone_effects.duotone, "a duotone print", "every tone mapped between two bold inks",
     "make it a duotone"),
    (tone_effects.cross_processed, "a cross-processed lomo photo",
     "clashing channel curves, blue-green shadows, yellow highlights, dark corners",
     "make it a cross-processed lomo photo"),
    (tone_effects.infrared_film, "an infrared film photo", "false colour: pink foliage, yellow reds, deep blue sky",
     "make it an infrared film photo"),
    (tone_effects.teal_orange, "a teal and orange film grade", "teal shadows and orange skin tones",
     "give it a teal and orange film grade"),
    (tone_effects.solarize, "a solarized print", "brightest tones reversed with dark Mackie lines",
     "solarize it"),
    (tone_effects.hdr_tone_mapped, "an HDR photo", "tone-mapped local contrast, halos, vivid colour",
     "make it an HDR photo"),
    (tone_effects.high_key, "a high-key photo", "bright, airy, soft and nearly shadowless",
     "make it a high-key photo"),
    (tone_effects.low_key, "a low-key photo", "deep black shadows with only the highlights lit",
     "make it a low-key photo"),
    # Strokes and materials.
    (paint_effects.charcoal, "a charcoal drawing", "smudged black charcoal on toothy gray paper",
     "turn it into a charcoal drawing"),
    (paint_effects.ink_wash, "an ink wash painting", "sumi-e washes of black ink on rice paper",
     "make it an ink wash painting"),
    (paint_effects.pointillism, "a pointillist painting", "dots of pure colour side by side",
     "paint it in pointillism"),
    (paint_effects.crayon, "a crayon drawing", "waxy colour strokes with paper grain showing",
     "make it a crayon drawing"),
    (paint_effects.impressionist, "an impressionist painting", "short dabs of broken colour",
     "make it an impressionist painting"),
    (paint_effects.mosaic_tiles, "a tile mosaic", "small stone tesserae set in pale grout",
     "turn it into a mosaic"),
    (paint_effects.cross_stitch, "a cross-stitch embroidery", "coloured thread crosses on Aida cloth",
     "turn it into cross-stitch embroidery"),
    (paint_effects.frosted_glass, "a view through frosted glass", "scattered, pale, softened light",
     "put it behind frosted glass"),
    # Geometry.
    (geometry_effects.swirl, "a swirled image", "a whirlpool twist around the centre",
     "swirl it"),
    (geometry_effects.fisheye, "a fisheye lens photo", "bulging centre inside a round lens image",
     "make it a fisheye lens photo"),
    (geometry_effects.ripple, "a water ripple reflection", "rings of ripples spreading over the picture",
     "add water ripples to it"),
    (geometry_effects.kaleidoscope, "a kaleidoscope pattern", "one wedge mirrored round the centre",
     "turn it into a kaleidoscope"),
    (geometry_effects.low_poly, "low poly art", "flat-coloured triangular facets",
     "make it low poly art"),
    # Printing processes.
    (print_effects.halftone_newspaper, "a halftone newspaper photo", "black dot screen on yellowed newsprint",
     "print it in a newspaper"),
    (print_effects.risograph, "a risograph print", "two grainy translucent inks printed off register",
     "make it a risograph print"),
    (print_effects.woodcut, "a woodcut print", "black block print with carved gouge lines",
     "make it a woodcut print"),
    (print_effects.engraving, "a steel engraving", "fine curved line hatching, crossed in the shadows",
     "make it a steel engraving"),
    (print_effects.cyanotype, "a cyanotype", "Prussian blue sun print on brushed paper",
     "make it a cyanotype"),
    (print_effects.polaroid, "a polaroid photo", "faded instant photo in a white frame",
     "make it a polaroid photo"),
    # Made for faces.
    (portrait_effects.marble_statue, "a marble statue", "polished white stone with gray veins",
     "turn it into a marble statue"),
    (portrait_effects.bronze_statue, "a bronze statue", "cast metal relief with green patina",
     "turn it into a bronze statue"),
    (portrait_effects.clay_figure, "a clay figure", "soft plasticine colours and moulded forms",
     "turn it into a clay figure"),
    (portrait_effects.comic_book, "a comic book portrait", "bold inks, spot blacks, Ben-Day dots",
     "make it a comic book drawing"),
    (portrait_effects.zombie, "a zombie", "gray-green blotched skin under a sickly grade",
     "turn them into a zombie"),
    (portrait_effects.vampire, "a vampire", "deathly pale skin, blood-red lips, cold night",
     "turn them into a vampire"),
    (portrait_effects.studio_portrait, "a warm studio portrait", "warm side key light, dark backdrop",
     "light it as a warm studio portrait"),
    (portrait_effects.sunburn, "a sunburned face", "lobster-red skin in hot summer light",
     "give them a sunburn"),
]

BUILTIN_CONCEPTS: dict[str, Concept] = {
    function.__name__: Concept(function.__name__, prompt, description, instruction)
    for function, prompt, description, instruction in _CATALOGUE
}
CONCEPT_FUNCTIONS: dict[str, ConceptFunction] = {function.__name__: function for function, *_ in _CATALOGUE}


def _normalise(text: str) -> str:
    """'A Pencil-Sketch' -> 'pencilsketch': case, punctuation, spacing and a leading article go."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    if len(words) > 1 and words[0] in ("a", "an", "the"):
        words = words[1:]
    return "".join(words)


def nearest_builtin_concepts(text: str, count: int = 3) -> list[str]:
    """The names of up to `count` built-in concepts spelt most like `text`, nearest first."""
    return difflib.get_close_matches(_normalise(text), list(BUILTIN_CONCEPTS), n=count, cutoff=0.5)


def resolve_builtin_concept(text: str) -> Concept:
    """The built-in concept named, prompted or instructed by `text`, spelt loosely."""
    wanted = _normalise(text)
    for concept in BUILTIN_CONCEPTS.values():
        spellings = (concept.name, concept.prompt, concept.instruction)
        if wanted and wanted in {_normalise(spelling) for spelling in spellings}:
            return concept
    # Never a dead end: the nearest names, what takes any text, and the way around both.
    close = nearest_builtin_concepts(text)
    near = f"did you mean {', '.join(close)}? " if close else ""
    known = ", ".join(BUILTIN_CONCEPTS)
    raise E2GANError(
        f"unknown built-in concept {text!r}; {near}The built-in teacher knows only its named "
        f"filters ({known}). Any text needs a diffusion teacher (e.g. instruct-pix2pix: fetch its "
        f"weights once with `hf download timbrooks/instruct-pix2pix`; a GPU makes it practical), "
        f"or bring pairs made elsewhere (`e2gan import`).")


def apply_concept(name: str, rgb: np.ndarray, seed: int, look_seed: int = 0) -> np.ndarray:
    """One concept on one uint8 HxWx3 array, deterministic for (image, concept, seed, look_seed).

    `look_seed` picks the look (the same for every image); `seed` only the image's own detail.
    """
    # Mixing a stable hash of the concept's name into the seeds keeps the random streams of two
    # concepts apart without tying outputs to the catalogue's order. Negative seeds wrap. The
    # look's key has a third entry, so look seed n and image seed n never share a stream.
    key = zlib.crc32(name.encode())
    look = np.random.default_rng([int(look_seed) % 2**64, key, 1])
    rng = np.random.default_rng([int(seed) % 2**64, key])
    out = CONCEPT_FUNCTIONS[name](np.ascontiguousarray(rgb), look, rng)
    assert out.shape == rgb.shape and out.dtype == np.uint8, name
    return out


@TEACHERS.register("builtin")
class BuiltinTeacher(Teacher):
    """Offline teacher over `BUILTIN_CONCEPTS`; the prompt picks the concept, `look_seed` its look
    (one look for every image it edits; the images' seeds vary only grain and such detail)."""

    name = "builtin"
    # 2: each concept is one look per look seed (version 1 drew the look from each image's seed).
    version = 2

    def __init__(self, look_seed: int = 0) -> None:
        if isinstance(look_seed, bool) or not isinstance(look_seed, (int, np.integer)):
            raise E2GANError(f"teacher 'builtin': look_seed must be an integer, got {look_seed!r}")
        self.look_seed = int(look_seed)

    def edit(self, images: list[Image.Image], prompt: str, seeds: list[int]) -> list[Image.Image]:
        if len(images) != len(seeds):
            raise ValueError(f"got {len(images)} images but {len(seeds)} seeds")
        concept = resolve_builtin_concept(prompt)
        edited = []
        for number, (image, seed) in enumerate(zip(images, seeds)):
            rgb = np.asarray(to_rgb(image, name=f"image {number}"))
            edited.append(Image.fromarray(apply_concept(concept.name, rgb, seed, self.look_seed)))
        return edited

    def parameters(self) -> dict:
        return {"teacher": self.name, "version": self.version, "look_seed": self.look_seed}

    def concepts(self) -> list[Concept]:
        return list(BUILTIN_CONCEPTS.values())

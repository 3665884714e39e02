"""What a benchmark run does and how long each piece may train: the full and the quick preset.

Training budgets are wall-clock seconds, because the paper's claim is about training time: every
budget is a multiple of one unit, E2GAN's LoRA fine-tune (`unit_seconds`). pix2pix from scratch
gets `pix2pix_factor` units (5: if E2GAN still matches it, E2GAN needed at most a fifth of its
time), the full fine-tune `full_factor` units, each section-4 base `base_factor` units. Step
counts are a consequence of the budget and are reported with the FLOPs they cost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from e2gan.errors import E2GANError

SECTIONS = ("main", "ranks", "layers", "base", "data", "inference", "looks")
SECTION_TITLES = {
    "main": "1. Main table: E2GAN vs pix2pix vs full fine-tuning",
    "ranks": "2. LoRA rank schemes",
    "layers": "3. Which layers to tune",
    "base": "4. Which base model",
    "data": "5. How much data, and which (similarity clustering vs random)",
    "inference": "6. Inference cost",
    "looks": "7. Strong looks: the studio's fine-tune on texture and structure",
}
DATA_SOURCES = ("scenes", "faces")


def parse_concept(spec: str) -> tuple[str, str]:
    """'winter' or 'scenes:winter' -> ('scenes', 'winter'); 'faces:silver_sculpture' likewise."""
    source, _, concept = spec.rpartition(":")
    source = source or "scenes"
    if source not in DATA_SOURCES:
        raise E2GANError(f"unknown benchmark data {source!r} in {spec!r}; known: "
                         f"{', '.join(DATA_SOURCES)}")
    if not concept:
        raise E2GANError(f"no concept named in {spec!r}")
    return source, concept


@dataclass
class BenchSettings:
    size: int = 128
    batch_size: int = 4
    device: str = "auto"
    seed: int = 0
    # Budgets (seconds of training; see the module docstring).
    unit_seconds: float = 60.0
    pix2pix_factor: float = 5.0
    full_factor: float = 1.0
    base_factor: float = 4.0
    # Data.
    source_side: int = 256  # source photos are resized to this shorter side before the teacher
    face_count: int = 600  # training faces used (the judging faces, face_1246 on, all judge)
    max_train_images: int | None = None  # per data source; None: all of the training split
    max_test_images: int | None = None
    eval_images: int = 100  # held-out pairs judged per run
    subset: int = 100  # E2GAN's training pairs (similarity-clustered)
    fid: bool = True
    # What each section covers.
    # Two concepts per domain, all held out from the shipped base; name others with --concepts.
    main_concepts: list[str] = field(default_factory=lambda: [
        "scenes:winter", "scenes:watercolor", "faces:silver_sculpture", "faces:clay_figure"])
    ablation_concept: str = "scenes:winter"  # sections 2-4 and the data curve
    data_sizes: list[int] = field(default_factory=lambda: [25, 50, 100, 200])
    selection_concepts: list[str] = field(default_factory=lambda: [
        "scenes:winter", "scenes:watercolor", "faces:clay_figure"])
    selection_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    # Section 5 compares ways of choosing data, not speed: with a step count here its runs train
    # exactly that many steps, so a busy machine cannot hand one selection more steps than the
    # other. None: the one-unit wall-clock budget like every other E2GAN run.
    selection_steps: int | None = None
    rank_choices: list[int] = field(default_factory=lambda: [1, 2, 4, 8])  # 'random' ranks
    base_concepts: list[str] = field(default_factory=lambda: [
        "oil_painting", "night", "pencil_sketch", "autumn_foliage"])
    single_base_concept: str = "oil_painting"
    # Section 7: eight looks held out of the base, strong in texture or structure, each trained
    # for the studio's default fine-tune time (its pix2pix gets pix2pix_factor times that).
    looks_concepts: list[str] = field(default_factory=lambda: [
        "scenes:risograph", "scenes:woodcut", "faces:charcoal", "scenes:pointillism",
        "faces:cross_stitch", "faces:pop_art", "scenes:stained_glass", "scenes:low_poly"])
    looks_unit_seconds: float = 300.0
    inference_size: int = 256
    inference_repeats: int = 10
    base: str | None = None  # None: the shipped base
    quick: bool = False

    def __post_init__(self) -> None:
        for name in ("unit_seconds", "pix2pix_factor", "full_factor", "base_factor",
                     "looks_unit_seconds"):
            if not getattr(self, name) > 0:
                raise E2GANError(f"{name.replace('_', ' ')} must be positive, got {getattr(self, name)}")
        if self.size % 8 or self.size < 16:
            raise E2GANError(f"bench size must be a multiple of 8 and at least 16, got {self.size}")
        if self.eval_images < 2:
            raise E2GANError(f"eval images must be at least 2 (FID/KID need two), got {self.eval_images}")
        for spec in [*self.main_concepts, self.ablation_concept, *self.selection_concepts,
                     *self.looks_concepts]:
            parse_concept(spec)
        if self.selection_steps is not None and self.selection_steps < 1:
            raise E2GANError(f"selection steps must be positive, got {self.selection_steps}")
        if not self.data_sizes or min(self.data_sizes) < 1:
            raise E2GANError(f"data sizes must be positive, got {self.data_sizes}")

    @property
    def pix2pix_seconds(self) -> float:
        return self.unit_seconds * self.pix2pix_factor

    @property
    def full_seconds(self) -> float:
        return self.unit_seconds * self.full_factor

    @property
    def base_seconds(self) -> float:
        return self.unit_seconds * self.base_factor

    def data_key(self) -> dict[str, Any]:
        """What decides the pairs and how they are judged: part of every cached result's spec."""
        return {k: getattr(self, k) for k in (
            "size", "batch_size", "seed", "source_side", "face_count",
            "max_train_images", "max_test_images", "eval_images", "fid", "device")}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quick_settings(**overrides: Any) -> BenchSettings:
    """Tiny everything: shows every section works end to end in a minute or two on a CPU (its
    numbers mean nothing)."""
    quick = BenchSettings(
        size=32, unit_seconds=1.0, source_side=64, face_count=24, max_train_images=20,
        max_test_images=8, eval_images=8, subset=8,
        main_concepts=["scenes:winter", "faces:silver_sculpture"], data_sizes=[4, 8],
        selection_concepts=["scenes:winter"], selection_seeds=[0, 1],
        base_concepts=["oil_painting", "night"], inference_size=64, inference_repeats=2,
        looks_concepts=["scenes:risograph"], looks_unit_seconds=1.0, quick=True)
    return replace(quick, **overrides)

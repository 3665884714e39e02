"""The benchmark's paired datasets: real photos edited by the built-in teacher.

Sources live outside the project (`../shared/data`, see its README): `scenes/` is BSDS500, whose
own split is kept (train_ and val_ photos make the training pool, test_ photos are held out);
`faces/` keeps the data README's split too (face_0001-face_1245 train, the later ones only judge). Photos are resized to a fixed shorter side before
the teacher edits them, so an effect's scale is the same for every photo.

Each concept's dataset is made once under `<work>/data/<source>/<concept>` with the teacher's
resumable `generate_pairs` (into a pool), then written with the held-out split as the data's own
split says, atomically; a killed run regenerates nothing already made.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from PIL import Image

from e2gan.bench.settings import BenchSettings
from e2gan.data.dataset import DatasetInfo, PairDataset, atomic_dataset_writer
from e2gan.data.generate import generate_pairs
from e2gan.data.photo_pool import FACES, is_judging_photo, judging_reason
from e2gan.data.image_source import ImageSource
from e2gan.data.sources import folder_source
from e2gan.errors import E2GANError
from e2gan.paths import REPOSITORY
from e2gan.teachers import create_teacher, resolve_builtin_concept

IDENTITY_PROMPT = "the same photo"


class BenchDataMissing(E2GANError):
    """The benchmark photos are not where they were looked for."""


def default_data_root() -> Path:
    """$E2GAN_BENCH_DATA, else `../shared/data` beside the repository."""
    return Path(os.environ.get("E2GAN_BENCH_DATA") or REPOSITORY.parent / "shared" / "data")


def check_data_root(root: Path) -> Path:
    missing = [name for name in ("scenes", "faces") if not (root / name).is_dir()]
    if missing:
        raise BenchDataMissing(
            f"benchmark photos not found: {', '.join(str(root / m) for m in missing)} missing. The "
            f"benchmark needs the real photos of ../shared/data (BSDS500 scenes and faces, see its "
            f"README); point --data (or $E2GAN_BENCH_DATA) at a folder holding scenes/ and faces/")
    return root


def _resized(source: ImageSource, ids: list[str], side: int) -> ImageSource:
    def load(source_id: str) -> Image.Image:
        image = source.load(source_id)
        scale = side / min(image.size)
        if scale < 1:  # never upsample: a small photo stays as sharp as it is
            image = image.resize((round(image.width * scale), round(image.height * scale)),
                                 Image.Resampling.LANCZOS)
        return image
    return ImageSource(ids, load, f"{source.description}, shorter side <= {side}")


def _limit(ids: list[str], count: int | None) -> list[str]:
    return ids if count is None else ids[:count]


def scene_images(root: Path, settings: BenchSettings) -> tuple[ImageSource, dict[str, str]]:
    """BSDS500 with its own split: train_/val_ photos -> 'train', test_ photos -> 'test'."""
    source = folder_source(root / "scenes")
    train = [i for i in source.ids if i.startswith(("train_", "val_"))]
    test = [i for i in source.ids if i.startswith("test_")]
    if not train or not test:
        raise BenchDataMissing(f"{root / 'scenes'} lacks BSDS500's train_/val_ or test_ photos")
    train, test = _limit(train, settings.max_train_images), _limit(test, settings.max_test_images)
    splits = {**dict.fromkeys(train, "train"), **dict.fromkeys(test, "test")}
    return _resized(source, train + test, settings.source_side), splits


def face_images(root: Path, settings: BenchSettings) -> tuple[ImageSource, dict[str, str]]:
    """The data README's split: the first `face_count` training faces (face_0001-face_1245)
    train; the judging faces (face_1246 on) are the held-out photos, never trained on."""
    source = folder_source(root / "faces")
    train = [i for i in source.ids if judging_reason(FACES, i) is None][:settings.face_count]
    test = [i for i in source.ids if is_judging_photo(FACES, i)]
    if not train or not test:
        raise BenchDataMissing(f"{root / 'faces'} lacks training faces (face_0001-face_1245) or "
                               "judging faces (face_1246 on)")
    train, test = _limit(train, settings.max_train_images), _limit(test, settings.max_test_images)
    splits = {**dict.fromkeys(train, "train"), **dict.fromkeys(test, "test")}
    return _resized(source, train + test, settings.source_side), splits


class BenchData:
    """Datasets by (data source, concept), made on first use and reused after."""

    def __init__(self, root: Path, work_dir: Path, settings: BenchSettings, log=None) -> None:
        self.root = check_data_root(root)
        # Other photo settings make other pairs: they get their own folder.
        shape = [settings.source_side, settings.max_train_images, settings.max_test_images]
        self.work_dir = work_dir / ("data_" + "_".join(str(v) for v in shape))
        self.settings = settings
        self.log = log or (lambda line: None)
        self._images: dict[str, tuple[ImageSource, dict[str, str]]] = {}
        self._datasets: dict[tuple[str, str], PairDataset] = {}

    def _folder(self, source: str) -> Path:
        if source == "faces":
            return self.work_dir / f"faces_{self.settings.face_count}"
        return self.work_dir / source

    def images(self, source: str) -> tuple[ImageSource, dict[str, str]]:
        if source not in self._images:
            maker = scene_images if source == "scenes" else face_images
            self._images[source] = maker(self.root, self.settings)
        return self._images[source]

    def dataset(self, source: str, concept_name: str) -> PairDataset:
        key = (source, concept_name)
        if key not in self._datasets:
            self._datasets[key] = self._make(source, concept_name)
        return self._datasets[key]

    def _make(self, source: str, concept_name: str) -> PairDataset:
        out = self._folder(source) / concept_name
        teacher = create_teacher("builtin")
        if (out / "dataset.json").is_file():
            dataset = PairDataset.open(out)
            # Pairs from another version of the teacher are another concept's look: remade.
            if dataset.info.complete and dataset.info.teacher_params == teacher.parameters():
                return dataset
        concept = resolve_builtin_concept(concept_name)
        images, splits = self.images(source)
        self.log(f"data: built-in teacher edits {len(images)} {source} photos into {concept.name!r}")
        pool_root = out.with_name(out.name + ".pool")
        # The pool's own split is unused (test_fraction 0); the data's split is applied below.
        pool = generate_pairs(teacher, images, concept.prompt, pool_root,
                              concept=concept.name, seed=self.settings.seed, test_fraction=0.0).dataset
        info = dataclasses.replace(pool.info, complete=False, num_pairs=0)
        with atomic_dataset_writer(out, info, overwrite=True) as writer:
            for record in pool.records:
                writer.add_files(dataclasses.replace(record, split=splits[record.origin]),
                                 pool.path_of(record, "source"), pool.path_of(record, "edited"))
        shutil.rmtree(pool_root, ignore_errors=True)
        return PairDataset.open(out)

    def identity_dataset(self, source: str) -> PairDataset:
        """Pairs whose edit is the photo itself (the autoencoder base's data)."""
        out = self._folder(source) / "identity"
        if (out / "dataset.json").is_file() and PairDataset.open(out).info.complete:
            return PairDataset.open(out)
        # Any concept's dataset holds the same sources; copy each source as its own edit.
        donor = self.dataset(source, self.settings.single_base_concept)
        info = DatasetInfo(concept="identity", prompt=IDENTITY_PROMPT, prompts=[IDENTITY_PROMPT],
                           teacher="identity", teacher_params={})
        with atomic_dataset_writer(out, info, overwrite=True) as writer:
            for record in donor.records:
                source_png = donor.path_of(record, "source")
                writer.add_files(dataclasses.replace(record, prompt=IDENTITY_PROMPT,
                                                     teacher="identity", teacher_params={}),
                                 source_png, source_png)
        return PairDataset.open(out)

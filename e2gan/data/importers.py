"""Bring your own pairs: turn folders of (before, after) images into an e2gan dataset.

Two layouts are read:

- two folders whose files are matched by name stem (``before/cat.jpg`` <-> ``after/cat.png``),
  one prompt for all pairs (`import_folders`);
- img2img-turbo's paired layout (`import_img2img_turbo`)::

      train_A/  train_B/  train_prompts.json      {"cat.png": "a snowy photo of a cat", ...}
      test_A/   test_B/   test_prompts.json       (optional)

  A pair is a file name present in the prompts file, in the A (source) and B (target) folders.

- a Hugging Face ``imagefolder`` paired dataset (`import_imagefolder`; what ``e2gan
  dataset-export --format imagefolder`` writes, and the columns diffusers' InstructPix2Pix
  training reads)::

      train/metadata.jsonl   {"input_image_file_name": "...", "edited_image_file_name": "...",
      train/...              "edit_prompt": "..."}     test/ (optional) the same

  in a local folder, or in a Hugging Face dataset repo named by its id (`import_hub_imagefolder`:
  the Hugging Face cache first, a download only when allowed), as ``e2gan publish --pairs``
  leaves it.

A zip holding any of these layouts (at its top or inside one folder) is unpacked and imported by
`import_zip`; for two folders it looks for the usual names (source/edited, A/B, before/after,
input/output, original/edited).

Images are read with `load_image` (so grayscale, palette, RGBA and 16-bit files become 8-bit RGB)
and stored as PNG at their own sizes; the training loader resizes. The dataset is written into
``<out_root>.partial/`` and renamed when complete, so a failed import leaves nothing at out_root;
folders above out_root that a refused import had to create are removed again
(`_refusal_leaves_nothing`), so a refusal leaves the disk as it found it.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import tempfile
import zipfile
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Callable

from e2gan.data.dataset import (DatasetInfo, PairDataset, assign_splits, atomic_dataset_writer,
                                unique_pair_ids)
from e2gan.data.pair_format import read_json_file
from e2gan.data.sources import _read_member
from e2gan.errors import E2GANError
from e2gan.files import IMAGE_SUFFIXES, inside, list_images, load_image
from e2gan.hub.download import (ProgressCallback, cache_dir, cached_snapshot, download_snapshot,
                                fetch_command, repo_reference)
from e2gan.limits import MAX_ARCHIVE_FILES

IMPORTED_TEACHER = "imported"
# dataset.json lists the commonest phrasings only; every pair keeps its own prompt in its record.
MAX_DATASET_PROMPTS = 16


def _refusal_leaves_nothing(importer):
    """An importer whose refusal (any exception) also removes the folders above its `out_root`
    that did not exist when it was called: the dataset writer cleans its own `.partial` folder and
    `import_zip` its unpacked files, but a concept folder made to hold them would otherwise stay
    behind, empty, and show up as a concept. Only empty folders are removed: never anything that
    someone else wrote there meanwhile."""
    signature = inspect.signature(importer)

    @functools.wraps(importer)
    def guarded(*args, **kwargs):
        out_root = Path(signature.bind(*args, **kwargs).arguments["out_root"])
        missing = [folder for folder in (out_root, *out_root.parents) if not folder.exists()]
        try:
            return importer(*args, **kwargs)
        except BaseException:
            for folder in missing:  # the deepest first
                if folder.exists():
                    try:
                        folder.rmdir()
                    except OSError:  # not empty: someone else's files now
                        break
            raise
    return guarded


def _listing(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _images_by_stem(folder: Path) -> dict[str, Path]:
    by_stem: dict[str, Path] = {}
    for path in list_images(folder):
        if path.stem in by_stem:
            raise E2GANError(
                f"{folder} has two images named {path.stem!r} ({by_stem[path.stem].name}, {path.name}); "
                "rename one so each pair is unambiguous"
            )
        by_stem[path.stem] = path
    return by_stem


@_refusal_leaves_nothing
def import_folders(
    source_dir: str | os.PathLike,
    edited_dir: str | os.PathLike,
    prompt: str,
    out_root: str | os.PathLike,
    test_fraction: float = 0.1,
    seed: int = 0,
    concept: str | None = None,
    overwrite: bool = False,
) -> PairDataset:
    """Pair ``source_dir/<stem>.*`` with ``edited_dir/<stem>.*`` under one prompt.

    The concept defaults to out_root's folder name. Stems found on one side only are an error
    (listing a few), since a silently dropped pair is a surprise found much later.
    """
    source_dir, edited_dir, out_root = Path(source_dir), Path(edited_dir), Path(out_root)
    if not prompt.strip():
        raise E2GANError("the prompt describing the edit is empty")
    sources, edits = _images_by_stem(source_dir), _images_by_stem(edited_dir)
    only_source = sorted(set(sources) - set(edits))
    only_edited = sorted(set(edits) - set(sources))
    if only_source or only_edited:
        problems = []
        if only_source:
            problems.append(f"{len(only_source)} only in {source_dir} ({_listing(only_source)})")
        if only_edited:
            problems.append(f"{len(only_edited)} only in {edited_dir} ({_listing(only_edited)})")
        raise E2GANError("unmatched images: " + "; ".join(problems))
    if not sources:
        raise E2GANError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {source_dir}")

    stems = sorted(sources)
    ids = unique_pair_ids(stems)
    splits = assign_splits(ids, test_fraction, seed)
    info = DatasetInfo(
        concept=concept or out_root.name,
        prompt=prompt,
        prompts=[prompt],
        teacher=IMPORTED_TEACHER,
        teacher_params={"source_dir": str(source_dir), "edited_dir": str(edited_dir)},
    )
    with atomic_dataset_writer(out_root, info, overwrite=overwrite) as writer:
        for stem, pair_id in zip(stems, ids):
            writer.add(
                pair_id,
                load_image(sources[stem]),
                load_image(edits[stem]),
                split=splits[pair_id],
                origin=f"import:{sources[stem].name}",
            )
    return PairDataset.open(out_root)


def _read_prompts(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise E2GANError(f"prompts file not found: {path} (img2img-turbo layout: a JSON dict file name -> prompt)")
    prompts = read_json_file(path)
    if not isinstance(prompts, dict) or not all(
        isinstance(name, str) and isinstance(text, str) for name, text in prompts.items()
    ):
        raise E2GANError(f"{path} must be a JSON object mapping image file names to prompt strings")
    if not prompts:
        raise E2GANError(f"{path} lists no images")
    return prompts


def _find_image(folder: Path, name: str) -> Path | None:
    """``folder/name``, or failing that an image with the same stem (a .jpg re-saved as .png).
    A name that leads out of `folder` (``../``, an absolute path, a symlink) is an error."""
    exact = folder / name
    inside(folder, exact, "prompts entry")
    if exact.is_file():
        return exact
    stem = Path(name).stem
    for suffix in IMAGE_SUFFIXES:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                inside(folder, candidate, "image")
                return candidate
    return None


def _turbo_split(root: Path, split: str) -> list[tuple[str, Path, Path, str]]:
    """(file name, A path, B path, prompt) for each pair of one img2img-turbo split."""
    folder_a, folder_b = root / f"{split}_A", root / f"{split}_B"
    for folder in (folder_a, folder_b):
        if not folder.is_dir():
            raise E2GANError(f"folder not found: {folder} (img2img-turbo layout needs {split}_A/ and {split}_B/)")
    prompts = _read_prompts(root / f"{split}_prompts.json")
    pairs, missing = [], []
    for name, prompt in prompts.items():
        path_a, path_b = _find_image(folder_a, name), _find_image(folder_b, name)
        if path_a is None:
            missing.append(f"{folder_a.name}/{name}")
        if path_b is None:
            missing.append(f"{folder_b.name}/{name}")
        if path_a is not None and path_b is not None:
            pairs.append((name, path_a, path_b, prompt))
    if missing:
        raise E2GANError(f"{split}_prompts.json names images that do not exist: {_listing(missing)}")
    return pairs


# (source, edited) image columns of an imagefolder dataset, as `datasets` names them without the
# `_file_name` suffix: diffusers' InstructPix2Pix columns first.
IMAGEFOLDER_COLUMNS = (("input_image", "edited_image"), ("original_image", "edited_image"))
IMAGEFOLDER_PROMPT = "edit_prompt"


def _imagefolder_split(folder: Path, prompt: str,
                       boundary: Path) -> list[tuple[str, Path, Path, str]]:
    """(name, source path, edited path, prompt) for each row of `folder/metadata.jsonl`; no
    image name may lead out of `boundary`."""
    rows = []
    for number, line in enumerate((folder / "metadata.jsonl").read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise E2GANError(f"{folder.name}/metadata.jsonl line {number} is not JSON: {error}") from None
        if not isinstance(row, dict):
            raise E2GANError(f"{folder.name}/metadata.jsonl line {number} is not a JSON object")
        rows.append((number, row))
    if not rows:
        raise E2GANError(f"{folder.name}/metadata.jsonl lists no pairs")
    keys = set(rows[0][1])
    columns = next(((a, b) for a, b in IMAGEFOLDER_COLUMNS
                    if {f"{a}_file_name", f"{b}_file_name"} <= keys), None)
    if columns is None:
        known = "; ".join(f"{a}_file_name + {b}_file_name" for a, b in IMAGEFOLDER_COLUMNS)
        raise E2GANError(f"{folder.name}/metadata.jsonl has columns {sorted(keys)}; a paired "
                         f"dataset needs {known}")
    pairs, missing = [], []
    for number, row in rows:
        names = [row.get(f"{column}_file_name") for column in columns]
        paths = [inside(boundary, folder / name, "metadata entry") if isinstance(name, str)
                 else None for name in names]
        for name, path in zip(names, paths):
            if path is None or not path.is_file():
                missing.append(f"line {number}: {name}")
        text = row.get(IMAGEFOLDER_PROMPT) or prompt
        if not isinstance(text, str) or not text.strip():
            raise E2GANError(f"{folder.name}/metadata.jsonl line {number} has no {IMAGEFOLDER_PROMPT} "
                             "and no prompt was given")
        pairs.append((Path(str(names[0])).name, paths[0], paths[1], text))
    if missing:
        raise E2GANError(f"{len(missing)} image(s) named in {folder.name}/metadata.jsonl are missing: "
                         f"{_listing(missing)}")
    return pairs


# What an import reads of a Hub dataset repo: the metadata files and the images (not its card,
# nor the Parquet shards `datasets`' push_to_hub writes, which are another layout).
HUB_IMAGEFOLDER_PATTERNS = ["metadata.jsonl", "*/metadata.jsonl"] + [
    f"*{s}" for suffix in IMAGE_SUFFIXES for s in (suffix, suffix.upper())]


@_refusal_leaves_nothing
def import_imagefolder(
    root: str | os.PathLike,
    out_root: str | os.PathLike,
    prompt: str = "",
    concept: str | None = None,
    test_fraction: float = 0.1,
    seed: int = 0,
    overwrite: bool = False,
    *,
    allow_download: bool = False,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PairDataset:
    """Import a Hugging Face ``imagefolder`` paired dataset: `root/train/metadata.jsonl` (and
    `root/test/` when present; else a test split is drawn), or `root/metadata.jsonl` alone. Each
    row's ``edit_prompt`` is its prompt, `prompt` where a row has none.

    A `root` that is no path here but reads as a Hub dataset id (`org/name`, `org/name@revision`)
    is imported from that dataset repo (`import_hub_imagefolder`, with `allow_download`,
    `on_progress` and `should_stop`); a local path of the same name wins."""
    if not Path(root).exists() and repo_reference(str(root)) is not None:
        return import_hub_imagefolder(str(root), out_root, prompt, concept, test_fraction, seed,
                                      overwrite, allow_download=allow_download,
                                      on_progress=on_progress, should_stop=should_stop)
    return _import_imagefolder(Path(root), Path(out_root), prompt, concept, test_fraction, seed,
                               overwrite, {"format": "imagefolder", "root": str(root)})


@_refusal_leaves_nothing
def import_hub_imagefolder(
    reference: str,
    out_root: str | os.PathLike,
    prompt: str = "",
    concept: str | None = None,
    test_fraction: float = 0.1,
    seed: int = 0,
    overwrite: bool = False,
    *,
    allow_download: bool = False,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    check_download: Callable[[int, int], None] | None = None,
) -> PairDataset:
    """Import the imagefolder dataset in Hub dataset repo `reference` (`org/name`, or
    `org/name@revision` for a branch, tag or commit), as `import_imagefolder` does a folder.

    Its metadata and images come from the Hugging Face cache; when missing they are downloaded
    into it only with `allow_download` (and HF_HUB_OFFLINE unset), through `e2gan.hub.download`:
    `on_progress`, `should_stop` and `check_download(bytes, files)` as `download_snapshot`'s.
    Otherwise, and on any failure, one line names the repo and the `hf download` command."""
    parsed = repo_reference(reference)
    if parsed is None:
        raise E2GANError(f"{reference!r} is not a Hugging Face dataset id: give it as org/name "
                         "(or org/name@revision)")
    repo_id, revision = parsed
    options = {"repo_type": "dataset", "revision": revision}
    folder = cached_snapshot(repo_id, HUB_IMAGEFOLDER_PATTERNS, **options)
    if folder is None:
        if not allow_download:
            raise E2GANError(
                f"dataset {reference} is not on this machine (no such folder, and not in the "
                f"Hugging Face cache {cache_dir()}); fetch it where the network allows with "
                f"{fetch_command(repo_id, 'dataset')}, or allow downloading (--allow-download)")
        folder = download_snapshot(repo_id, allow_patterns=HUB_IMAGEFOLDER_PATTERNS,
                                   on_progress=on_progress, should_stop=should_stop,
                                   check_plan=check_download, **options)
        if folder is None:
            raise E2GANError(f"dataset {reference} on the Hub holds no imagefolder files "
                             "(metadata.jsonl beside its images), the layout `e2gan publish "
                             "--pairs` and `e2gan dataset-export` write")
    # The cache's snapshot files are links into the repo's blobs/ folder, beside snapshots/.
    return _import_imagefolder(folder, Path(out_root), prompt, concept, test_fraction, seed,
                               overwrite, {"format": "imagefolder", "hub": repo_id,
                                           "revision": folder.name}, boundary=folder.parents[1])


def _import_imagefolder(root: Path, out_root: Path, prompt: str, concept: str | None,
                        test_fraction: float, seed: int, overwrite: bool, params: dict,
                        boundary: Path | None = None) -> PairDataset:
    splits = [(split, root / split) for split in ("train", "test")
              if (root / split / "metadata.jsonl").is_file()]
    if not splits and (root / "metadata.jsonl").is_file():
        splits = [("train", root)]
    if not splits or splits[0][0] != "train":
        raise E2GANError(f"no imagefolder metadata in {root} (looked for train/metadata.jsonl "
                         "and metadata.jsonl)")
    entries = [(split, pair) for split, folder in splits
               for pair in _imagefolder_split(folder, prompt, boundary or folder)]
    return _write_split_pairs(entries, len(splits) == 2, out_root, concept, params, test_fraction,
                              seed, overwrite,
                              lambda split, name: f"import:imagefolder:{split}/{name}")


def _write_split_pairs(entries: list[tuple[str, tuple[str, Path, Path, str]]], keep_splits: bool,
                       out_root: Path, concept: str | None, params: dict, test_fraction: float,
                       seed: int, overwrite: bool, origin) -> PairDataset:
    """Write (split, (name, source, edited, prompt)) entries as an imported dataset: ids follow
    the file names (a name reused by train and test gets a -2 suffix on the test side), the
    splits are kept (`keep_splits`) or drawn, and the dataset prompt is the commonest one."""
    ids = unique_pair_ids(Path(name).stem for _, (name, *_) in entries)
    if keep_splits:
        splits = {pair_id: split for pair_id, (split, _) in zip(ids, entries)}
    else:
        splits = assign_splits(ids, test_fraction, seed)
    prompt_counts = Counter(prompt for _, (_, _, _, prompt) in entries)
    common_prompts = [prompt for prompt, _ in prompt_counts.most_common(MAX_DATASET_PROMPTS)]
    info = DatasetInfo(concept=concept or out_root.name, prompt=common_prompts[0],
                       prompts=common_prompts, teacher=IMPORTED_TEACHER, teacher_params=params)
    with atomic_dataset_writer(out_root, info, overwrite=overwrite) as writer:
        for pair_id, (split, (name, source, edited, prompt)) in zip(ids, entries):
            writer.add(pair_id, load_image(source), load_image(edited), prompt=prompt,
                       split=splits[pair_id], origin=origin(split, name))
    return PairDataset.open(out_root)


@_refusal_leaves_nothing
def import_img2img_turbo(
    root: str | os.PathLike,
    out_root: str | os.PathLike,
    concept: str | None = None,
    test_fraction: float = 0.1,
    seed: int = 0,
    overwrite: bool = False,
) -> PairDataset:
    """Import an img2img-turbo paired dataset, keeping its train/test split and per-pair prompts.

    The dataset prompt is the commonest prompt. When the layout has no test_A/test_B, a test split
    is drawn with `test_fraction` and `seed` (they are unused otherwise). The concept defaults to
    out_root's folder name.
    """
    root, out_root = Path(root), Path(out_root)
    if not root.is_dir():
        raise E2GANError(f"img2img-turbo dataset folder not found: {root}")
    entries = [("train", pair) for pair in _turbo_split(root, "train")]
    has_test = (root / "test_A").exists() or (root / "test_B").exists() or (root / "test_prompts.json").exists()
    if has_test:
        entries += [("test", pair) for pair in _turbo_split(root, "test")]
    return _write_split_pairs(entries, has_test, out_root, concept,
                              {"format": "img2img-turbo", "root": str(root)}, test_fraction, seed,
                              overwrite, lambda split, name: f"import:img2img-turbo:{split}_A/{name}")


# (source, edited) folder names a zip of two folders may use, compared case-insensitively.
FOLDER_PAIRS = (("source", "edited"), ("a", "b"), ("before", "after"), ("input", "output"),
                ("original", "edited"))


def _unpack(archive_path: Path, target: Path) -> None:
    """Unpack a zip's files into `target`: members that would land outside it are refused, and
    each member is read through the same size limit as zip sources (`_read_member`)."""
    try:
        with zipfile.ZipFile(archive_path) as archive:
            members = archive.infolist()
            MAX_ARCHIVE_FILES.check(len(members), f"zip file {archive_path.name} holds {len(members):,} files")
            for member in members:
                parts = PurePosixPath(member.filename).parts
                if member.is_dir() or any(part.startswith(".") or part == "__MACOSX" for part in parts):
                    continue
                destination = inside(target, target.joinpath(*parts), f"zip member {member.filename}")
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(_read_member(archive, member.filename,
                                                     f"{archive_path.name}:{member.filename}"))
    except (zipfile.BadZipFile, OSError) as error:
        raise E2GANError(f"cannot read zip file {archive_path.name}: {error}") from None


@_refusal_leaves_nothing
def import_zip(
    archive: str | os.PathLike,
    out_root: str | os.PathLike,
    prompt: str,
    concept: str | None = None,
    test_fraction: float = 0.1,
    seed: int = 0,
    overwrite: bool = False,
) -> PairDataset:
    """Import the pairs in a zip: img2img-turbo's layout (its own prompts; `prompt` unused), an
    imagefolder dataset (its rows' prompts, else `prompt`) or two folders matched by name
    (`FOLDER_PAIRS`, under `prompt`), at the zip's top or inside its one top folder. Anything
    else is an error naming the folders found."""
    archive = Path(archive)
    Path(out_root).parent.mkdir(parents=True, exist_ok=True)  # unpacked beside the new dataset
    with tempfile.TemporaryDirectory(dir=Path(out_root).parent) as scratch:
        root = Path(scratch)
        _unpack(archive, root)
        entries = [path for path in root.iterdir()]
        if len(entries) == 1 and entries[0].is_dir():  # a zipped folder
            root = entries[0]
        folders = {path.name.lower(): path for path in root.iterdir() if path.is_dir()}
        if "train_a" in folders:
            return import_img2img_turbo(root, out_root, concept=concept, test_fraction=test_fraction,
                                        seed=seed, overwrite=overwrite)
        if (root / "train" / "metadata.jsonl").is_file() or (root / "metadata.jsonl").is_file():
            return import_imagefolder(root, out_root, prompt, concept=concept,
                                      test_fraction=test_fraction, seed=seed, overwrite=overwrite)
        for source_name, edited_name in FOLDER_PAIRS:
            if source_name in folders and edited_name in folders:
                return import_folders(folders[source_name], folders[edited_name], prompt, out_root,
                                      test_fraction=test_fraction, seed=seed, concept=concept,
                                      overwrite=overwrite)
        found = (f"folders {sorted(folders)}" if folders else "no folders") + (
            f" in {root.name}/" if root != Path(scratch) else " at its top")
    expected = ", ".join(f"{a}/ + {b}/" for a, b in FOLDER_PAIRS)
    raise E2GANError(f"{archive.name} holds no pairs in a known layout: found {found}; expected "
                     f"img2img-turbo's train_A/ + train_B/ (+ train_prompts.json), an imagefolder "
                     f"dataset (train/metadata.jsonl), or two folders matched by file name: {expected}")

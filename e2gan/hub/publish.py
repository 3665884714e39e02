"""Concept adapters on the Hugging Face Hub: publish one with its model card (and its pairs as a
dataset), (loading one back by its Hub id is `e2gan.hub.adapters`).

    publish_adapter("winter.safetensors", "you/winter", pairs_dataset=pairs)

A published model repo holds the adapter file byte for byte (`<concept>.safetensors`), a
`samples.png` grid (held-out source | teacher | E2GAN where the pairs are at hand, else the
packaged photos | E2GAN) and a README.md model card built with huggingface_hub's `ModelCard`: YAML
metadata (library, tags, license, the base's Hub id where it has one, and under `e2gan:` the
concept, prompt, base sha256 and held-out metrics) and a body that says how to load it.

The pairs go to a dataset repo as the `imagefolder` export (`e2gan.data.export`), files as they
are in one commit: `datasets.load_dataset("you/winter-pairs")` reads them. Not through
`datasets`' own `push_to_hub`: it writes Parquet shards to temporary files that it deletes before
the commit, which works only where the Hub takes every file as LFS/Xet (the real Hub does; the
loopback stand-in the tests push to takes plain files only).

Writing needs a token with write access: the `token` given (the studio's sign-in, a typed one),
else HF_TOKEN or `hf auth login`'s. Without one nothing is sent. Every failure is one
`E2GANError` line, from huggingface_hub's exception types.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from huggingface_hub import (CommitOperationAdd, DatasetCard, DatasetCardData, HfApi, ModelCard,
                             ModelCardData, constants, get_token)
from huggingface_hub.errors import HFValidationError, HfHubHTTPError, RepositoryNotFoundError
from PIL import Image

from e2gan.checkpoint import read_adapter
from e2gan.data.attribution import credits
from e2gan.data.dataset import PairDataset
from e2gan.data.export import export_dataset
from e2gan.data.sources import builtin_photos
from e2gan.data.torch_data import resize_and_center_crop
from e2gan.errors import E2GANError
from e2gan.files import sha256_file
from e2gan.hub.download import first_line, unreachable
from e2gan.inference.pipeline import EditPipeline
from e2gan.paths import REPOSITORY, default_base_dir
from e2gan.evaluation.pictures import contact_sheet, held_out_sheet, sheet_records

SIGN_IN = ("sign in with `hf auth login` (or set HF_TOKEN to an access token with write access), "
           "or with the studio's Sign in button")
# held-out scores a card carries when known, with their column names
METRICS = {"psnr": "PSNR dB", "ssim": "SSIM", "mae": "MAE", "fid": "FID", "kid": "KID"}
SAMPLE_ROWS = 4
SAMPLE_MAX_SIZE = 256
TAGS = ["e2gan", "lora", "image-to-image"]


@dataclass
class Published:
    repo_id: str
    url: str
    commit_url: str
    files: list[str]
    pairs_repo_id: str | None = None
    pairs_url: str | None = None
    card: dict[str, Any] = field(default_factory=dict)  # the card's YAML metadata


def publish_error_message(repo_id: str, error: BaseException) -> str:
    """One line for a failed push, from huggingface_hub's exception types."""
    status = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(error, HFValidationError):
        return (f"{repo_id!r} is not a Hub repo id: give it as user/name (letters, digits, "
                "'-', '_' and '.')")
    if status == 401:
        return f"the Hub did not accept your token (401) for {repo_id}: {SIGN_IN}"
    if status == 403 or isinstance(error, RepositoryNotFoundError):
        return (f"your Hugging Face token may not write to {repo_id} ({status}): use a token with "
                f"write access to {repo_id.split('/')[0]}")
    if isinstance(error, HfHubHTTPError) and status:
        return f"could not publish {repo_id}: the Hub answered {status}: {first_line(error)}"
    if unreachable(error):
        return f"could not reach the Hub ({constants.ENDPOINT}) to publish {repo_id}: check the network"
    return f"could not publish {repo_id}: {first_line(error)}"


@contextmanager
def _talking_to_hub(repo_id: str) -> Iterator[None]:
    """Turns what huggingface_hub raises for the Hub's answers (or its silence) into one line."""
    try:
        yield
    except Exception as error:
        if isinstance(error, (HfHubHTTPError, HFValidationError)) or unreachable(error):
            raise E2GANError(publish_error_message(repo_id, error)) from None
        raise


def publish_adapter(adapter_path: str | os.PathLike, repo_id: str, token: str | None = None,
                    private: bool = False, pairs_dataset: PairDataset | None = None,
                    sample_grid: Image.Image | None = None,
                    base: str | os.PathLike | None = None, base_model: str | None = None,
                    metrics: dict[str, Any] | None = None, pairs_repo_id: str | None = None,
                    samples_from: PairDataset | None = None,
                    license: str = "apache-2.0") -> Published:
    """Push the adapter at `adapter_path` to the model repo `repo_id` (created if missing; a bare
    name goes to the token's account) with a model card and a sample grid; with `pairs_dataset`
    (a `PairDataset`), its pairs go to the dataset repo `pairs_repo_id` (default
    `<repo_id>-pairs`) first, and the card links them.

    `sample_grid` defaults to held-out pairs of `pairs_dataset`, `samples_from` or the dataset the
    adapter was trained on (whichever is at hand) through `base` (default: the shipped base) with
    the adapter: source | teacher | E2GAN; without pairs, the packaged photos | E2GAN. `metrics`
    (held-out PSNR / SSIM / MAE / FID / KID) default to those the adapter's header records.
    `base_model` is the base's Hub id, when it has one (else read from a base in the HF cache).
    """
    adapter_path = Path(adapter_path)
    adapter = read_adapter(adapter_path)  # refuses what is not an e2gan adapter, before the Hub
    token = (token or "").strip() or get_token()
    if not token:
        raise E2GANError(f"no Hugging Face token, so nothing was published: {SIGN_IN}")
    base_dir = Path(base) if base else default_base_dir()
    if sha256_file(base_dir / "model.safetensors") != adapter.metadata["base_sha256"]:
        raise E2GANError(f"{adapter_path} was trained on base {adapter.metadata['base_sha256'][:12]}"
                         f", not on {base_dir}: give the base it was trained on")
    base_model = base_model or _hub_id_of_folder(base_dir)
    photo_credits: list[str] = []  # a grid given by the caller is theirs to credit
    if sample_grid is None:
        sample_grid, photo_credits = make_sample_grid(
            adapter_path, base_dir, pairs_dataset or samples_from or _training_dataset(adapter))
    api = HfApi(token=token)
    with _talking_to_hub(repo_id):
        if "/" not in repo_id:
            repo_id = f"{api.whoami()['name']}/{repo_id}"
        pairs_url = None
        pairs_repo_id = None if pairs_dataset is None else pairs_repo_id or f"{repo_id}-pairs"
        if pairs_repo_id:
            pairs_url = _publish_pairs(api, pairs_dataset, pairs_repo_id, repo_id, private, license)
        url = str(_create_repo(api, repo_id, "model", private))
        card = model_card(adapter, adapter_path, repo_id, base_dir, base_model,
                          metrics or _recorded_metrics(adapter.metadata), pairs_repo_id, license,
                          photo_credits)
        files = {f"{adapter.concept}.safetensors": adapter_path, "samples.png": _png(sample_grid),
                 "README.md": str(card).encode()}
        commit = _commit(api, repo_id, "model", files, f"Publish the {adapter.concept} adapter")
    return Published(repo_id, url, commit.commit_url, sorted(files), pairs_repo_id, pairs_url,
                     card.data.to_dict())


def _create_repo(api, repo_id: str, repo_type: str, private: bool):
    url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    if private and not api.repo_info(repo_id, repo_type=repo_type).private:
        raise E2GANError(f"{repo_id} already exists on the Hub and is public: make it private in "
                         "its settings first, or publish under another name")
    return url


def _commit(api, repo_id: str, repo_type: str, files: dict[str, Path | bytes], message: str):
    """One commit of every file: huggingface_hub asks the Hub which go as LFS/Xet."""
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=content if isinstance(
        content, bytes) else str(content)) for name, content in files.items()]
    return api.create_commit(repo_id, operations, commit_message=message, repo_type=repo_type)


def _publish_pairs(api, dataset, repo_id: str, model_repo_id: str, private: bool,
                   license: str) -> str:
    """The pairs as a dataset repo: the imagefolder export with a card; returns its URL."""
    url = str(_create_repo(api, repo_id, "dataset", private))
    with tempfile.TemporaryDirectory(prefix="e2gan-pairs-") as scratch:
        folder = Path(scratch) / "pairs"
        export_dataset(dataset, folder)
        data = DatasetCardData(license=license, task_categories=["image-to-image"],
                               tags=["e2gan", "image-editing"],
                               pretty_name=f"{dataset.info.concept} pairs")
        body = (folder / "README.md").read_text(encoding="utf-8")
        body += (f"\nFrom the Hub: `load_dataset(\"{repo_id}\")`. The concept adapter distilled "
                 f"from these pairs: [{model_repo_id}]({api.endpoint}/{model_repo_id}).\n")
        card = DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
        files: dict[str, Path | bytes] = {p.relative_to(folder).as_posix(): p
                                          for p in sorted(folder.rglob("*")) if p.is_file()}
        files["README.md"] = str(card).encode()
        _commit(api, repo_id, "dataset", files, f"Publish the {dataset.info.concept} pairs")
    return url


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _hub_id_of_folder(folder: Path) -> str | None:
    """`org/name` for a folder inside the Hugging Face cache (`models--org--name/snapshots/...`)."""
    for part in Path(folder).resolve().parts:
        if part.startswith("models--") and part.count("--") >= 2:
            return part.removeprefix("models--").replace("--", "/", 1)
    return None


def _training_dataset(adapter) -> PairDataset | None:
    """The pairs the adapter was trained on, when they are still on this machine."""
    folder = adapter.metadata.get("training", {}).get("dataset")
    if folder and (Path(folder) / "dataset.json").is_file():
        return PairDataset.open(folder)
    return None


def _recorded_metrics(metadata: dict[str, Any]) -> dict[str, Any]:
    return metadata.get("metrics") or metadata.get("training", {}).get("metrics") or {}


def make_sample_grid(adapter_path: Path, base_dir: Path,
                     dataset: PairDataset | None = None) -> tuple[Image.Image, list[str]]:
    """Rows of held-out (else training) pairs: source | teacher | E2GAN, at the adapter's training
    size (up to 256 px); without a dataset, the packaged photos | E2GAN. With it, the credits of
    the built-in photos it shows (their licences ask for attribution wherever they appear)."""
    settings = read_adapter(adapter_path).metadata.get("training", {}).get("settings", {})
    size = min(int(settings.get("size") or 128), SAMPLE_MAX_SIZE)
    pipeline = EditPipeline.from_pretrained(base_dir, device="cpu")
    name = pipeline.load_adapter(adapter_path)  # refuses an adapter of another base
    prompt = pipeline.adapters[name].prompt
    maker = ("E2GAN", lambda images: pipeline(images, prompt))
    if dataset is None or not len(dataset.split("test") or dataset.split("train")):
        source = builtin_photos(SAMPLE_ROWS, size=max(size, 64))
        photos = [resize_and_center_crop(image, size) for _, image in source]
        return (contact_sheet(photos, [], size, [maker]),
                credits(source.origin(source_id) for source_id in source.ids))
    shown = sheet_records(dataset, SAMPLE_ROWS)
    return (held_out_sheet(dataset, size, [("teacher", None), maker], SAMPLE_ROWS),
            credits(record.origin for record in shown))


def model_card(adapter, adapter_path: Path, repo_id: str, base_dir: Path, base_model: str | None,
               metrics: dict[str, Any], pairs_repo_id: str | None, license: str,
               photo_credits: Sequence[str] = ()):
    """The README.md of a published adapter (huggingface_hub's `ModelCard`); `photo_credits`
    name the photos samples.png shows that ask for attribution."""
    meta, training = adapter.metadata, adapter.metadata.get("training", {})
    scores = {k: float(metrics[k]) for k in METRICS if isinstance(metrics.get(k), (int, float))
              and not isinstance(metrics[k], bool) and math.isfinite(metrics[k])}
    held_out = {"held_out_pairs": metrics["pairs"]} if scores and "pairs" in metrics else {}
    file_name = f"{adapter.concept}.safetensors"
    shipped = base_dir.resolve() == (REPOSITORY / "checkpoints" / "base").resolve()
    base_name = base_model or ("E2GAN Studio's shipped base" if shipped else base_dir.name)
    data = ModelCardData(
        library_name="e2gan", license=license, pipeline_tag="image-to-image", tags=TAGS,
        base_model=base_model, datasets=[pairs_repo_id] if pairs_repo_id else None,
        e2gan={"concept": adapter.concept, "prompt": adapter.prompt, "adapter_file": file_name,
               "adapter_sha256": sha256_file(adapter_path), "base_name": base_name,
               "base_sha256": meta["base_sha256"], "base_arch": meta["base_arch"],
               "text_encoder": meta["text_encoder"].get("name"),
               "trainable_parameters": meta.get("trainable_parameters"),
               **({"metrics": {**scores, **held_out}} if scores else {})})
    if shipped:  # in the E2GAN Studio repository
        base_shell, base_python = "checkpoints/base", '"checkpoints/base"'
    elif base_model:
        base_shell, base_python = (f'"$(hf download {base_model})"',
                                   f'snapshot_download("{base_model}")')
    else:
        base_shell, base_python = "path/to/base", '"path/to/base"'
    lines = [
        f"# {adapter.concept}: an E2GAN concept adapter", "",
        f"A LoRA adapter ({adapter_path.stat().st_size / 1024:.0f} KB) that teaches the E2GAN base "
        f"generator the edit *{adapter.prompt}*: a tiny GAN distilled from a diffusion editor's "
        "edits (E2GAN, Gong et al., ICML 2024), made with E2GAN Studio (the `e2gan` package).", "",
        "![source | teacher | E2GAN](samples.png)", "",
        "*Each row: a photo, the teacher's edit where pairs were at hand, this adapter's edit.*", ""]
    if photo_credits:
        lines += ["Photos in samples.png (cropped, and edited by the teacher and this adapter): "
                  + "; ".join(photo_credits) + ".", ""]
    if scores:
        on = f" on {metrics['pairs']} held-out pairs" if held_out else " on held-out pairs"
        lines += ["## Scores against the teacher", "",
                  f"This adapter's edits against the teacher's{on} (higher PSNR and SSIM, lower "
                  "MAE, FID and KID are closer to the teacher):", "",
                  "| " + " | ".join(METRICS[k] for k in scores) + " |",
                  "|" + "---|" * len(scores),
                  "| " + " | ".join(f"{v:.4g}" for v in scores.values()) + " |", ""]
    lines += [
        "## Base model", "",
        f"It runs on one base generator only: {base_name}, whose `model.safetensors` has sha256 "
        f"`{meta['base_sha256']}` (`e2gan adapter info` shows it); loading it onto another base "
        "is refused.", "",
        "## Use it", "",
        "```bash",
        f"e2gan edit --model {base_shell} --adapter {repo_id} --image photo.jpg --out edited.png",
        "```", "",
        "```python",
        "from PIL import Image",
        *(["from huggingface_hub import snapshot_download"] if base_python.startswith("snap") else []),
        "from e2gan.inference.pipeline import EditPipeline", "",
        f"pipeline = EditPipeline.from_pretrained({base_python})",
        f'pipeline.load_adapter("{repo_id}")  # fetched once into the Hugging Face cache',
        f'edited = pipeline([Image.open("photo.jpg")], {adapter.prompt!r})[0]',
        "```", "",
        f"Or fetch the file alone: `hf download {repo_id} {file_name}`.", ""]
    if training:
        summary = {"pairs": training.get("pairs"), "steps": training.get("steps"),
                   "size": training.get("settings", {}).get("size"),
                   "seconds": training.get("seconds"), "hardware": training.get("hardware")}
        lines += ["## Training", "",
                  ", ".join(f"{k}: {v}" for k, v in summary.items() if v is not None) + ".", ""]
    if pairs_repo_id:
        lines += [f"The pairs it learned from: [{pairs_repo_id}]({constants.ENDPOINT}/datasets/"
                  f"{pairs_repo_id}).", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))

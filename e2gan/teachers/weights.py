"""Where a diffusion teacher's weights come from: a local folder or the local Hugging Face cache.

Nothing is downloaded unless the caller passes `allow_download=True` and the environment allows
it (`HF_HUB_OFFLINE` unset); otherwise a model that is not on this machine is an `E2GANError`
that names the repository and the command that fetches it. Looking the files up ourselves with
`local_files_only` is what keeps an offline machine from waiting on network timeouts. A download
goes through `e2gan.hub.download` (progress, cancel, one-line errors) into the normal Hugging Face cache.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from e2gan.errors import E2GANError
from e2gan.hub.download import (ProgressCallback, cache_dir, cached_snapshot, download_snapshot,
                       fetch_command, offline)

# What a diffusers pipeline needs from a repository: configs, tokenizer files and safetensors
# weights in the component subfolders. Leaving out the root-level single-file checkpoints, .bin
# duplicates and fp16/EMA variants keeps a Stable Diffusion download at ~2-5 GB instead of ~20.
ALLOW_PATTERNS = ["model_index.json", "config.json", "diffusion_pytorch_model.safetensors",
                  "*/*.json", "*/*.txt", "*/*.safetensors", "*/*.model"]
IGNORE_PATTERNS = ["*fp16*", "*non_ema*", "*ema-only*", "*.ckpt", "*pruned*"]

_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def _looks_like_path(model: str) -> bool:
    return (model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") != 1
            or not _REPO_ID.fullmatch(model))


def _check_folder(folder: Path, model: str) -> Path:
    """A folder must hold a diffusers pipeline (model_index.json) or one model (config.json) with
    a weights file; an interrupted download or a wrong path fails here, in one line."""
    if (folder / "model_index.json").is_file():
        import json

        try:
            index = json.loads((folder / "model_index.json").read_text())
        except (OSError, ValueError) as error:
            raise E2GANError(f"cannot read {folder / 'model_index.json'}: {error}") from None
        for component, value in index.items():
            weighted = component in ("unet", "vae", "text_encoder", "controlnet", "transformer")
            if weighted and isinstance(value, list) and value[0] is not None:
                if not any(p.suffix in WEIGHT_SUFFIXES for p in (folder / component).glob("*")):
                    raise E2GANError(
                        f"model {model} at {folder} has no weights for its {component!r}; the "
                        "download is incomplete or the folder was trimmed — fetch it again")
        return folder
    if (folder / "config.json").is_file():
        if not any(p.suffix in WEIGHT_SUFFIXES for p in folder.glob("*")):
            raise E2GANError(f"model {model} at {folder} has a config.json but no weights file")
        return folder
    raise E2GANError(f"{folder} is not a diffusers model folder (no model_index.json or config.json)")


def resolve_model_folder(model: str, allow_download: bool = False,
                         parts: tuple[str, ...] = (), *,
                         on_progress: ProgressCallback | None = None,
                         should_stop: Callable[[], bool] | None = None) -> Path:
    """The local folder of `model`: a folder path as given, or the snapshot of Hugging Face repo
    `model` in the local cache (downloaded first only when `allow_download` and online, with
    `on_progress` and `should_stop` as in `e2gan.hub.download.download_snapshot`).

    `parts` limits the need to those subfolders of a pipeline (e.g. ('text_encoder',
    'tokenizer')); the first is checked for weights."""
    if not model or not isinstance(model, str):
        raise E2GANError("no model given: pass a local folder or a Hugging Face repo id")
    path = Path(model).expanduser()
    if path.is_dir():
        _check_folder(path / parts[0] if parts else path, model)
        return path
    if path.exists():
        raise E2GANError(f"model path {model} is a file; give the pipeline's folder")
    if _looks_like_path(model):
        raise E2GANError(f"model folder not found: {model} (nor is it a Hugging Face repo id "
                         "like 'org/name')")
    patterns = [f"{part}/*" for part in parts] + ["model_index.json"] if parts else ALLOW_PATTERNS
    folder = cached_snapshot(model, patterns, IGNORE_PATTERNS)
    if folder is None:
        if not allow_download:
            raise E2GANError(
                f"model {model} is not on this machine (not in the Hugging Face cache "
                f"{cache_dir()}); fetch it where the network allows with {fetch_command(model)}, "
                "pass a local folder, or allow downloading (--allow-download)")
        if offline():
            raise E2GANError(f"model {model} is not cached and HF_HUB_OFFLINE is set, so it cannot "
                             f"be downloaded; fetch it with {fetch_command(model)} elsewhere")
        folder = download_snapshot(model, allow_patterns=patterns, ignore_patterns=IGNORE_PATTERNS,
                                   on_progress=on_progress, should_stop=should_stop)
        if folder is None:
            raise E2GANError(f"model {model} on the Hub has no diffusers files ({', '.join(patterns)})")
    _check_folder(folder / parts[0] if parts else folder, model)
    return folder


def weights_present(model: str, parts: tuple[str, ...] = ()) -> tuple[bool, str]:
    """Whether `model` can be loaded without the network, and if not, why (one line)."""
    try:
        folder = resolve_model_folder(model, allow_download=False, parts=parts)
    except E2GANError as error:
        return False, str(error)
    return True, str(folder)

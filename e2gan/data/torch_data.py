"""The training view of a paired dataset: aligned, cropped tensors in [-1, 1].

Datasets here are small (a few hundred to a few thousand pairs), so each image is decoded and
resized once and kept in memory as uint8 (256x256x3 is 192 KB; 1000 pairs is under 400 MB). With
a DataLoader, use ``num_workers=0`` or each worker process builds its own cache.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from e2gan.data.dataset import PairDataset, PairRecord
from e2gan.errors import E2GANError
from e2gan.files import to_rgb


def resize_and_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Scale so the shorter side is `size` (PIL's resize antialiases when shrinking), then crop the centre."""
    width, height = image.size
    scale = size / min(width, height)
    new_width, new_height = max(size, round(width * scale)), max(size, round(height * scale))
    if (new_width, new_height) != (width, height):
        image = image.resize((new_width, new_height), Image.Resampling.BICUBIC)
    left, top = (new_width - size) // 2, (new_height - size) // 2
    return image.crop((left, top, left + size, top + size))


def _to_uint8_tensor(image: Image.Image) -> torch.Tensor:
    """HxWx3 PIL image -> 3xHxW uint8 tensor."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def _uint8_to_unit_range(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.float().div(127.5).sub(1.0)


def image_to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """A PIL image as a 3 x size x size float tensor in [-1, 1] (shorter side resized, centre crop)."""
    return _uint8_to_unit_range(_to_uint8_tensor(resize_and_center_crop(to_rgb(image), size)))


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """A 3xHxW (or 1x3xHxW) tensor in [-1, 1] as an RGB PIL image; values outside are clamped."""
    tensor = tensor.detach()
    if tensor.dim() == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {tensor.shape[0]}")
        tensor = tensor[0]
    if tensor.dim() != 3 or tensor.shape[0] != 3:
        raise ValueError(f"expected a 3xHxW tensor, got shape {tuple(tensor.shape)}")
    pixels = tensor.float().clamp(-1.0, 1.0).add(1.0).mul(127.5).round().to(torch.uint8)
    return Image.fromarray(pixels.permute(1, 2, 0).cpu().numpy())


class PairTensorDataset(Dataset):
    """Items are ``dict(source=3xSxS, edited=3xSxS, prompt=str, id=str)``, tensors in [-1, 1].

    `split` selects "train" or "test" (None: all pairs); `ids` narrows further (e.g. a curated
    subset). With `augment`, a horizontal flip is applied to both images of a pair or to neither,
    drawn from torch's generator so `torch.manual_seed` and DataLoader seeding make it repeatable.
    """

    def __init__(
        self,
        dataset: PairDataset,
        split: str | None,
        size: int,
        augment: bool,
        ids: list[str] | None = None,
    ) -> None:
        if size < 1:
            raise E2GANError(f"image size must be positive, got {size}")
        records = dataset.records if split is None else dataset.split(split)
        if ids is not None:
            known = {record.id for record in dataset.records}
            unknown = [pair_id for pair_id in ids if pair_id not in known]
            if unknown:
                raise E2GANError(f"{len(unknown)} id(s) not in dataset {dataset.root}: {', '.join(unknown[:5])}")
            wanted = set(ids)
            records = [record for record in records if record.id in wanted]
        if not records:
            which = f"split {split!r}" if split is not None else "selection"
            raise E2GANError(f"dataset {dataset.root} has no pairs in the {which}" + (" of the given ids" if ids else ""))
        self.dataset = dataset
        self.records: list[PairRecord] = records
        self.size = size
        self.augment = augment
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.records)

    def _decoded(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        cached = self._cache.get(index)
        if cached is None:
            source, edited = self.dataset.load_pair(self.records[index])
            if edited.size != source.size:
                # Imported pairs may differ in size; giving the edit the source's geometry first
                # makes one crop cut the same region out of both.
                edited = edited.resize(source.size, Image.Resampling.BICUBIC)
            cached = (
                _to_uint8_tensor(resize_and_center_crop(source, self.size)),
                _to_uint8_tensor(resize_and_center_crop(edited, self.size)),
            )
            self._cache[index] = cached
        return cached

    def preload(self, threads: int = 1) -> None:
        """Decode every pair now, on `threads` threads: a bad image surfaces before training
        starts, and a large dataset's first epoch is not spent decoding on the training thread
        (a base's 12,800 pairs at 256 px are 25,600 PNG decodes). PIL decodes and resizes with
        the GIL released, so threads scale."""
        if threads <= 1:
            for index in range(len(self)):
                self._decoded(index)
            return
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(self._decoded, range(len(self))))

    def __getitem__(self, index: int) -> dict[str, object]:
        source, edited = self._decoded(index)
        if self.augment and bool(torch.rand(()) < 0.5):
            source, edited = source.flip(-1), edited.flip(-1)
        record = self.records[index]
        return {
            "source": _uint8_to_unit_range(source),
            "edited": _uint8_to_unit_range(edited),
            "prompt": record.prompt,
            "id": record.id,
        }


IDENTITY_PROMPT = "the same photo, unedited"


class IdentityPairs(Dataset):
    """Pairs whose edit is the source itself, under IDENTITY_PROMPT, drawn evenly from the
    sources of `pairs`: `length` of them.

    A base that also learns to leave a photo alone has a known "no edit" point among its concept
    tables. A new concept's tokens can start there (training.concept_start), so a short fine-tune
    begins from the photo rather than from another concept's colours; CycleGAN's identity loss
    plays the same anchoring role.
    """

    def __init__(self, pairs: Dataset, length: int) -> None:
        if not 1 <= length <= len(pairs):
            raise E2GANError(f"identity pairs: asked for {length} from {len(pairs)} sources")
        self.pairs = pairs
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, object]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        item = self.pairs[index * len(self.pairs) // self.length]
        return {"source": item["source"], "edited": item["source"], "prompt": IDENTITY_PROMPT,
                "id": f"identity:{item['id']}"}

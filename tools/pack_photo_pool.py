"""Write the base's training photo pool small enough to travel with the repository to a GPU host.

    python tools/pack_photo_pool.py OUT [--data ../shared/data] [--quality 75] [--short-side 512]

A lent GPU machine gets the repository and at most 64 MiB in all, and cannot reach the photos
(`../shared/data`, the Debian wallpapers under /usr/share). This writes the pool as
`e2gan photo-pool` lists it (training parts only: no judging photo and no held-out built-in photo
is ever written) in the layout the pool reads:

    OUT/data/scenes/train_*.webp, val_*.webp    BSDS500 training photos, at their own size
    OUT/data/faces/face_*.webp                  the 1,245 training faces, 128 px
    OUT/wallpapers/<package path>               the photographic wallpapers, JPEG, the short side
                                                shrunk to --short-side (a training crop covers at
                                                least half the short side, so 512 keeps 256 px
                                                crops from being upscaled)

re-encoded lossy (WebP, JPEG for the wallpapers, whose package paths name .jpg files). Then
`E2GAN_PHOTO_DATA=OUT/data E2GAN_WALLPAPER_ROOT=OUT/wallpapers` makes `pool:all` list the same
photos in the same order, which this tool checks before it reports. The packaged photos
(scikit-image, scikit-learn) come with those packages and are not written. The last line of
output is a JSON summary: photos, bytes, the pool's photo ids.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))
DEVICE_LIMIT = 64 * 2**20  # what one call of the GPU host takes: the repository and the carried files

from e2gan.data.photo_pool import (PoolPhoto, default_data_dir, default_wallpaper_root,  # noqa: E402
                                   photo_pool)
from e2gan.files import to_rgb  # noqa: E402


def pack(pool_photos: list[PoolPhoto], data_dir: Path, wallpaper_root: Path, out: Path,
         quality: int, short_side: int) -> int:
    """Write each file photo of the pool under `out`; returns the bytes written."""
    written = 0
    for photo in pool_photos:
        if photo.path is None:  # a packaged photo: the device has scikit-image and scikit-learn
            continue
        with Image.open(photo.path) as opened:
            image = to_rgb(opened, name=str(photo.path))
        if photo.path.resolve().is_relative_to(data_dir):
            target = out / "data" / photo.domain / (photo.path.stem + ".webp")
            target.parent.mkdir(parents=True, exist_ok=True)
            image.save(target, "WEBP", quality=quality, method=6)
        else:
            target = out / "wallpapers" / photo.path.resolve().relative_to(wallpaper_root)
            scale = short_side / min(image.size)
            if scale < 1:
                image = image.resize((round(image.width * scale), round(image.height * scale)),
                                     Image.Resampling.LANCZOS)
            target.parent.mkdir(parents=True, exist_ok=True)
            image.save(target, "JPEG", quality=quality + 5, optimize=True)
        written += target.stat().st_size
    return written


def tracked_bytes() -> int | None:
    """The repository's tracked files, which travel to the GPU host beside the pool."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPOSITORY, capture_output=True,
                                check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        return None
    return sum((REPOSITORY / name).stat().st_size for name in listed
               if name and (REPOSITORY / name).is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=None,
                        help="benchmark photos folder (default: $E2GAN_PHOTO_DATA, else ../shared/data)")
    parser.add_argument("--wallpaper-root", type=Path, default=None,
                        help="where the wallpaper packages installed (default: $E2GAN_WALLPAPER_ROOT, else /usr/share)")
    parser.add_argument("--quality", type=int, default=70, help="WebP quality (wallpapers: JPEG at this + 5)")
    parser.add_argument("--short-side", type=int, default=512)
    args = parser.parse_args()
    if not 1 <= args.quality <= 90:
        parser.error(f"--quality must lie between 1 and 90, got {args.quality}")
    if args.short_side < 256:
        parser.error(f"--short-side must be at least 256 (the base's largest crops), got {args.short_side}")
    pool = photo_pool("all", data_dir=args.data, wallpaper_root=args.wallpaper_root)
    data_dir = args.data or default_data_dir()
    wallpaper_root = args.wallpaper_root or default_wallpaper_root()
    partial = args.out.with_name(args.out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    written = pack(pool.photos, data_dir.resolve(), wallpaper_root.resolve(), partial,
                   args.quality, args.short_side)
    packed = photo_pool("all", data_dir=partial / "data", wallpaper_root=partial / "wallpapers")
    ids, packed_ids = [p.id for p in pool.photos], [p.id for p in packed.photos]
    if packed_ids != ids:
        missing, extra = sorted(set(ids) - set(packed_ids)), sorted(set(packed_ids) - set(ids))
        raise SystemExit(f"the packed pool lists other photos: missing {missing[:5]}, extra {extra[:5]}")
    repository = tracked_bytes()
    travels = None if repository is None else repository + written
    if travels is not None and travels > DEVICE_LIMIT:
        print(f"warning: the repository ({repository / 2**20:.1f} MiB) and this pool "
              f"({written / 2**20:.1f} MiB) are over the GPU host's {DEVICE_LIMIT // 2**20} MiB: "
              "lower --quality", file=sys.stderr)
    summary = {"out": str(args.out), "photos": packed.counts(), "bytes": written,
               "with_repository_mib": travels and round(travels / 2**20, 1),
               "quality": args.quality, "short_side": args.short_side,
               "sources": [{"name": s.name, "count": s.count} for s in packed.sources],
               "ids": ids}
    (partial / "pool.json").write_text(json.dumps(summary, indent=1) + "\n")
    shutil.rmtree(args.out, ignore_errors=True)
    partial.rename(args.out)
    print(json.dumps({k: v for k, v in summary.items() if k != "ids"}))


if __name__ == "__main__":
    main()

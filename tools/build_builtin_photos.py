"""Build e2gan/data/photos/, the studio's built-in photos, from installed packages.

    .venv/bin/python tools/build_builtin_photos.py [--root /usr/share] [--out e2gan/data/photos]

Reads 37 photographic wallpapers from four Debian packages (`make base-photos` installs them)
and 6 colour photos from the scikit-image and scikit-learn wheels, shrinks each so its shorter
side is at most SHORT_SIDE px (JPEG quality QUALITY, no metadata) and writes them with
`attribution.json` (per photo: file, title, author, licence and its URL, where it came from, the
original's size, "resized from the original", and whether it is held out for judging), a
README.md made from it, and the licence texts that GPL-2 and LGPL-3 require to travel with the
work (LICENSES/). The Creative Commons licences are given by their URL, which they allow.

Only photos whose terms are stated and allow redistribution with changes are listed. Left out:
scikit-image's stereo motorcycle (the Middlebury 2014 stereo benchmark; no licence stated), every
drawn, rendered or abstract wallpaper of these packages, and everything in the benchmark data
folder (research use only). Rerunning it on the same packages gives the same files.

HELD_OUT names the photos whose crops are only ever judged on (the built-in source's test split,
see e2gan/data/sources.py): one in five, spread over the packages and the kinds of picture.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPOSITORY = Path(__file__).resolve().parents[1]
SHORT_SIDE = 448
QUALITY = 87
COMMON_LICENSES = Path("/usr/share/common-licenses")

LICENCE_URLS = {
    "GPL-2.0-or-later": "https://www.gnu.org/licenses/old-licenses/gpl-2.0.html",
    "LGPL-3.0": "https://www.gnu.org/licenses/lgpl-3.0.html",
    "CC-BY-2.0": "https://creativecommons.org/licenses/by/2.0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC-BY-SA-3.0": "https://creativecommons.org/licenses/by-sa/3.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "public-domain": "",
}
# Licence texts that must travel with the work (the GPLs: "give a copy of this License"; LGPL-3
# is a set of additional permissions on top of GPL-3, so both). CC licences accept their URL.
LICENCE_FILES = {"GPL-2.0-or-later": ["GPL-2"], "LGPL-3.0": ["LGPL-3", "GPL-3"]}

# The photos whose crops make the built-in source's test split (never trained on): 9 of 43.
HELD_OUT = {"plasma-EveningGlow", "plasma-ColorfulCups", "mate-Storm", "mate-LadyBird",
            "lomiri-Bridge_by_Sander_Klootwijk", "lomiri-picosdeeuropa_by_Aitzol_Berasategi",
            "lomiri-Wine_by_Jakkub_Mede", "lomiri-Kleiber_by_Lukas_Baubkus", "packaged-coffee"}


@dataclass(frozen=True)
class Photo:
    id: str  # the file's stem, and the photo pool's id for the same photo
    title: str
    author: str
    licence: str
    package: str  # the Debian package that installs the original
    upstream: str  # the project that publishes it
    location: str  # under --root: a file, or a Plasma folder (its largest image is used)
    note: str = ""


_PLASMA_UPSTREAM = "https://invent.kde.org/plasma/plasma-workspace-wallpapers"
_PLASMA_NOTE = ("licence as stated in the wallpaper's metadata.json; the Debian package's "
                "copyright file says GPL-2+ for the package as a whole")
_MATE_UPSTREAM = "https://git.mate-desktop.org/mate-backgrounds/"
_LOMIRI_UPSTREAM = "https://gitlab.com/ubports/development/core/lomiri-wallpapers"


def _plasma(stem: str, title: str, author: str) -> Photo:
    return Photo(f"plasma-{stem}", title, author, "LGPL-3.0",
                 "plasma-workspace-wallpapers", _PLASMA_UPSTREAM, f"wallpapers/{stem}/contents/images", _PLASMA_NOTE)


def _mate(stem: str, author: str) -> Photo:
    return Photo(f"mate-{stem}", re.sub(r"(?<=[a-z])(?=[A-Z])", " ", stem), author,
                 "GPL-2.0-or-later",
                 "mate-backgrounds", _MATE_UPSTREAM, f"backgrounds/mate/nature/{stem}.jpg")


def _lomiri(stem: str, author: str, licence: str, package: str = "lomiri-wallpapers-16.04") -> Photo:
    title = stem.split("_by_")[0].replace("_", " ")
    return Photo(f"lomiri-{stem}", title[:1].upper() + title[1:], author, licence,
                 package, _LOMIRI_UPSTREAM, f"backgrounds/{stem}.jpg")


WALLPAPERS = [
    # plasma-workspace-wallpapers: author and licence from each wallpaper's metadata.json
    _plasma("BytheWater", "By the water", "Maciej Wiklo"),
    _plasma("ColdRipple", "Cold Ripple", "Risto Saukonpää"),
    _plasma("ColorfulCups", "Colorful Cups", "Dmitri Popov"),
    _plasma("DarkestHour", "Darkest Hour", "Risto Saukonpää"),
    _plasma("EveningGlow", "Evening Glow", "Ian Hex"),
    _plasma("FallenLeaf", "Fallen Leaf", "Martin Klapetek"),
    _plasma("Grey", "Grey", "Sigi Sagi"),
    _plasma("Kite", "Kite", "Risto Saukonpää"),
    _plasma("OneStandsOut", "One Stands Out", "Risto Saukonpää"),
    _plasma("Path", "Path", "Risto Saukonpää"),
    _plasma("summer_1am", "summer 1am", "Risto Saukonpää"),
    # mate-backgrounds: /usr/share/doc/mate-backgrounds/copyright, nature/*
    _mate("Aqua", "Charles Barbin"),
    _mate("Blinds", "Lennart Poettering, Andrea Cimitan"),
    _mate("Dune", "Marco Cogoni, Hylke Bons"),
    _mate("FreshFlower", "Jens Ansorg"),
    _mate("Garden", "Charles Barbin"),
    _mate("GreenMeadow", "Timothy Schellhase, Lapo Calamandrei"),
    _mate("LadyBird", "Charles Barbin"),
    _mate("RainDrops", "blackcombwhistler07"),
    _mate("Storm", "Sergey Nazarov"),
    _mate("TwoWings", "Charles Barbin, Hylke Bons"),
    _mate("Wood", "Jean-François Fortin Tam"),
    _mate("YellowFlower", "Charles Barbin"),
    # lomiri-wallpapers: /usr/share/doc/lomiri-wallpapers-16.04/copyright
    _lomiri("Bridge_by_Sander_Klootwijk", "Sander Klootwijk", "CC-BY-SA-4.0"),
    _lomiri("Dragonfly_by_Bolly", "Bolly", "CC-BY-SA-4.0"),
    _lomiri("Picture_0B_by_freespace", "Trevor \"Freespace\"", "CC-BY-4.0"),
    _lomiri("Picture_1A_by_freespace", "Trevor \"Freespace\"", "CC-BY-4.0"),
    _lomiri("Wine_by_Jakkub_Mede", "Jakub Mede", "CC-BY-4.0"),
    _lomiri("aitzgorri_by_Aitzol_Berasategi", "Aitzol Berasategi", "CC-BY-4.0"),
    _lomiri("friends_by_Aitzol_Berasategi", "Aitzol Berasategi", "CC-BY-4.0"),
    _lomiri("free_by_Peter_Nerlich", "Peter Nerlich", "CC-BY-SA-4.0"),
    _lomiri("greentock_by_Peter_Nerlich", "Peter Nerlich", "CC-BY-SA-4.0"),
    _lomiri("life_by_Aitzol_Berasategi", "Aitzol Berasategi", "CC-BY-4.0"),
    _lomiri("picosdeeuropa_by_Aitzol_Berasategi", "Aitzol Berasategi", "CC-BY-4.0"),
    _lomiri("seeding_by_Clements_Engelhardt", "Clemens Engelhardt", "CC0-1.0"),
    _lomiri("sunset_by_Aitzol_Berasategi", "Aitzol Berasategi", "CC-BY-4.0"),
    _lomiri("Kleiber_by_Lukas_Baubkus", "Lukas Baubkus", "CC-BY-SA-3.0", "lomiri-wallpapers-20.04"),
]

_SKIMAGE = "https://github.com/scikit-image/scikit-image (skimage/data, as the scikit-image wheel ships it)"
_SKLEARN = "https://github.com/scikit-learn/scikit-learn (sklearn/datasets/images, as the scikit-learn wheel ships it)"
# (id, title, author, licence, what to load, upstream, note): terms as each package states them
PACKAGED = [
    ("packaged-astronaut", "Astronaut Eileen Collins", "NASA", "public-domain", "skimage.data.astronaut",
     _SKIMAGE, "NASA Great Images database, https://flic.kr/p/r9qvLn; 'No known copyright "
     "restrictions, released into the public domain' (skimage.data.astronaut)"),
    ("packaged-chelsea", "Chelsea the cat", "Stefan van der Walt", "CC0-1.0", "skimage.data.chelsea",
     _SKIMAGE, "'CC0 by the photographer' (skimage.data.chelsea)"),
    ("packaged-coffee", "Coffee cup", "Rachel Michetti (courtesy of Pikolo Espresso Bar)", "CC0-1.0",
     "skimage.data.coffee", _SKIMAGE, "'CC0 by the photographer' (skimage.data.coffee)"),
    ("packaged-rocket", "Launch of DSCOVR on Falcon 9", "SpaceX", "public-domain", "skimage.data.rocket",
     _SKIMAGE, "https://www.flickr.com/photos/spacexphotos/16511594820/, released into the public "
     "domain by SpaceX (skimage.data.rocket)"),
    ("packaged-china", "China (Summer Palace, Beijing)", "danielbuechele (Flickr)", "CC-BY-2.0",
     "sklearn:china.jpg", _SKLEARN, "https://www.flickr.com/photos/danielbuechele/6061409035/ "
     "(sklearn/datasets/images/README.txt)"),
    ("packaged-flower", "Flower", "vultilion (Flickr)", "CC-BY-2.0", "sklearn:flower.jpg", _SKLEARN,
     "https://www.flickr.com/photos/vultilion/6056698931/ (sklearn/datasets/images/README.txt)"),
]
_SIZE_NAME = re.compile(r"^(\d+)x(\d+)$")


def _largest(folder: Path) -> Path:
    """A Plasma wallpaper's biggest rendition (its files are named WIDTHxHEIGHT.jpg)."""
    sized = [(int(m.group(1)) * int(m.group(2)), path) for path in sorted(folder.iterdir())
             if (m := _SIZE_NAME.match(path.stem))]
    if not sized:
        raise SystemExit(f"no WIDTHxHEIGHT images in {folder}")
    return max(sized)[1]


def _load_packaged(what: str) -> Image.Image:
    if what.startswith("sklearn:"):
        from sklearn.datasets import load_sample_image

        return Image.fromarray(load_sample_image(what.split(":", 1)[1]))
    import skimage.data

    return Image.fromarray(np.ascontiguousarray(getattr(skimage.data, what.split(".")[-1])()[..., :3]))


def _shrink(image: Image.Image) -> Image.Image:
    image = image.convert("RGB")
    scale = SHORT_SIDE / min(image.size)
    if scale >= 1:
        return image
    size = (round(image.width * scale), round(image.height * scale))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _readme(entries: list[dict]) -> str:
    lines = ["# The built-in photos", "",
             "Made by `tools/build_builtin_photos.py` from installed Debian packages and the "
             "scikit-image and scikit-learn wheels; every photo is resized from the original "
             f"(shorter side at most {SHORT_SIDE} px, JPEG). `attribution.json` is the machine-"
             "readable form of this list. Photos marked *held out* are only ever judged on: "
             "their crops make the built-in source's test split and are never trained on.", "",
             "The GPL-2+ and LGPL-3 licence texts are in `LICENSES/`; the Creative Commons "
             "licences are linked. Each original, the preferred form for changing it, is in the "
             "package or project named.", "",
             "| file | title | author | licence | from | held out |", "|---|---|---|---|---|---|"]
    for entry in entries:
        licence = entry["licence"]
        licence = f"[{licence}]({entry['licence_url']})" if entry["licence_url"] else licence
        lines.append(f"| {entry['file']} | {entry['title']} | {entry['author']} | {licence} | "
                     f"{entry['source']} | {'yes' if entry['held_out'] else ''} |")
    return "\n".join(lines) + "\n"


def build(root: Path, out: Path) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.jpg"):
        old.unlink()
    entries = []
    for photo in WALLPAPERS:
        location = root / photo.location
        path = _largest(location) if location.is_dir() else location
        if not path.is_file():
            raise SystemExit(f"{path} is missing: install the wallpapers first (make base-photos)")
        with Image.open(path) as opened:
            original = opened.size
            opened.draft("RGB", (original[0] // 2, original[1] // 2))  # still >= 2x SHORT_SIDE
            image = _shrink(opened)
        entries.append(_save(image, out, photo.id, photo.title, photo.author, photo.licence,
                             f"Debian package {photo.package}: /usr/share/{path.relative_to(root)}",
                             photo.upstream,
                             original, photo.note))
    for photo_id, title, author, licence, what, upstream, note in PACKAGED:
        image = _load_packaged(what)
        source = (f"scikit-learn wheel: sklearn/datasets/images/{what.split(':', 1)[1]}"
                  if what.startswith("sklearn:") else f"scikit-image wheel: {what}()")
        entries.append(_save(_shrink(image), out, photo_id, title, author, licence, source,
                             upstream, image.size, note))
    unknown = HELD_OUT - {entry["id"] for entry in entries}
    if unknown:
        raise SystemExit(f"HELD_OUT names photos that are not built: {sorted(unknown)}")
    licences = out / "LICENSES"
    shutil.rmtree(licences, ignore_errors=True)
    licences.mkdir()
    for licence in sorted({entry["licence"] for entry in entries}):
        for name in LICENCE_FILES.get(licence, []):
            shutil.copyfile(COMMON_LICENSES / name, licences / f"{name}.txt")
    manifest = {"about": "The built-in photos: each resized from the original; see README.md.",
                "short_side": SHORT_SIDE, "jpeg_quality": QUALITY, "photos": entries}
    (out / "attribution.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n",
                                          encoding="utf-8")
    (out / "README.md").write_text(_readme(entries), encoding="utf-8")
    return entries


def _save(image: Image.Image, out: Path, photo_id: str, title: str, author: str, licence: str,
          source: str, upstream: str, original: tuple[int, int], note: str) -> dict:
    file = f"{photo_id}.jpg"
    image.save(out / file, "JPEG", quality=QUALITY, optimize=True)
    licence_files = [f"LICENSES/{name}.txt" for name in LICENCE_FILES.get(licence, [])]
    return {"id": photo_id, "file": file, "title": title, "author": author, "licence": licence,
            "licence_url": LICENCE_URLS[licence], "licence_files": licence_files,
            "source": source, "upstream": upstream, "original_size": list(original),
            "size": list(image.size), "changes": "resized from the original", "note": note,
            "held_out": photo_id in HELD_OUT}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("/usr/share"),
                        help="where the Debian packages put their files (default /usr/share)")
    parser.add_argument("--out", type=Path, default=REPOSITORY / "e2gan" / "data" / "photos")
    args = parser.parse_args(argv)
    entries = build(args.root, args.out)
    total = sum(path.stat().st_size for path in args.out.rglob("*") if path.is_file())
    print(f"{len(entries)} photos ({sum(e['held_out'] for e in entries)} held out) in {args.out}: "
          f"{total / 2**20:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

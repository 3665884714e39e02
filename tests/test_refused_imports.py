"""A refused import leaves nothing behind (issue 27): no empty concept folder, no half-written
pairs, no unpacked files, and the upload it came in does not replace the one before it.

Each refusal is compared against a snapshot of the whole folder tree (every path and every
file's bytes) and of the concept list the studio shows, taken before the import.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from PIL import Image

from e2gan.errors import E2GANError


def png(value: int, size=(40, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (value, 255 - value, 90)).save(buffer, "PNG")
    return buffer.getvalue()


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A valid PNG header declaring width x height, with almost no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def zip_of(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return path


def good_pairs(count: int = 6) -> dict[str, bytes]:
    return {**{f"source/{i:02d}.png": png(i * 10) for i in range(count)},
            **{f"edited/{i:02d}.png": png(255 - i * 10) for i in range(count)}}


def not_a_zip(tmp: Path) -> Path:
    (tmp / "broken.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    return tmp / "broken.zip"


def escaping(tmp: Path) -> Path:
    """A member named by an absolute path (`../` parts are skipped like hidden files)."""
    return zip_of(tmp / "escape.zip", {**good_pairs(), str(tmp / "escaped.png"): png(1)})


def wrong_structure(tmp: Path) -> Path:
    return zip_of(tmp / "layout.zip", {"photos/a.png": png(1), "others/a.png": png(2)})


def bomb(tmp: Path) -> Path:
    return zip_of(tmp / "bomb.zip", {**good_pairs(), "source/06.png": bomb_png(),
                                     "edited/06.png": png(3)})


def unmatched(tmp: Path) -> Path:
    return zip_of(tmp / "unmatched.zip", {**good_pairs(), "source/only-here.png": png(4)})


def unreadable_image(tmp: Path) -> Path:
    return zip_of(tmp / "unreadable.zip", {**good_pairs(), "source/06.png": b"not an image",
                                           "edited/06.png": png(3)})


REFUSED = [("bad zip", not_a_zip, "broken.zip"), ("zip escape", escaping, "escaped.png"),
           ("wrong structure", wrong_structure, "no pairs in a known layout"),
           ("bomb", bomb, "E2GAN_MAX_IMAGE_PIXELS"), ("unmatched", unmatched, "only-here"),
           ("unreadable image", unreadable_image, "06.png")]


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under root, with each file's bytes (None for a folder)."""
    return {str(path.relative_to(root)): None if path.is_dir() else path.read_bytes()
            for path in sorted(root.rglob("*"))}


@pytest.fixture
def workspace(tmp_path):
    """A studio workspace that already holds an imported concept and that import's upload."""
    from app import concepts
    from app.workspace import Workspace

    workspace = Workspace.create(tmp_path / "workspaces")
    concepts.import_pairs(workspace, "a teal look", [str(zip_of(tmp_path / "teal.zip", good_pairs()))])
    return workspace


@pytest.mark.parametrize("make_zip, named", [pytest.param(make, named, id=case)
                                             for case, make, named in REFUSED])
@pytest.mark.parametrize("concept", ["a new look", "a teal look"])  # a new concept; re-importing
def test_a_refused_studio_import_leaves_the_workspace_as_it_was(workspace, tmp_path, make_zip,
                                                                named, concept):
    from app import concepts

    archive = make_zip(tmp_path)
    before = tree(workspace.root)
    concepts_before = [folder.name for folder in workspace.concepts()]
    current_before = workspace.current_name()
    with pytest.raises(E2GANError) as refused:
        concepts.import_pairs(workspace, concept, [str(archive)])
    assert named in str(refused.value)
    assert [folder.name for folder in workspace.concepts()] == concepts_before
    assert workspace.current_name() == current_before
    assert tree(workspace.root) == before
    assert not (tmp_path / "escaped.png").exists()


def test_a_refused_import_into_a_fresh_workspace_leaves_only_the_fresh_workspace(tmp_path):
    from app import concepts
    from app.workspace import Workspace

    workspace = Workspace.create(tmp_path / "workspaces")
    before = tree(workspace.root)
    with pytest.raises(E2GANError):
        concepts.import_pairs(workspace, "a new look", [str(bomb(tmp_path))])
    assert tree(workspace.root) == before and workspace.concepts() == []


@pytest.mark.parametrize("make_zip, named", [pytest.param(make, named, id=case)
                                             for case, make, named in REFUSED])
def test_a_refused_engine_import_creates_no_folders(tmp_path, make_zip, named):
    """`import_zip` into a folder that does not exist yet: refused, nothing is created."""
    from e2gan.data.importers import import_zip

    archive = make_zip(tmp_path)
    target = tmp_path / "out" / "concept" / "pairs"
    before = tree(tmp_path)
    with pytest.raises(E2GANError, match=named.replace(".", r"\.")):
        import_zip(archive, target, "a look")
    assert tree(tmp_path) == before

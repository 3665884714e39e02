"""Issue 14's studio cases, table-driven: bad input sent through the public API of a launched
studio (as `make studio` launches it, with `launch_options()`) must come back as one clear error
naming the problem and the limit, fast, and leave the session usable.

The limits are lowered for this module (files per archive, bytes per upload) so the cases stay
small; the pixel limit keeps its default, which the bombs exceed from their header alone.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
import pytest

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from test_hardening_cli import header_only_png  # noqa: E402
from test_studio_api import free_port  # noqa: E402

pytestmark = pytest.mark.slow

UPLOAD_LIMIT = 300_000  # bytes per uploaded file, for this module
ARCHIVE_LIMIT = 40  # files per archive or upload, for this module


@pytest.fixture(scope="module")
def studio(tiny_base, tmp_path_factory):
    from app.studio import build_demo, launch_options

    root = tmp_path_factory.mktemp("workspaces")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("E2GAN_MAX_UPLOAD_BYTES", str(UPLOAD_LIMIT))
        patch.setenv("E2GAN_MAX_ARCHIVE_FILES", str(ARCHIVE_LIMIT))
        demo = build_demo(tiny_base, root)
        port = free_port()
        options = {key: value for key, value in launch_options().items() if key != "favicon_path"}
        demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                    **options)
        yield f"http://127.0.0.1:{port}/", root
        demo.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from e2gan.data.sources import builtin_photos

    folder = tmp_path_factory.mktemp("bad-files")
    photo = folder / "photo.png"
    source = builtin_photos(1, size=64, seed=0)
    source.load(source.ids[0]).save(photo)
    not_an_image = folder / "notes.png"
    not_an_image.write_text("this is text, not a PNG")
    many = folder / "many.zip"
    with zipfile.ZipFile(many, "w") as archive:
        for index in range(ARCHIVE_LIMIT + 1):
            archive.writestr(f"photos/{index:03d}.png", b"")
    big = folder / "big.png"
    big.write_bytes(photo.read_bytes() + b"\0" * UPLOAD_LIMIT)  # valid PNG, trailing bytes
    no_images = folder / "no_images.zip"
    with zipfile.ZipFile(no_images, "w") as archive:
        archive.writestr("readme.txt", "no photos here")
    unmatched = folder / "unmatched.zip"  # a source and an edit that are not each other's
    with zipfile.ZipFile(unmatched, "w") as archive:
        archive.write(photo, "before/0.png")
        archive.write(photo, "after/1.png")
    return {
        "photo": photo,
        "bomb_100mp": header_only_png(folder / "bomb_100mp.png", 10000, 10000),
        "bomb_900mp": header_only_png(folder / "bomb_900mp.png", 30000, 30000),
        "not_an_image": not_an_image,
        "many": many,
        "big": big,
        "no_images": no_images,
        "unmatched": unmatched,
    }


def concept(c, kind="built-in photos", path="", upload=None):
    return c.predict("winter", "builtin", kind, path, upload, 0, 0.75, 7.5, api_name="/concept")


def handle(path: Path):
    return gradio_client.handle_file(str(path))


# (case, call(client, files, workspace root), fragments the error message must contain)
CASES = [
    ("compare a 100 MP bomb",
     lambda c, f, root: c.predict(handle(f["bomb_100mp"]), 1.0, None, api_name="/compare"),
     ["bomb_100mp.png", "100 MP", "40 MP", "E2GAN_MAX_IMAGE_PIXELS"]),
    ("compare a 900 MP bomb (past PIL's own guard)",
     lambda c, f, root: c.predict(handle(f["bomb_900mp"]), 1.0, None, api_name="/compare"),
     ["bomb_900mp.png", "900 MP", "E2GAN_MAX_IMAGE_PIXELS"]),
    ("apply an adapter to a bomb",
     lambda c, f, root: c.predict(handle(f["bomb_100mp"]), "winter", 1.0, api_name="/apply_adapter"),
     ["bomb_100mp.png", "100 MP", "E2GAN_MAX_IMAGE_PIXELS"]),
    ("try the base on a bomb",
     lambda c, f, root: c.predict(handle(f["bomb_900mp"]), "a_pencil_sketch", 1.0, api_name="/edit"),
     ["bomb_900mp.png", "900 MP", "E2GAN_MAX_IMAGE_PIXELS"]),
    ("compare a text file named .png",
     lambda c, f, root: c.predict(handle(f["not_an_image"]), 1.0, None, api_name="/compare"),
     ["cannot read image notes.png: it is not an image file"]),
    ("upload a bomb",
     lambda c, f, root: concept(c, "upload", upload=[handle(f["photo"]), handle(f["bomb_100mp"])]),
     ["1 of 2 uploaded files were refused", "bomb_100mp.png", "E2GAN_MAX_IMAGE_PIXELS"]),
    ("upload a zip with too many files",
     lambda c, f, root: concept(c, "upload", upload=[handle(f["many"])]),
     ["many.zip holds 41 files", "the limit is 40", "E2GAN_MAX_ARCHIVE_FILES"]),
    ("upload too many files",
     lambda c, f, root: concept(c, "upload", upload=[handle(f["photo"])] * (ARCHIVE_LIMIT + 1)),
     ["the upload has 41 files", "E2GAN_MAX_ARCHIVE_FILES"]),
    ("a local path into the workspaces",
     lambda c, f, root: concept(c, "local path", path=str(root)),
     ["inside the studio's workspaces"]),
    ("fine-tune for minus 5 minutes",
     lambda c, f, root: c.predict(-5, 0, 32, 0.003, 0, False, api_name="/finetune"),
     ["training minutes must be positive, got -5"]),
    ("fine-tune for 1e9 minutes",
     lambda c, f, root: c.predict(1e9, 0, 32, 0.003, 0, False, api_name="/finetune"),
     ["1000000000.0 minutes", "E2GAN_MAX_STUDIO_TRAINING_MINUTES"]),
    ("fine-tune for 2.5 epochs",
     lambda c, f, root: c.predict(1.0, 2.5, 32, 0.003, 0, False, api_name="/finetune"),
     ["epochs must be a whole number, got 2.5"]),
    ("fine-tune at rank 100000",
     lambda c, f, root: c.predict(1.0, 0, 32, 0.003, 100000, False, api_name="/finetune"),
     ["100000", "E2GAN_MAX_LORA_RANK"]),  # refused before any work, naming the limit
]


@pytest.mark.parametrize("case, call, fragments", CASES, ids=[case[0] for case in CASES])
def test_bad_input_is_one_clear_error(studio, files, case, call, fragments):
    url, root = studio
    c = gradio_client.Client(url, verbose=False, download_files=False)
    concept(c)  # a session with a concept, so the error comes from the input, not from order
    with pytest.raises(gradio_client.exceptions.AppError) as raised:
        call(c, files, root)
    message = str(raised.value)
    assert all(fragment in message for fragment in fragments), message
    assert "Traceback" not in message
    # The session goes on: its concept is intact and a good photo still compares.
    info, _ = concept(c)
    assert "winter" in info


# (case, call(client, files, workspace root), what the message must still name)
LEAK_CASES = [
    ("upload a text file named .png",  # PIL's message holds Gradio's /tmp/gradio/... copy
     lambda c, f, root: concept(c, "upload", upload=[handle(f["not_an_image"])]), "notes.png"),
    ("upload a zip without images",  # read from the workspace's uploads folder
     lambda c, f, root: concept(c, "upload", upload=[handle(f["no_images"])]), "no_images.zip"),
    ("import unmatched pairs",  # unpacked inside the workspace
     lambda c, f, root: c.predict("a warm grade", [handle(f["unmatched"])], api_name="/import_pairs"),
     "1 only in before"),
    ("a local path into the workspaces",
     lambda c, f, root: concept(c, "local path", path=str(root / "someone" / "photos")),
     "inside the studio's workspaces"),
]


@pytest.mark.parametrize("case, call, named", LEAK_CASES, ids=[case[0] for case in LEAK_CASES])
def test_messages_name_files_never_server_folders(studio, files, case, call, named):
    """Issue 27: an upload error showed Gradio's /tmp/gradio/... path and an import refusal the
    workspace's; a message names a file by its base name only."""
    import tempfile

    url, root = studio
    c = gradio_client.Client(url, verbose=False, download_files=False)
    with pytest.raises(gradio_client.exceptions.AppError) as raised:
        call(c, files, root)
    message = str(raised.value)
    assert named in message, message
    for folder in ("/tmp/", tempfile.gettempdir(), str(root), str(files["photo"].parent)):
        assert folder not in message, message


def test_a_long_workspace_id_is_not_echoed_back_whole(studio, files):
    url, _ = studio
    c = gradio_client.Client(url, verbose=False, download_files=False)
    with pytest.raises(gradio_client.exceptions.AppError) as raised:
        c.predict("a" * 5000, handle(files["photo"]), 1.0, "", api_name="/apply_concept")
    message = str(raised.value)
    assert "not a workspace id" in message and len(max(message.split(), key=len)) <= 20, message


def test_an_upload_over_the_byte_limit_is_stopped_by_the_server(studio, files):
    url, _ = studio
    c = gradio_client.Client(url, verbose=False, download_files=False)
    with pytest.raises(ValueError, match="big.png exceeds the maximum file size of 300000 bytes"):
        concept(c, "upload", upload=[handle(files["big"])])  # the client reads the server's limit
    # A script that ignores it is stopped by the server, which keeps nothing.
    with files["big"].open("rb") as handle_:
        answer = httpx.post(url + "gradio_api/upload", files={"files": ("big.png", handle_)})
    assert answer.status_code == 413 and "300000" in answer.text, answer.text


def raw_call(url: str, api_name: str, body: str) -> tuple[str, str]:
    """A public endpoint called with a hand-written JSON body (NaN and Infinity are what Python's
    json writes for non-finite floats): the final event and its data."""
    answer = httpx.post(f"{url}gradio_api/call/{api_name}", content=body,
                        headers={"Content-Type": "application/json"})
    answer.raise_for_status()
    event_id = answer.json()["event_id"]
    event, data = "", ""
    with httpx.stream("GET", f"{url}gradio_api/call/{api_name}/{event_id}", timeout=60) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = line.split(":", 1)[1].strip()
                if event in ("complete", "error"):
                    break
    return event, data


RAW_CASES = [
    ("finetune", '{"data": [NaN, 0, 32, 0.003, 0, false]}', "training minutes must be a finite number, got nan"),
    ("finetune", '{"data": [1, NaN, 32, 0.003, 0, false]}', "epochs must be a finite number, got nan"),
    ("finetune", '{"data": [1, 0, 32, Infinity, 0, false]}', "learning rate must be a finite number, got inf"),
    ("finetune", '{"data": [1e9, 0, 32, 0.003, 0, false]}', "E2GAN_MAX_STUDIO_TRAINING_MINUTES"),
    ("concept", '{"data": ["winter", "builtin", "built-in photos", "", null, NaN, 0.75, 7.5, "", ""]}',
     "seed must be a finite number, got nan"),
    ("generate_pairs", '{"data": [NaN]}', "number of pairs must be a finite number, got nan"),
    ("export", '{"data": ["winter", "onnx", Infinity]}', "on-device size must be a finite number, got inf"),
    ("blend", '{"data": ["a", "b", NaN]}', "blend weight must be a finite number, got nan"),
    ("select", '{"data": [NaN, "cluster", "builtin", null, null]}', "pairs to keep must be a finite number, got nan"),
    ("compare", '{"data": [null, NaN, null]}', "strength must be a finite number, got nan"),
]


@pytest.mark.parametrize("api_name, body, fragment", RAW_CASES,
                         ids=[f"{case[0]}-{case[1][9:30]}" for case in RAW_CASES])
def test_non_finite_numbers_in_raw_json_get_a_message(studio, api_name, body, fragment):
    url, _ = studio
    event, data = raw_call(url, api_name, body)
    assert event == "error" and fragment in data, (event, data)


def test_a_bad_upload_is_forgotten_and_a_good_one_after_it_works(studio, files):
    url, root = studio
    c = gradio_client.Client(url, verbose=False, download_files=False)
    with pytest.raises(gradio_client.exceptions.AppError):
        concept(c, "upload", upload=[handle(files["not_an_image"])])
    info, preview = concept(c, "upload", upload=[handle(files["photo"])])
    # the good upload is the source, named without the server's folders
    assert "source `images`" in info and str(root) not in info and len(preview) == 1

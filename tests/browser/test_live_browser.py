"""The Live tab in a real browser: headless Chromium with a fake camera playing a still photo from a
file; the stream starts, edited frames arrive, and what the page shows is the concept's edit of
the camera's picture (EditPipeline's, as the unit tests pin exactly), not the picture itself."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("playwright")
pytest.importorskip("gradio")

from tests.browser.live_page import info_text, launch_chromium, shown_image, write_y4m  # noqa: E402
from tests.browser.studio_pass import chromium_path, free_port  # noqa: E402

WIDTH, HEIGHT = 160, 120  # the camera's frames; edited at their own size (short side < 256)


def _mean_difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())


def _jpeg(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")  # what gradio's postprocess writes for format="jpeg"
    return Image.open(buffer).convert("RGB")


@pytest.mark.slow
@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_the_webcam_streams_through_the_concept_in_the_browser(winter_concept, tiny_base, tmp_path,
                                                               monkeypatch):
    from playwright.sync_api import sync_playwright

    from app import live
    from app.studio import build_demo, launch_options
    from e2gan.data.sources import builtin_photos
    from e2gan.inference.pipeline import EditPipeline

    workspace, folder = winter_concept
    photo = next(iter(builtin_photos(1, size=HEIGHT, seed=3)))[1].convert("RGB").resize((WIDTH, HEIGHT))
    camera = write_y4m(photo, tmp_path / "camera.y4m")
    # Gradio mirrors the webcam (a selfie view) in what it shows and in the frame it sends.
    mirrored = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    reference = EditPipeline.from_pretrained(tiny_base, device="cpu")
    name = reference.load_adapter(folder.adapter_file)
    expected = reference([mirrored], reference.adapters[name].prompt)[0]
    apart = _mean_difference(expected, mirrored)
    assert apart > 10  # the adapter's edit is far from its source: the comparison can tell them apart

    received = []  # (frame, shown) as the server saw and made them
    frame_function = live.live_frame

    def recording(workspace_, frame, *args, **kwargs):
        result = frame_function(workspace_, frame, *args, **kwargs)
        received.append((frame, result[0]))
        return result

    monkeypatch.setattr(live, "live_frame", recording)
    # Frames stay at the camera's size however loaded the machine (the unit tests cover adapting).
    monkeypatch.setattr(live, "FRAME_BUDGET_SECONDS", float("inf"))
    demo = build_demo(tiny_base, workspace.root.parent)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                **launch_options())
    errors = []
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright, camera)
            page = browser.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.set_default_timeout(120_000)  # a loaded machine: guards, not expectations
            page.goto(f"http://127.0.0.1:{port}/?workspace={workspace.id}")
            page.get_by_text("Device").first.wait_for()
            page.get_by_role("tab", name="Live").click()
            box = page.locator("#live-camera")
            box.get_by_text("Click to Access Webcam").click()
            box.locator("button", has_text="Record").click()
            last, deadline = None, time.monotonic() + 300  # a guard, not a speed expectation
            while (len(received) < 3 or last is None) and time.monotonic() < deadline:
                page.wait_for_timeout(200)
                shown = shown_image(page)
                last = shown[1] if shown else last
            text = info_text(page)
            browser.close()
    finally:
        demo.close()

    assert errors == []
    assert len(received) >= 3 and last is not None, f"frames edited: {len(received)}; the line said: {text}"
    assert "winter" in text and f"{WIDTH}×{HEIGHT} px" in text and " fps" in text
    assert received and all(frame.size == (WIDTH, HEIGHT) for frame, _ in received)
    assert last.size == (2 * WIDTH, HEIGHT)  # source | edited
    edited = last.crop((WIDTH, 0, 2 * WIDTH, HEIGHT))
    # The shown picture is one the server made, as Gradio sends it: a JPEG at PIL's quality 75
    # (decoded by Chromium here, by PIL there: a level at most between the two decoders).
    closest = min(_mean_difference(last, _jpeg(made)) for _, made in received)
    assert closest < 1.5
    # Against the edit of the camera file's own picture: the camera's path (its 4:2:0 colour, the
    # page's JPEG of each frame) moves the frame the server gets a few levels (about 6 here), which
    # the generator passes on at about the same size; the JPEG shown is compared as the JPEG of the
    # expected edit. The adapter's edit moves the picture by tens of levels from its source.
    camera_path = _mean_difference(received[-1][0], mirrored)
    to_edit = _mean_difference(edited, _jpeg(expected))
    to_source = _mean_difference(edited, mirrored)
    print(f"camera path {camera_path:.1f}; shown vs the edit {to_edit:.1f}, vs the source "
          f"{to_source:.1f}; the edit vs its source {apart:.1f} (mean levels of 255)")
    assert camera_path < 10
    assert to_edit < 2 * camera_path + 2 and to_edit < to_source / 4

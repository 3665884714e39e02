"""The Live tab in headless Chromium with a fake camera fed from a file. Used by the browser test
(tiny base) and, run as a script, to measure the frames per second a page gets end to end with the
shipped base (or any base folder):

    python -m tests.browser.live_page --seconds 30 --size 256

The script starts the studio on a free port, makes a camera file from a built-in photo (640x480,
so frames are edited at the short side asked for), opens the Live tab on a workspace with no
adapter and streams through the base model's first concept; it prints the fps the page shows and
the rate at which the server edited frames for the page (each frame is sent once the last one
came back, so that is the page's rate).
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from playwright.sync_api import Error as PlaywrightError

from tests.browser.studio_pass import chromium_path, free_port


def write_y4m(image: Image.Image, path: Path, frames: int = 30) -> Path:
    """A still camera: `frames` copies of `image` as YUV4MPEG2 (4:2:0, JPEG's full-range
    BT.601 YCbCr), which Chromium's `--use-file-for-fake-video-capture` plays in a loop."""
    width, height = image.size
    assert width % 2 == 0 and height % 2 == 0, "4:2:0 needs even sides"
    y, cb, cr = image.convert("RGB").convert("YCbCr").split()
    half = (width // 2, height // 2)
    frame = b"FRAME\n" + y.tobytes() + cb.resize(half, Image.BOX).tobytes() + cr.resize(half, Image.BOX).tobytes()
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(frame)
    return path


def launch_chromium(playwright, camera_file: Path):
    return playwright.chromium.launch(
        executable_path=chromium_path(), headless=True,
        args=["--no-sandbox", "--use-fake-ui-for-media-stream",
              "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={camera_file}"])


def shown_image(page) -> tuple[str, Image.Image] | None:
    """(the output's address, its picture) as the page shows it now, or None before one."""
    output = page.locator("#live-output img")
    if not output.count():
        return None
    source = output.first.get_attribute("src")
    if not source:
        return None
    # Gradio names a shown image by its bytes' hash and writes the file again for every identical
    # frame (a still camera sends many), so a fetch can meet the file half rewritten: try again.
    try:
        response = page.request.get(source)
        if not response.ok:
            return None
        return source, Image.open(io.BytesIO(response.body())).convert("RGB")
    except (PlaywrightError, UnidentifiedImageError, OSError):
        return None


def info_text(page) -> str:
    return page.locator("#live-info").inner_text()


def measure(base_dir: str | None, seconds: float, size: int, out: Path) -> dict:
    """Stream for `seconds` and count the edited frames the page received."""
    from playwright.sync_api import sync_playwright

    from app import live
    from app.studio import build_demo, launch_options
    from e2gan.data.sources import builtin_photos

    edited_at = []  # when the server finished each frame
    frame_function = live.live_frame

    def counting(*args, **kwargs):
        result = frame_function(*args, **kwargs)
        edited_at.append(time.monotonic())
        return result

    live.live_frame = counting
    live.FRAME_BUDGET_SECONDS = float("inf")  # measure at the size asked for, not an adapted one
    out.mkdir(parents=True, exist_ok=True)
    photo = next(iter(builtin_photos(1, size=480, seed=3)))[1].convert("RGB").resize((640, 480))
    camera = write_y4m(photo, out / "camera.y4m")
    demo = build_demo(base_dir, out / "workspaces")
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                **launch_options())
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright, camera)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_text("Device").first.wait_for(timeout=120_000)
            page.get_by_role("tab", name="Live").click()
            choice = page.locator("#live-choice input")
            choice.click()
            page.get_by_role("option").first.click()  # the base model's first concept
            size_box = page.locator("#live-size input[type=number]").first
            size_box.fill(str(size))
            size_box.press("Enter")
            camera_box = page.locator("#live-camera")
            camera_box.get_by_text("Click to Access Webcam").click()
            camera_box.locator("button", has_text="Record").click()
            while len(edited_at) < 5:  # warmed up
                page.wait_for_timeout(200)
            started, first = time.monotonic(), len(edited_at)
            page.wait_for_timeout(seconds * 1000)
            last, elapsed = info_text(page), time.monotonic() - started
            frames = len(edited_at) - first
            page.screenshot(path=str(out / "live.png"))
            browser.close()
    finally:
        demo.close()
    return {"frames": frames, "seconds": round(elapsed, 1),
            "frames_per_second": round(frames / elapsed, 2), "page_says": last}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=None, help="base model folder (default: the shipped one)")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", default="runs/live-measure")
    args = parser.parse_args()
    result = measure(args.base, args.seconds, args.size, Path(args.out))
    print(result)


if __name__ == "__main__":
    main()

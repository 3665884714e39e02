"""The Live tab's frame function (`app.live`): a webcam frame through a concept, cheap per frame,
equal to EditPipeline's edit; its size adapts; fps and latency are told; errors are plain."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from e2gan.data.sources import builtin_photos
from e2gan.errors import E2GANError
from e2gan.inference.pipeline import EditPipeline

from app import live
from app.compare import adapter_pipeline


def _frame(width=96, height=72) -> Image.Image:
    photo = next(iter(builtin_photos(1, size=96, seed=5)))[1].convert("RGB")
    return photo.resize((width, height))


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, np.int16)


def test_a_frame_comes_back_edited_as_edit_pipeline_edits_it(winter_concept, tiny_base):
    workspace, folder = winter_concept
    frame = _frame()
    shown, text, state = live.live_frame(workspace, frame, "winter", 0.7, 48, "edited only",
                                         0.5, None, tiny_base, adaptive=False)
    assert shown.size == (64, 48)  # the short side at the setting, the aspect kept

    reference = EditPipeline.from_pretrained(tiny_base, device="cpu")
    name = reference.load_adapter(folder.adapter_file, scale=0.7)
    expected = reference([frame], reference.adapters[name].prompt, size=48)[0]
    assert np.array_equal(_pixels(shown), _pixels(expected))
    # ... which the adapter makes differ from the source, as the base alone differs otherwise.
    assert np.abs(_pixels(shown) - _pixels(frame.resize(shown.size))).mean() > 1
    reference.use_adapter(None)
    base_only = reference([frame], reference.adapters[name].prompt, size=48)[0]
    assert not np.array_equal(_pixels(shown), _pixels(base_only))

    # The cached pipeline is left at the trained strength for Compare and the video edit.
    pipeline, _ = adapter_pipeline(folder.adapter_file, tiny_base)
    assert pipeline.active[1] == 1.0
    assert "64×48 px" in text and "winter" in text and "ms an edit" in text
    assert state.frames == 1


def test_layouts_put_source_and_edit_side_by_side_or_split(winter_concept, tiny_base):
    workspace, _ = winter_concept
    frame = _frame()
    edited, _, _ = live.live_frame(workspace, frame, "winter", 1.0, 48, "edited only", 0.5,
                                   None, tiny_base, adaptive=False)
    side, _, _ = live.live_frame(workspace, frame, "winter", 1.0, 48, "side by side", 0.5,
                                 None, tiny_base, adaptive=False)
    assert side.size == (128, 48)
    source = frame.resize((64, 48), Image.BICUBIC)
    assert np.array_equal(_pixels(side.crop((0, 0, 64, 48))), _pixels(source))
    assert np.array_equal(_pixels(side.crop((64, 0, 128, 48))), _pixels(edited))
    split, _, _ = live.live_frame(workspace, frame, "winter", 1.0, 48, "before / after", 0.25,
                                  None, tiny_base, adaptive=False)
    assert split.size == (64, 48)
    assert np.array_equal(_pixels(split.crop((0, 0, 15, 48))), _pixels(source.crop((0, 0, 15, 48))))
    assert np.array_equal(_pixels(split.crop((18, 0, 64, 48))), _pixels(edited.crop((18, 0, 64, 48))))


def test_frames_per_second_are_counted_over_the_stream(winter_concept, tiny_base):
    workspace, _ = winter_concept
    state = None
    for _ in range(3):
        _, text, state = live.live_frame(workspace, _frame(), "", 1.0, 48, "side by side", 0.5,
                                         state, tiny_base, adaptive=False)
    assert state.frames == 3 and state.frames_per_second() > 0
    assert " fps" in text and "counting" not in text


def test_the_base_models_own_concepts_are_offered_and_edit(winter_concept, tiny_base):
    workspace, _ = winter_concept
    choices = live.live_choices(workspace, tiny_base)
    assert choices[0] == "winter"
    base = [choice for choice in choices if choice.startswith(live.BASE_PREFIX)]
    assert base  # the tiny base learnt two concepts
    shown, text, _ = live.live_frame(workspace, _frame(), base[0], 1.0, 48, "edited only", 0.5,
                                     None, tiny_base, adaptive=False)
    reference = EditPipeline.from_pretrained(tiny_base, device="cpu")
    concept = base[0][len(live.BASE_PREFIX):]
    expected = reference([_frame()], concept, size=48)[0]
    assert np.array_equal(_pixels(shown), _pixels(expected))
    assert "base model" in text


def test_slow_frames_lower_the_size_and_quick_ones_raise_it_back():
    state = live.LiveState(size=256, wanted=256, frames=live.WARM_UP_FRAMES)
    live.adapt(state, live.FRAME_BUDGET_SECONDS * 3)
    assert state.size == 256  # a stream's first frames are not judged
    state.frames += 1
    live.adapt(state, live.FRAME_BUDGET_SECONDS * 3)
    assert state.size == 192 and "lowered from 256 px" in state.note
    for _ in range(20):
        live.adapt(state, live.FRAME_BUDGET_SECONDS * 3)
    assert state.size == live.MIN_LIVE_SIZE
    for _ in range(20):
        live.adapt(state, live.FRAME_BUDGET_SECONDS / 10)
    assert state.size == 256 and state.note == ""


def test_an_adapted_size_is_used_for_the_next_frame(winter_concept, tiny_base, monkeypatch):
    workspace, _ = winter_concept
    monkeypatch.setattr(live, "FRAME_BUDGET_SECONDS", 0.0)  # every frame is "too slow"
    monkeypatch.setattr(live, "WARM_UP_FRAMES", 0)
    shown, _, state = live.live_frame(workspace, _frame(), "winter", 1.0, 160, "edited only",
                                      0.5, None, tiny_base)
    assert min(shown.size) == 72  # the frame's own short side: never upscaled
    assert state.size == 64  # lowered from the 72 px it ran at, not from the setting
    shown, text, state = live.live_frame(workspace, _frame(192, 144), "winter", 1.0, 160,
                                         "edited only", 0.5, state, tiny_base)
    assert min(shown.size) == 64 and "lowered from 160 px" in text


def test_errors_are_plain_messages(winter_concept, tiny_base, tmp_path):
    workspace, _ = winter_concept
    with pytest.raises(E2GANError, match="no camera frame yet"):
        live.live_frame(workspace, None, "winter", 1.0, 48, "side by side", 0.5, None, tiny_base)
    with pytest.raises(E2GANError, match="no adapter 'nothing'"):
        live.live_frame(workspace, _frame(), "nothing", 1.0, 48, "side by side", 0.5, None,
                        tiny_base)
    with pytest.raises(E2GANError, match="adapter scale"):
        live.live_frame(workspace, _frame(), "winter", 99.0, 48, "side by side", 0.5, None,
                        tiny_base)
    with pytest.raises(E2GANError, match="layout"):
        live.live_frame(workspace, _frame(), "winter", 1.0, 48, "mosaic", 0.5, None, tiny_base)
    # A Hub id that is not here and cannot be fetched (the tests are offline).
    with pytest.raises(E2GANError, match="someone/no-such-adapter"):
        live.live_frame(workspace, _frame(), "someone/no-such-adapter", 1.0, 48, "side by side",
                        0.5, None, tiny_base)
    # A fresh workspace has no adapter: the current concept is none.
    from app.workspace import Workspace
    empty = Workspace.create(tmp_path / "fresh")
    with pytest.raises(E2GANError, match="no adapter yet"):
        live.live_frame(empty, _frame(), None, 1.0, 48, "side by side", 0.5, None, tiny_base)


def test_the_tabs_handler_tells_errors_once_and_keeps_the_stream(winter_concept, tiny_base):
    """An error during a stream is a plain line under the pictures and one warning (not a toast
    per frame, and not the stream's end): picking a usable concept edits the next frame."""
    from app.studio import build_demo

    workspace, _ = winter_concept
    demo = build_demo(tiny_base, workspace.root.parent)
    stream = next(fn for fn in demo.fns.values() if fn.name == "frame").fn
    with pytest.warns(UserWarning, match="no camera frame yet"):
        _, shown, text, state = stream(workspace.id, None, "winter", 1.0, 48, "side by side", 0.5,
                                       True, None)
    assert text.startswith("**Not editing:** no camera frame yet") and "Traceback" not in text
    with pytest.warns(UserWarning, match="no adapter 'someone/x y'"):
        _, _, text, state = stream(workspace.id, _frame(), "someone/x y", 1.0, 48,
                                   "side by side", 0.5, True, state)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same error again: the line only, no second warning
        _, _, again, state = stream(workspace.id, _frame(), "someone/x y", 1.0, 48,
                                    "side by side", 0.5, True, state)
    assert again == text
    workspace_id, shown, text, state = stream(workspace.id, _frame(), "winter", 1.0, 48,
                                              "side by side", 0.5, True, state)
    assert workspace_id == workspace.id and shown.size == (128, 48) and "fps" in text
    assert state.error == ""
    prepare = next(fn for fn in demo.fns.values() if fn.name == "prepare").fn
    assert "Not ready" in prepare(workspace.id, "someone/missing")
    assert "ready" in prepare(workspace.id, "winter")

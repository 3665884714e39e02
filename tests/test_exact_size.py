"""An edit comes back at the photo's own size (issue 27): a 641x427 photo is 641x427 after the
studio's Compare, the MCP tool's path and `e2gan edit`, though the generator works in multiples of
8 (the pipeline pads and crops back; see tests/test_checkpoint.py for the pixels themselves)."""

from __future__ import annotations

import numpy as np
from PIL import Image

ODD = (641, 427)  # neither side a multiple of 8


def photo(width: int, height: int) -> Image.Image:
    coarse = np.random.default_rng(0).integers(0, 256, (height // 14 + 2, width // 14 + 2, 3))
    return Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BICUBIC)


def test_compare_shows_every_model_at_the_photos_own_size(winter_concept, tiny_base):
    from app import compare

    workspace, _ = winter_concept
    result = compare.compare(workspace, photo(*ODD), base_dir=tiny_base)
    assert len(result["images"]) >= 3  # teacher, base model, the concept
    assert {label: image.size for label, image in result["images"].items()} == {
        label: ODD for label in result["images"]}


def test_the_mcp_tools_edit_is_at_the_photos_own_size(winter_concept, tiny_base):
    """What `apply_concept` runs (app/agent_tools.py): the adapter at the photo's shown size."""
    from app import compare

    _, folder = winter_concept
    image = photo(97, 65)
    edited, _ = compare.apply_adapter(folder.adapter_file, image, 1.0, compare.shown_size(image),
                                      base_dir=tiny_base)
    assert edited.size == (97, 65)


def test_cli_edit_writes_the_photos_own_size(tiny_base, tmp_path, capsys):
    from e2gan.cli import main

    photo(*ODD).save(tmp_path / "photo.png")
    code = main(["edit", "--model", str(tiny_base), "--prompt", "a pencil sketch", "--image",
                 str(tmp_path / "photo.png"), "--out", str(tmp_path / "out.png"), "--device", "cpu",
                 "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert Image.open(tmp_path / "out.png").size == ODD


def test_an_exported_onnx_file_edits_at_the_photos_own_size_like_the_pipeline(tiny_base, tmp_path):
    """The evaluator of exported files mirrors up to the multiple and crops back, as the pipeline
    does, instead of resizing to a multiple and back (which resampled every pixel)."""
    from e2gan.export import export_concept
    from e2gan.export.formats import OnnxImageMaker
    from e2gan.inference.pipeline import EditPipeline

    export_concept(tiny_base, tmp_path, prompt="a scene at night", size=32, formats=("onnx",),
                   repeats=1)
    image = photo(61, 43)
    by_onnx = OnnxImageMaker(str(next(tmp_path.glob("*_dynamic.onnx"))))([image])[0]
    by_pipeline = EditPipeline.from_pretrained(tiny_base, device="cpu")([image], "a scene at night")[0]
    assert by_onnx.size == (61, 43)
    difference = np.abs(np.asarray(by_onnx, np.int16) - np.asarray(by_pipeline, np.int16))
    assert difference.max() <= 1

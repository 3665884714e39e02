"""The Library offers ExecuTorch only where it is installed, and says how to install it where it
is not (issue 27: `make studio` does not install the `mobile` extra, yet the page offered it)."""

from __future__ import annotations

import importlib.metadata

import pytest

from e2gan.errors import E2GANError

gr = pytest.importorskip("gradio")

EXECUTORCH_KINDS = {"executorch", "executorch int8"}


def library_page(tiny_base, tmp_path):
    """The studio's Library tab as built: (its "export as" choices, the note under them or None
    when it is hidden)."""
    from app.studio import build_demo

    demo = build_demo(tiny_base, tmp_path / "workspaces")
    radios = [block for block in demo.blocks.values()
              if isinstance(block, gr.Radio) and block.label == "export as"]
    notes = [block for block in demo.blocks.values()
             if isinstance(block, gr.Markdown) and block.elem_id == "export-formats-note"]
    assert len(radios) == 1 and len(notes) == 1
    choices = {value for _, value in radios[0].choices}
    return choices, (notes[0].value if notes[0].visible else None)


def test_without_executorch_the_library_offers_no_pte_and_says_how_to_install_it(
        monkeypatch, tiny_base, tmp_path):
    from app import library
    from app.workspace import ConceptSpec, Workspace

    monkeypatch.setattr(library, "executorch_available", lambda: False)
    choices, note = library_page(tiny_base, tmp_path)
    assert not choices & EXECUTORCH_KINDS
    assert {"adapter", "onnx", "torchscript"} <= choices
    assert note is not None and "pip install executorch" in note

    # An API call that names it anyway gets the same advice, before any work.
    workspace = Workspace.create(tmp_path / "api")
    workspace.concept("winter").save_spec(ConceptSpec(name="winter", prompt="a snowy winter scene"))
    with pytest.raises(E2GANError, match="pip install executorch"):
        library.export(workspace, "winter", "executorch int8", tiny_base)


def test_with_executorch_the_library_offers_it_and_no_install_note(monkeypatch, tiny_base, tmp_path):
    from app import library

    monkeypatch.setattr(library, "executorch_available", lambda: True)
    choices, note = library_page(tiny_base, tmp_path)
    assert EXECUTORCH_KINDS <= choices
    assert note is None


def test_the_availability_check_follows_the_installed_package(monkeypatch):
    from app import library

    def not_installed(name):
        if name == "executorch":
            raise importlib.metadata.PackageNotFoundError(name)
        return "1.0"

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert library.executorch_available() is False
    assert not set(library.export_formats()) & EXECUTORCH_KINDS

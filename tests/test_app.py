import pytest

from e2gan.errors import E2GANError

gr = pytest.importorskip("gradio")


def test_trying_a_base_concept_gives_teacher_and_e2gan_edits(tiny_base):
    from app.try_concept import ConceptTrier
    from e2gan.data.sources import builtin_photos

    trier = ConceptTrier(tiny_base, device="cpu")
    assert "a_pencil_sketch" in trier.choices()
    image = next(iter(builtin_photos(1, size=48, seed=0)))[1]
    teacher, edited, timing = trier.edit(image, "a_pencil_sketch", size=32)
    assert teacher.size == edited.size == (32, 32)
    assert "ms" in timing
    with pytest.raises(E2GANError, match="image"):
        trier.edit(None, "a_pencil_sketch")


def test_the_studio_builds_with_the_try_tab_public_edit_endpoint(tiny_base, tmp_path):
    from app.studio import build_demo

    demo = build_demo(tiny_base, tmp_path)
    assert isinstance(demo, gr.Blocks)
    assert "/edit" in demo.get_api_info()["named_endpoints"]


def test_app_py_builds_demo_without_launching_it():
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).resolve().parents[1] / "app.py").read_text())
    launches = [node for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "launch"]
    guarded = [node for node in tree.body if isinstance(node, ast.If)
               and "__main__" in ast.unparse(node.test)]
    assert any(isinstance(n, ast.Assign) and n.targets[0].id == "demo" for n in tree.body)
    assert launches and all(any(launch in ast.walk(block) for block in guarded) for launch in launches)

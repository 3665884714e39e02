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


def test_the_app_builds_with_a_public_edit_endpoint(tiny_base):
    from app.try_concept import build_demo

    demo = build_demo(tiny_base)
    assert isinstance(demo, gr.Blocks)
    assert "/edit" in demo.get_api_info()["named_endpoints"]

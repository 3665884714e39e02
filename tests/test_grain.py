"""A concept's grain: fitted from what the teacher's edits have and the generator's lack, stored in
the adapter, added by every edit path at the adapter's strength, blended and exported with it."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from e2gan.checkpoint import adapter_from_model, blend_adapters, read_adapter, save_adapter
from e2gan.errors import E2GANError
from e2gan.inference.pipeline import EditPipeline
from e2gan.models.grain import Grain, GrainStatistics, fit_grain, high_pass, luminance
from e2gan.training.recipes import TrainingSettings, finetune

from tests.test_checkpoint import base_dir, train_fake_adapter  # noqa: F401 (fixture)

GRAIN_STD = 0.3  # in the generator's [-1, 1] units


def flat_and_grainy(seed: int = 0, count: int = 12, side: int = 48):
    """Flat colour fields (the generator's mean edit) and the same with grain (the teacher's):
    grain along red-then-half-green, only where the field is mid-grey (a print's mid-tones)."""
    generator = torch.Generator().manual_seed(seed)
    levels = torch.linspace(-0.9, 0.9, count).view(count, 1, 1, 1)
    flat = levels.expand(count, 3, side, side).clone()
    noise = torch.randn(count, 1, side, side, generator=generator) * GRAIN_STD
    direction = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)
    mid_tones = (levels.abs() < 0.4).float()
    return flat, flat + noise * direction * mid_tones


def test_the_fit_finds_the_missing_grain_where_and_in_the_colour_it_is():
    flat, grainy = flat_and_grainy()
    grain = fit_grain(flat, grainy)
    assert grain is not None and grain.deficit == pytest.approx(1.0)
    brightness = luminance(flat)[:, 0, 0]
    bands = (brightness * grain.covariances.shape[0]).long()
    expected_red = high_pass(grainy - flat)[:, 0].pow(2).mean() / (brightness.sub(0.5).abs() < 0.2).float().mean()
    for band, covariance in enumerate(grain.covariances):
        inside = brightness[bands == band]
        if len(inside) and (inside - 0.5).abs().max() < 0.2:  # mid-tones: the grain, red-led
            assert covariance[0, 0] == pytest.approx(float(expected_red), rel=0.25)
            assert covariance[1, 1] == pytest.approx(0.25 * float(covariance[0, 0]), rel=0.2)
            assert covariance[2, 2] == pytest.approx(0.0, abs=1e-6)
        elif len(inside) and (inside - 0.5).abs().min() > 0.3:  # dark and light fields: none
            assert covariance.abs().max() < 1e-6
    # The grain the module adds has the fitted strength in the mid-tones and none elsewhere.
    added = Grain(grain)(flat, 1.0) - flat
    mid = (brightness - 0.5).abs() < 0.2
    assert added[mid, 0].std() == pytest.approx(float(high_pass(grainy - flat)[mid, 0].std()), rel=0.25)
    assert added[~mid & ((brightness - 0.5).abs() > 0.3)].abs().max() < 1e-4


def test_no_grain_where_the_generator_already_has_the_teachers_detail():
    _, grainy = flat_and_grainy()
    assert fit_grain(grainy, grainy) is None
    assert fit_grain(grainy, grainy.flip(0)) is None  # other pairs' detail, just as much of it
    flat, _ = flat_and_grainy()
    assert fit_grain(flat, flat) is None  # neither has any detail: nothing to divide by


def test_the_fit_refuses_batches_that_do_not_match():
    flat, grainy = flat_and_grainy()
    with pytest.raises(E2GANError, match="matching"):
        fit_grain(flat, grainy[:, :, :40])
    with pytest.raises(E2GANError, match="odd"):
        fit_grain(flat, grainy, kernel_size=4)


def test_grain_is_repeatable_bounded_and_scaled_by_strength():
    flat, grainy = flat_and_grainy()
    grain = Grain(fit_grain(flat, grainy))
    image = torch.zeros(1, 3, 37, 300)  # odd sizes, wider than the pattern's tile
    first, again = grain(image, 1.0), grain(image, 1.0)
    assert torch.equal(first, again)  # the same photo gives the same edit
    assert not torch.equal(grain(image, 1.0, offset=(5, 9)), first)  # a video frame moves it
    assert torch.equal(grain(image, 0.0), image)
    half = grain(image, 0.5) - image
    unclamped = first.abs() < 1  # a few grains would pass white or black at full strength
    assert unclamped.float().mean() > 0.99
    torch.testing.assert_close(half[unclamped], 0.5 * (first - image)[unclamped], atol=1e-6, rtol=0)
    assert grain(torch.full((1, 3, 8, 8), 0.999), 50.0).max() <= 1.0


def test_an_adapter_carries_its_grain_and_every_edit_adds_it(base_dir, tmp_path):  # noqa: F811
    adapter, trained = train_fake_adapter(base_dir, "a watercolor painting", seed=1)
    flat, grainy = flat_and_grainy()
    statistics = fit_grain(flat, grainy)
    grainy_adapter = adapter_from_model(trained.generator, "a_watercolor_painting",
                                        "a watercolor painting", trained.info, trained.text_encoder,
                                        grain=statistics)
    assert grainy_adapter.metadata["grain"]["deficit"] == pytest.approx(1.0)
    # Fitted numbers are not trained parameters.
    assert grainy_adapter.metadata["trainable_parameters"] == adapter.metadata["trainable_parameters"]
    path = save_adapter(tmp_path / "grainy.safetensors", grainy_adapter)
    plain_path = save_adapter(tmp_path / "plain.safetensors", adapter)
    read = read_adapter(path).grain
    torch.testing.assert_close(read.covariances, statistics.covariances, atol=1e-3, rtol=1e-3)

    image = Image.new("RGB", (40, 24), (128, 120, 110))
    pipeline = EditPipeline.from_pretrained(base_dir, device="cpu")
    pipeline.load_adapter(plain_path, name="plain")
    without = pipeline([image], "a watercolor painting")[0]
    pipeline.load_adapter(path)
    with_grain = pipeline([image], "a watercolor painting")[0]
    assert with_grain.size == image.size
    assert with_grain.tobytes() != without.tobytes()
    assert with_grain.tobytes() == pipeline([image], "a watercolor painting")[0].tobytes()
    pipeline.use_grain = False
    assert pipeline([image], "a watercolor painting")[0].tobytes() == without.tobytes()
    pipeline.use_grain = True
    pipeline.use_adapter("a_watercolor_painting", 0.0)  # strength 0: the base, and no grain
    pipeline.use_adapter(None)
    assert pipeline.grain is None


def test_a_blend_mixes_the_grain_by_weight(base_dir):  # noqa: F811
    first, trained = train_fake_adapter(base_dir, "a watercolor painting", seed=1)
    second, _ = train_fake_adapter(base_dir, "an oil painting", seed=2)
    flat, grainy = flat_and_grainy()
    statistics = fit_grain(flat, grainy)
    first = adapter_from_model(trained.generator, "a_watercolor_painting", "a watercolor painting",
                               trained.info, trained.text_encoder, grain=statistics)
    blend = blend_adapters(first, second, weight=0.25)
    torch.testing.assert_close(blend.grain.covariances, 0.25 * statistics.covariances)
    torch.testing.assert_close(blend.grain.kernel, statistics.kernel, atol=1e-5, rtol=0)
    assert blend_adapters(second, second).grain is None


def test_a_damaged_grain_is_refused_on_reading(base_dir, tmp_path):  # noqa: F811
    adapter, trained = train_fake_adapter(base_dir, "a watercolor painting", seed=1)
    broken = GrainStatistics(torch.zeros(8, 3, 2), torch.ones(4, 4), 0.5)
    adapter.tensors.update(broken.tensors())
    path = save_adapter(tmp_path / "broken.safetensors", adapter)
    with pytest.raises(E2GANError, match="damaged e2gan adapter: grain tensors"):
        read_adapter(path)


@pytest.fixture(scope="module")
def risograph_pairs(tmp_path_factory):
    from e2gan.data.generate import generate_pairs
    from e2gan.data.sources import builtin_photos
    from e2gan.teachers import create_teacher, resolve_builtin_concept

    concept = resolve_builtin_concept("risograph")
    return generate_pairs(create_teacher("builtin"), builtin_photos(12, size=48, seed=3),
                          concept.prompt, tmp_path_factory.mktemp("riso") / "pairs",
                          concept="risograph", seed=0, test_fraction=0.25).dataset


class Blur(torch.nn.Module):
    """A generator that edits by blurring: the mean of a grainy teacher, as L1 training ends."""

    uses_text = False

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # a parameter, to say the device

    def forward(self, source, text=None):
        from torchvision.transforms.functional import gaussian_blur
        return gaussian_blur(source, [7, 7], [2.0, 2.0]) + self.anchor


def test_the_fit_runs_the_generator_on_the_training_pairs(risograph_pairs):
    from e2gan.data.torch_data import PairTensorDataset
    from e2gan.training.grain_fit import fit_concept_grain

    pairs = PairTensorDataset(risograph_pairs, "train", 32, augment=False)
    grain = fit_concept_grain(Blur(), None, "a risograph print", pairs)
    assert grain is not None and grain.deficit > 0.5 and grain.kernel.shape == (15, 15)
    # A generator that returns the teacher's own edits lacks nothing.
    class Teacher(Blur):
        def forward(self, source, text=None):
            return torch.stack([pairs[i]["edited"] for i in range(len(source))]) + self.anchor
    assert fit_concept_grain(Teacher(), None, "a risograph print", pairs, limit=8) is None


def test_a_fine_tune_writes_its_grain_into_the_adapter(tmp_path, tiny_base, risograph_pairs,
                                                       monkeypatch):
    """The adapter carries what the fit found and its summary says so; with grain off the fit
    does not run and the adapter carries none."""
    import e2gan.training.recipes as recipes

    flat, grainy = flat_and_grainy()
    fitted = fit_grain(flat, grainy)
    calls = []
    monkeypatch.setattr(recipes, "fit_concept_grain",
                        lambda generator, encoder, prompt, pairs, precision: calls.append(len(pairs)) or fitted)
    settings = TrainingSettings(size=32, steps=2, batch_size=4, checkpoint_every=0, device="cpu")
    outcome = finetune(tiny_base, risograph_pairs, tmp_path / "a.safetensors", settings)
    adapter = read_adapter(outcome.output)
    assert calls == [len(risograph_pairs.split("train"))]  # on the training pairs, once at the end
    torch.testing.assert_close(adapter.grain.covariances, fitted.covariances, atol=1e-3, rtol=1e-3)
    assert adapter.metadata["training"]["grain"] == adapter.metadata["grain"] == outcome.summary["grain"]
    off = TrainingSettings(size=32, steps=2, batch_size=4, checkpoint_every=0, device="cpu", grain=False)
    outcome = finetune(tiny_base, risograph_pairs, tmp_path / "b.safetensors", off)
    adapter = read_adapter(outcome.output)
    assert len(calls) == 1 and adapter.grain is None and "grain" not in adapter.metadata["training"]


def test_exported_files_carry_the_grain_and_edit_like_the_pipeline(tiny_base, tmp_path):
    import numpy as np
    import onnxruntime as ort

    from e2gan.checkpoint import load_generator
    from e2gan.export import export_concept
    from e2gan.models import lora

    loaded = load_generator(tiny_base)
    lora.add_adapter(loaded.generator, "riso", {name: 2 for name in lora.crucial_layers(loaded.generator)})
    loaded.text_encoder.add_concept("a risograph print")
    flat, grainy = flat_and_grainy()
    path = save_adapter(tmp_path / "riso.safetensors", adapter_from_model(
        loaded.generator, "riso", "a risograph print", loaded.info, loaded.text_encoder,
        concept="riso", grain=fit_grain(flat, grainy)))
    result = export_concept(tiny_base, tmp_path / "out", adapter=path, size=32, repeats=1,
                            formats=("onnx",), scale=0.7)
    assert all(record["max_abs_diff"] < 1e-3 for record in result["files"])

    photo = Image.fromarray(np.full((40, 48, 3), 120, np.uint8))  # mid-grey: where the grain is
    pipeline = EditPipeline.from_pretrained(tiny_base, device="cpu")
    pipeline.load_adapter(path, scale=0.7)
    expected = np.asarray(pipeline([photo], "a risograph print")[0], np.int16)
    pipeline.use_grain = False
    without = np.asarray(pipeline([photo], "a risograph print")[0], np.int16)
    assert np.abs(expected - without).mean() > 2  # the grain shows
    session = ort.InferenceSession(str(tmp_path / "out" / "riso_dynamic.onnx"),
                                   providers=["CPUExecutionProvider"])
    image = (np.asarray(photo, np.float32).transpose(2, 0, 1)[None] / 127.5 - 1.0).copy()
    edited = session.run(None, {"image": image})[0][0]
    pixels = ((edited.transpose(1, 2, 0).clip(-1, 1) + 1) * 127.5).round().astype(np.int16)
    assert np.abs(pixels - expected).max() <= 1

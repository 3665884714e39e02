"""Model folders and concept adapters on disk: round trips, refusals, blending, adapter size."""

from __future__ import annotations

import copy
import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

from e2gan.models import lora
from e2gan.checkpoint import (adapter_from_model, apply_adapter, blend_adapters, load_generator,
                              read_adapter, save_adapter, save_generator)
from e2gan.errors import E2GANError
from e2gan.models import build_model
from e2gan.inference.pipeline import EditPipeline
from e2gan.text import LearnedConceptEncoder, check_compatible

TINY = {"num_filters": 8, "text_dim": 16, "num_heads": 2}
PROMPTS = ["a pencil sketch", "a cartoon"]



def make_base(folder, seed: int = 0, discriminator: bool = True):
    torch.manual_seed(seed)
    generator = build_model("e2gan", TINY).eval()
    encoder = LearnedConceptEncoder(embedding_dim=16, concepts=PROMPTS)
    d = build_model("patchgan", {"num_filters": 8, "text_dim": 16}) if discriminator else None
    save_generator(folder, generator, encoder, {"steps": 3}, d)
    return generator, encoder, d


@pytest.fixture
def base_dir(tmp_path):
    folder = tmp_path / "base"
    make_base(folder)
    return folder


@pytest.fixture
def source():
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


def edit(loaded, source, prompt):
    with torch.no_grad():
        return loaded.generator(source, loaded.text_encoder([prompt] * len(source)))


def randomize_b(model, adapter, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora.lora_layers(model).values():
            if adapter in layer.lora_B:
                weight = layer.lora_B[adapter].weight
                weight.copy_(torch.randn(weight.shape, generator=generator) * 0.2)


def train_fake_adapter(base_dir, prompt, seed, ranks=None):
    """An adapter as `finetune` makes one: LoRA weights plus the concept's own text tokens."""
    loaded = load_generator(base_dir)
    name = prompt.replace(" ", "_")
    ranks = ranks or {layer: 2 for layer in lora.crucial_layers(loaded.generator)}
    lora.add_adapter(loaded.generator, name, ranks)
    randomize_b(loaded.generator, name, seed)
    if not loaded.text_encoder.knows(prompt):
        torch.manual_seed(seed)
        loaded.text_encoder.add_concept(prompt)
    adapter = adapter_from_model(loaded.generator, name, prompt, loaded.info, loaded.text_encoder,
                                 training={"steps": 5})
    return adapter, loaded


# --- base model folders ---------------------------------------------------------------------


def test_generator_round_trip(tmp_path, source):
    folder = tmp_path / "base"
    generator, encoder, discriminator = make_base(folder)
    loaded = load_generator(folder, with_discriminator=True)
    assert loaded.info["arch"] == "e2gan" and loaded.info["config"]["num_filters"] == 8
    assert loaded.info["training"] == {"steps": 3}
    assert loaded.info["sha256"] == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert not loaded.generator.training
    assert loaded.text_encoder.concepts and set(loaded.text_encoder.concepts) == {"a_pencil_sketch", "a_cartoon"}
    for key, table in encoder.tables.items():
        assert torch.equal(loaded.text_encoder.tables[key], table)
    for prompt in PROMPTS:
        with torch.no_grad():
            expected = generator(source, encoder([prompt, prompt]))
        assert torch.equal(edit(loaded, source, prompt), expected)
    for key, value in discriminator.state_dict().items():
        assert torch.equal(loaded.discriminator.state_dict()[key], value)
    assert load_generator(folder).discriminator is None  # only loaded on request


def test_half_precision_weights_load_as_float32_and_edit_alike(tmp_path, source):
    """A base stored in fp16 (half the file, as `checkpoints/base`) runs in float32."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "base"
    generator, encoder, _ = make_base(folder)
    for name in ("model.safetensors", "discriminator.safetensors"):
        tensors = load_file(folder / name)
        save_file({k: v.half() for k, v in tensors.items()}, folder / name)
    loaded = load_generator(folder, with_discriminator=True)
    assert all(p.dtype == torch.float32 for p in loaded.generator.parameters())
    assert all(t.dtype == torch.float32 for t in loaded.text_encoder.tables.values())
    with torch.no_grad():
        expected = generator(source, encoder([PROMPTS[0]] * 2))
    # Within about one 8-bit grey level (2/255 in [-1, 1]). This random tiny model, fed the
    # unit-variance inference noise, amplifies rounding more than a trained one: the shipped base
    # in fp16 edits within 5e-4 of its float32 weights.
    torch.testing.assert_close(edit(loaded, source, PROMPTS[0]), expected, atol=3 / 255, rtol=0)


def test_loading_into_a_given_encoder_restores_the_trained_tables(base_dir):
    fresh = LearnedConceptEncoder(embedding_dim=16, concepts=["a pencil sketch"])  # random tables
    random_table = fresh.tables["a_pencil_sketch"].detach().clone()
    loaded = load_generator(base_dir, text_encoder=fresh)
    saved = load_generator(base_dir).text_encoder
    assert loaded.text_encoder is fresh  # the encoder given is the one used, not a new one
    assert not torch.equal(fresh.tables["a_pencil_sketch"], random_table)
    for key in saved.tables:
        assert torch.equal(fresh.tables[key], saved.tables[key]), key


def test_pix2pix_without_text_round_trips(tmp_path, source):
    torch.manual_seed(0)
    model = build_model("pix2pix", {"num_filters": 8, "num_residual_blocks": 1}).eval()
    save_generator(tmp_path / "p2p", model, None)
    loaded = load_generator(tmp_path / "p2p")
    assert loaded.text_encoder is None and loaded.info["arch"] == "pix2pix"
    with torch.no_grad():
        assert torch.equal(loaded.generator(source), model(source))


def test_load_refuses_a_folder_without_config(base_dir, tmp_path):
    (base_dir / "config.json").unlink()
    with pytest.raises(E2GANError, match="not a model folder"):
        load_generator(base_dir)
    with pytest.raises(E2GANError, match="not a model folder"):
        load_generator(tmp_path / "nowhere")


def test_load_refuses_corrupt_weights(base_dir):
    weights = base_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(E2GANError, match="cannot read weights"):
        load_generator(base_dir)
    weights.write_bytes(b"not a safetensors file at all")
    with pytest.raises(E2GANError, match="cannot read weights"):
        load_generator(base_dir)


def test_load_refuses_a_config_that_does_not_match_the_weights(base_dir):
    config_path = base_dir / "config.json"
    info = json.loads(config_path.read_text())
    info["config"]["num_filters"] = 16
    config_path.write_text(json.dumps(info))
    with pytest.raises(E2GANError, match="does not match"):
        load_generator(base_dir)
    config_path.write_text("{not json")
    with pytest.raises(E2GANError, match="cannot read"):
        load_generator(base_dir)
    config_path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(E2GANError, match="not an e2gan generator"):
        load_generator(base_dir)


def test_save_refuses_a_model_with_adapters(tmp_path):
    generator = build_model("e2gan", TINY)
    lora.add_adapter(generator, "a", {"upsample.0.conv": 2})
    with pytest.raises(E2GANError, match="adapters"):
        save_generator(tmp_path / "x", generator, None)
    assert not (tmp_path / "x" / "config.json").exists()


# --- adapters -------------------------------------------------------------------------------


def test_adapter_round_trip_reproduces_outputs(base_dir, tmp_path, source):
    adapter, trained = train_fake_adapter(base_dir, "a watercolor painting", seed=1)
    expected = edit(trained, source, "a watercolor painting")
    path = save_adapter(tmp_path / "watercolor.safetensors", adapter)
    read = read_adapter(path)
    meta = read.metadata
    assert meta["prompt"] == "a watercolor painting" and read.concept == "a_watercolor_painting"
    assert meta["base_sha256"] == trained.info["sha256"] and meta["base_arch"] == "e2gan"
    assert meta["ranks"] == lora.adapter_ranks(trained.generator, "a_watercolor_painting")
    assert meta["text_encoder"]["name"] == "learned" and "concepts" not in meta["text_encoder"]
    assert meta["training"] == {"steps": 5}
    assert meta["trainable_parameters"] == sum(t.numel() for t in read.tensors.values())
    assert "concept_embedding" in read.tensors

    fresh = load_generator(base_dir)
    assert not fresh.text_encoder.knows("a watercolor painting")
    name = apply_adapter(fresh, read)
    assert name == "a_watercolor_painting"
    # Stored in half precision: the edit comes back within half of one 8-bit grey level
    # (outputs span [-1, 1], so one level is 2/255).
    reproduced = edit(fresh, source, "a watercolor painting")
    assert (reproduced - expected).abs().max() < 0.5 * 2 / 255
    assert all(t.dtype == torch.float32 for t in read.tensors.values())
    # The base's own concepts still run the base when the adapter is switched off.
    lora.set_active_adapters(fresh.generator, [])
    assert torch.equal(edit(fresh, source, "a cartoon"), edit(load_generator(base_dir), source, "a cartoon"))


def test_adapter_for_another_base_is_refused(base_dir, tmp_path):
    adapter, _ = train_fake_adapter(base_dir, "a watercolor painting", seed=1)
    make_base(tmp_path / "other", seed=1)
    other = load_generator(tmp_path / "other")
    assert other.info["sha256"] != adapter.metadata["base_sha256"]
    with pytest.raises(E2GANError, match="base") as error:
        apply_adapter(other, adapter)
    assert str(tmp_path / "other") in str(error.value)
    assert not lora.lora_layers(other.generator)  # nothing half-applied


def test_text_encoder_mismatch_is_refused(base_dir):
    adapter, loaded = train_fake_adapter(base_dir, "a watercolor painting", seed=1)
    spec = loaded.text_encoder.spec()
    check_compatible(spec, LearnedConceptEncoder(embedding_dim=16))  # same kind: fine
    with pytest.raises(E2GANError, match="embedding_dim"):
        check_compatible(spec, LearnedConceptEncoder(embedding_dim=32))
    with pytest.raises(E2GANError, match="text encoder"):
        check_compatible({**spec, "name": "clip"}, LearnedConceptEncoder(embedding_dim=16))
    with pytest.raises(E2GANError):
        load_generator(base_dir, text_encoder=LearnedConceptEncoder(embedding_dim=32))
    adapter.metadata["text_encoder"] = {"name": "clip", "embedding_dim": 16,
                                        "model_name": "ViT-B-32", "pretrained": "x"}
    with pytest.raises(E2GANError, match="text encoder"):
        apply_adapter(load_generator(base_dir), adapter)


def test_a_damaged_adapter_is_refused_and_leaves_the_model_usable(base_dir, source):
    adapter, trained = train_fake_adapter(base_dir, "a watercolor painting", seed=1)
    expected = edit(trained, source, "a watercolor painting")
    damaged = copy.deepcopy(adapter)
    key = next(k for k in damaged.tensors if k.endswith("lora_B"))
    damaged.tensors[key] = damaged.tensors[key][:1]
    loaded = load_generator(base_dir)
    base_out = edit(loaded, source, "a cartoon")
    with pytest.raises(E2GANError, match="shape"):
        apply_adapter(loaded, damaged)
    assert lora.adapter_names(loaded.generator) == []
    assert torch.equal(edit(loaded, source, "a cartoon"), base_out)
    apply_adapter(loaded, adapter)  # the good file under the same name now loads
    assert torch.equal(edit(loaded, source, "a watercolor painting"), expected)


def test_read_adapter_refuses_other_files(base_dir, tmp_path):
    with pytest.raises(E2GANError, match="not found"):
        read_adapter(tmp_path / "missing.safetensors")
    with pytest.raises(E2GANError, match="not an e2gan adapter"):
        read_adapter(base_dir / "model.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(E2GANError, match="cannot read"):
        read_adapter(tmp_path / "junk.safetensors")


def merged_state(base_dir, adapter):
    loaded = load_generator(base_dir)
    apply_adapter(loaded, adapter)
    return lora.remove_adapters(loaded.generator, merge=True).state_dict()


def test_blend_adapters_is_the_weighted_sum_of_the_updates(base_dir, source):
    first, loaded_first = train_fake_adapter(base_dir, "a watercolor painting", seed=1)
    # The second adapter uses other ranks and misses some layers: blending must still be exact.
    layers = lora.crucial_layers(build_model("e2gan", TINY))
    second, loaded_second = train_fake_adapter(
        base_dir, "an oil painting", seed=2, ranks={layer: 3 for layer in layers[::2]})
    out_first = edit(loaded_first, source, "a watercolor painting")
    out_second = edit(loaded_second, source, "an oil painting")

    for weight, expected in ((1.0, out_first), (0.0, out_second)):
        blend = blend_adapters(first, second, weight=weight)
        loaded = load_generator(base_dir)
        apply_adapter(loaded, blend)
        torch.testing.assert_close(edit(loaded, source, blend.prompt), expected, atol=1e-5, rtol=0)

    blend = blend_adapters(first, second, weight=0.5, prompt="a painting")
    assert blend.prompt == "a painting" and blend.metadata["training"]["weight"] == 0.5
    assert blend.metadata["ranks"][layers[0]] == 2 + 3 and blend.metadata["ranks"][layers[1]] == 2
    merged_first, merged_second = merged_state(base_dir, first), merged_state(base_dir, second)
    merged_blend = merged_state(base_dir, blend)
    for key, value in merged_blend.items():
        torch.testing.assert_close(value, 0.5 * merged_first[key] + 0.5 * merged_second[key],
                                   atol=1e-6, rtol=0, msg=key)
    torch.testing.assert_close(
        blend.tensors["concept_embedding"],
        0.5 * first.tensors["concept_embedding"] + 0.5 * second.tensors["concept_embedding"])


def test_blend_refusals(base_dir, tmp_path):
    first, _ = train_fake_adapter(base_dir, "a watercolor painting", seed=1)
    with pytest.raises(E2GANError, match="weight"):
        blend_adapters(first, first, weight=1.5)
    make_base(tmp_path / "other", seed=1)
    other, _ = train_fake_adapter(tmp_path / "other", "an oil painting", seed=2)
    with pytest.raises(E2GANError, match="different base"):
        blend_adapters(first, other)


def test_default_size_adapter_is_small(tmp_path):
    """The paper's selling point: a concept is ~0.09M parameters, a few hundred KB on disk."""
    torch.manual_seed(0)
    generator = build_model("e2gan")
    encoder = LearnedConceptEncoder(embedding_dim=768, concepts=["a cartoon"])
    ranks = {layer: 4 for layer in lora.crucial_layers(generator)}
    generator.requires_grad_(False)
    lora.add_adapter(generator, "a_cartoon", ranks)
    randomize_b(generator, "a_cartoon", seed=0)
    base_info = {"sha256": "0" * 64, "arch": "e2gan", "text_encoder": encoder.spec()}
    adapter = adapter_from_model(generator, "a_cartoon", "a cartoon", base_info, encoder)
    path = save_adapter(tmp_path / "cartoon.safetensors", adapter)
    assert adapter.metadata["trainable_parameters"] < 0.15e6
    lora_parameters = sum(p.numel() for n, p in generator.named_parameters() if p.requires_grad)
    assert lora_parameters == lora.lora_parameter_count(generator, ranks) < 0.15e6
    assert path.stat().st_size < 0.6e6
    assert path.stat().st_size > 2 * lora_parameters  # it really holds the weights (float16)
    assert path.stat().st_size < 4 * lora_parameters  # ... in half precision


# --- the edit pipeline over a folder and an adapter file ------------------------------------


def test_pipeline_switches_between_base_and_adapter(base_dir, tmp_path):
    adapter, trained = train_fake_adapter(base_dir, "a watercolor painting", seed=1)
    path = save_adapter(tmp_path / "w.safetensors", adapter)
    image = Image.new("RGB", (20, 17), (200, 30, 60))
    pipeline = EditPipeline.from_pretrained(base_dir, device="cpu")
    bare = pipeline([image], "a cartoon")[0]
    assert bare.size == (20, 17)  # its own size, though the model works in multiples of 8
    with pytest.raises(E2GANError, match="give a prompt"):
        pipeline.default_prompt(None)
    name = pipeline.load_adapter(path)
    assert pipeline.default_prompt(None) == "a watercolor painting"
    styled = pipeline([image], "a watercolor painting", size=24)[0]
    assert styled.size == (28, 24)  # the short side at 24, the long one in proportion
    pipeline.use_adapter(name, scale=0.0)
    with_zero = pipeline([image], "a cartoon")[0]
    pipeline.use_adapter(None)
    assert np.array_equal(np.asarray(with_zero), np.asarray(pipeline([image], "a cartoon")[0]))
    assert np.array_equal(np.asarray(bare), np.asarray(pipeline([image], "a cartoon")[0]))
    pipeline.load_adapter(path)  # reloading the same adapter replaces it
    assert lora.adapter_names(pipeline.generator) == [name]
    with pytest.raises(E2GANError, match="not loaded"):
        pipeline.use_adapter("nope")


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A photo-like picture: smooth colour fields, not per-pixel noise."""
    coarse = np.random.default_rng(seed).integers(0, 256, (height // 14 + 2, width // 14 + 2, 3))
    return Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BICUBIC)


@pytest.mark.parametrize("width, height", [(641, 427), (640, 427), (427, 641), (640, 424), (21, 16)])
def test_an_edit_comes_back_at_the_photos_exact_size(base_dir, width, height):
    pipeline = EditPipeline.from_pretrained(base_dir, device="cpu")
    assert pipeline.generator.size_multiple == 8
    assert pipeline([photo(width, height)], "a cartoon")[0].size == (width, height)


def test_an_edit_at_a_size_comes_back_with_that_short_side_and_the_photos_proportions(base_dir):
    pipeline = EditPipeline.from_pretrained(base_dir, device="cpu")
    assert pipeline([photo(641, 427)], "a cartoon", size=427)[0].size == (641, 427)
    assert pipeline([photo(641, 427)], "a cartoon", size=100)[0].size == (150, 100)


def test_an_odd_sized_photo_is_edited_like_the_same_photo_at_a_multiple(base_dir):
    """Padding to the model's multiple and cropping back keeps every pixel in place: a photo 1 px
    wider and 3 px taller than a multiple is edited, away from the edge where the two photos
    differ, as the photo at the multiple is (a resize to the multiple and back would move and
    blur every pixel)."""
    pipeline = EditPipeline.from_pretrained(base_dir, device="cpu", precision="fp32")
    odd = photo(641, 427)
    even = odd.crop((0, 0, 640, 424))
    edited_odd = np.asarray(pipeline([odd], "a cartoon")[0], dtype=float)[:424, :640]
    edited_even = np.asarray(pipeline([even], "a cartoon")[0], dtype=float)
    interior = np.abs(edited_odd - edited_even)[:-64, :-64]
    assert interior.mean() < 1.5 and np.percentile(interior, 99.9) <= 6, (interior.mean(), interior.max())
    resized = pipeline([odd.resize((640, 424), Image.BICUBIC)], "a cartoon")[0]
    moved = np.abs(np.asarray(resized.resize((641, 427), Image.BICUBIC), dtype=float)[:424, :640]
                   - edited_even)[:-64, :-64]
    assert moved.mean() > 10 * interior.mean()  # what the check above would see if pixels moved

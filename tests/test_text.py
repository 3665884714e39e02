import pytest
import torch

from e2gan.errors import E2GANError
from e2gan.text import (TEXT_ENCODERS, LearnedConceptEncoder, OpenCLIPTextEncoder,
                        build_text_encoder, check_compatible, concept_key)


def tiny_open_clip():
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    return CLIP(embed_dim=16,
                vision_cfg=CLIPVisionCfg(layers=1, width=32, head_width=16, patch_size=16, image_size=32),
                text_cfg=CLIPTextCfg(context_length=77, width=32, heads=2, layers=1))


def test_concept_keys_normalise_spelling():
    assert concept_key("  A Pencil-Sketch! ") == "a_pencil_sketch"
    with pytest.raises(E2GANError):
        concept_key("!!")


def test_learned_encoder_gives_each_concept_its_own_tokens():
    encoder = LearnedConceptEncoder(embedding_dim=8, tokens_per_concept=3, concepts=["night", "winter"])
    out = encoder(["night", "Winter", "night"])
    assert out.shape == (3, 3, 8)
    assert torch.equal(out[0], out[2]) and not torch.equal(out[0], out[1])
    with pytest.raises(E2GANError, match="no embedding for concept 'thermal'"):
        encoder(["thermal"])


def test_a_new_learned_concept_starts_near_the_known_ones_and_is_trainable():
    encoder = LearnedConceptEncoder(embedding_dim=8, tokens_per_concept=2, concepts=["a", "b"])
    table = encoder.add_concept("c")
    mean = torch.stack([encoder.tables["a"], encoder.tables["b"]]).mean(0)
    assert torch.allclose(table, mean, atol=0.1)
    encoder(["c"]).sum().backward()
    assert table.grad is not None
    with pytest.raises(E2GANError, match="already has an embedding"):
        encoder.add_concept("C")


def test_clip_encoder_embeds_prompts_with_an_open_clip_text_tower():
    encoder = OpenCLIPTextEncoder(model_name="ViT-B-32", pretrained=None, model=tiny_open_clip())
    out = encoder(["a snowy winter scene", "a pencil sketch"])
    assert out.shape == (2, 1, 16)
    assert torch.allclose(out.norm(dim=-1), torch.ones(2, 1), atol=1e-5)  # normalised
    assert not torch.allclose(out[0], out[1])
    assert not any(p.requires_grad for p in encoder.parameters())  # frozen


def test_clip_weights_missing_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    with pytest.raises(E2GANError, match="not on this machine"):
        OpenCLIPTextEncoder(model_name="ViT-B-32", pretrained="laion2b_s34b_b79k")


def test_a_generator_refuses_embeddings_from_another_encoder():
    learned = LearnedConceptEncoder(embedding_dim=16)
    clip = OpenCLIPTextEncoder(model_name="ViT-B-32", pretrained=None, model=tiny_open_clip())
    with pytest.raises(E2GANError, match="trained with text encoder 'learned'"):
        check_compatible(learned.spec(), clip)
    check_compatible(learned.spec(), build_text_encoder(learned.spec()))


def test_registry_lists_both_encoders_and_refuses_duplicates():
    assert {"learned", "clip"} <= set(TEXT_ENCODERS.names())
    with pytest.raises(ValueError, match="already registered"):
        TEXT_ENCODERS.add("learned", LearnedConceptEncoder)


def test_a_frozen_encoder_keeps_only_its_most_recent_prompts(monkeypatch):
    # A studio embeds whatever its visitors type, for the process's life: the cache is bounded,
    # and a prompt that left it is embedded again, to the same tokens.
    import e2gan.text

    monkeypatch.setattr(e2gan.text, "CACHED_PROMPTS", 3)
    encoder = OpenCLIPTextEncoder(model_name="ViT-B-32", pretrained=None, model=tiny_open_clip())
    first = encoder(["a winter scene"])
    for index in range(10):
        encoder([f"prompt {index}", "a repeated prompt"])
    assert len(encoder._cache) == 3
    assert list(encoder._cache)[-2:] == ["prompt 9", "a repeated prompt"]
    assert torch.allclose(encoder(["a winter scene", "prompt 9"])[0], first[0])

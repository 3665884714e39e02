"""Tiny, randomly initialised diffusers pipelines built entirely in code (no download).

They have the real architectures' shapes in miniature (a two-level UNet, a two-level VAE, a
five-layer CLIP text model, a byte-level CLIP tokenizer from an in-memory vocabulary), so every
teacher runs through the real diffusers call on CPU in well under a second. `save_tiny_pipeline`
writes one with `save_pretrained`, which is what the teachers then load with `from_pretrained`.
"""

from __future__ import annotations

from pathlib import Path

import torch

TEXT_WIDTH = 32
MAX_TOKENS = 16  # the tokenizer's model_max_length must equal the text model's positions


def tiny_tokenizer():
    """A CLIP tokenizer over the 256 byte symbols (with and without end-of-word), no merges:
    every text tokenizes, one token per byte."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    symbols = sorted(ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for symbol in symbols:
        vocab[symbol] = len(vocab)
    for symbol in symbols:
        vocab[symbol + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=MAX_TOKENS)


def tiny_text_encoder(seed: int = 0):
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    config = CLIPTextConfig(bos_token_id=512, eos_token_id=513, pad_token_id=513,
                            hidden_size=TEXT_WIDTH, intermediate_size=37, layer_norm_eps=1e-5,
                            num_attention_heads=4, num_hidden_layers=5, vocab_size=520,
                            max_position_embeddings=MAX_TOKENS)
    return CLIPTextModel(config).eval()


def tiny_unet(in_channels: int = 4, seed: int = 0):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=in_channels,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=TEXT_WIDTH,
        norm_num_groups=32, attention_head_dim=8)


def tiny_vae(seed: int = 0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3,
                         down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                         up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
                         latent_channels=4, norm_num_groups=32, sample_size=32)


def tiny_controlnet(seed: int = 0):
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    return ControlNetModel(
        block_out_channels=(32, 64), layers_per_block=1, in_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), cross_attention_dim=TEXT_WIDTH,
        conditioning_embedding_out_channels=(16, 32), norm_num_groups=32, attention_head_dim=8)


def tiny_components(kind: str) -> dict:
    """The components of a tiny pipeline of `kind`: 'instruct-pix2pix', 'sd-img2img',
    'sd-turbo' or 'controlnet'."""
    from diffusers import DDIMScheduler, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler

    schedulers = {
        "instruct-pix2pix": lambda: EulerAncestralDiscreteScheduler(beta_schedule="scaled_linear"),
        "sd-img2img": lambda: DDIMScheduler(beta_schedule="scaled_linear", clip_sample=False,
                                            set_alpha_to_one=False, steps_offset=1),
        # SD-Turbo's scheduler: Euler with trailing timesteps, so one step starts at pure noise.
        "sd-turbo": lambda: EulerDiscreteScheduler(beta_schedule="scaled_linear",
                                                   timestep_spacing="trailing"),
        "controlnet": lambda: DDIMScheduler(beta_schedule="scaled_linear", clip_sample=False,
                                            set_alpha_to_one=False, steps_offset=1),
    }
    if kind not in schedulers:
        raise ValueError(f"unknown tiny pipeline kind {kind!r}")
    components = {
        "unet": tiny_unet(in_channels=8 if kind == "instruct-pix2pix" else 4),
        "vae": tiny_vae(), "text_encoder": tiny_text_encoder(), "tokenizer": tiny_tokenizer(),
        "scheduler": schedulers[kind](), "safety_checker": None, "feature_extractor": None,
    }
    if kind == "controlnet":
        components["controlnet"] = tiny_controlnet()
    return components


def build_tiny_pipeline(kind: str):
    from diffusers import (
        StableDiffusionControlNetImg2ImgPipeline,
        StableDiffusionImg2ImgPipeline,
        StableDiffusionInstructPix2PixPipeline,
    )

    classes = {"instruct-pix2pix": StableDiffusionInstructPix2PixPipeline,
               "sd-img2img": StableDiffusionImg2ImgPipeline,
               "sd-turbo": StableDiffusionImg2ImgPipeline,
               "controlnet": StableDiffusionControlNetImg2ImgPipeline}
    return classes[kind](**tiny_components(kind), requires_safety_checker=False)


def save_tiny_pipeline(kind: str, folder: str | Path) -> Path:
    """Write a tiny pipeline of `kind` to `folder` as diffusers' own `save_pretrained` lays it out.
    For 'controlnet' the ControlNet goes to `folder/controlnet` and the pipeline beside it, as a
    user's two downloads would be."""
    folder = Path(folder)
    pipeline = build_tiny_pipeline(kind)
    pipeline.save_pretrained(folder)
    return folder

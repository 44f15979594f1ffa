"""Named EmoLLM set-ups: ``from_named("emollm-tiny")`` -> ``(model, processor)``."""

from __future__ import annotations

import importlib.util
from typing import Any

import torch
from transformers import WhisperFeatureExtractor

from emollm.model.configuration_emollm import EmoLLMConfig
from emollm.model.modeling_emollm import EmoLLMForConditionalGeneration
from emollm.model.processing_emollm import EmoLLMProcessor
from emollm.model.tokenizer import build_tiny_tokenizer

__all__ = ["NAMES", "default_attn_implementation", "from_named", "image_processor"]

NAMES = ("emollm-tiny", "emollm-7b")

# emollm-tiny: 32 px images with 4 px patches = 64 patch tokens (the MVP's first stage needs 64);
# Whisper with 50 positions = 100 mel frames = 1 s of 16 kHz audio; a 2-layer LLaMA of width 64.
_TINY_VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                "image_size": 32, "patch_size": 4, "projection_dim": 32}
_TINY_AUDIO = {"d_model": 32, "encoder_layers": 2, "encoder_attention_heads": 2, "encoder_ffn_dim": 64,
               "decoder_layers": 1, "decoder_attention_heads": 2, "decoder_ffn_dim": 64, "num_mel_bins": 80,
               "max_source_positions": 50}
_TINY_TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "max_position_embeddings": 4096}


def default_attn_implementation(device: str | torch.device | None = None) -> str:
    """``"flash_attention_2"`` when flash-attn is importable and ``device`` is CUDA, else ``"sdpa"``."""
    cuda = device is not None and torch.device(device).type == "cuda"
    return "flash_attention_2" if cuda and importlib.util.find_spec("flash_attn") is not None else "sdpa"


def image_processor(size: int, **kwargs):
    """A CLIP image processor at ``size`` px: the torchvision one where torchvision is installed,
    else the PIL one (transformers would fall back to it anyway, with a warning)."""
    from transformers import CLIPImageProcessor, CLIPImageProcessorPil

    cls = CLIPImageProcessor if importlib.util.find_spec("torchvision") is not None else CLIPImageProcessorPil
    return cls(size={"shortest_edge": size}, crop_size={"height": size, "width": size}, **kwargs)


def _merged(defaults: dict, override: dict | None) -> dict:
    return {**defaults, **(override or {})}


def from_named(name: str, *, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
               attn_implementation: str | None = None, seed: int = 0, **overrides: Any):
    """``(EmoLLMForConditionalGeneration, EmoLLMProcessor)`` for a named set-up.

    ``emollm-tiny``: random weights (seeded by ``seed``), tiny dims, offline; runs on CPU in
    seconds. ``overrides`` are ``EmoLLMConfig`` fields; ``vision_config`` / ``audio_config`` /
    ``text_config`` dicts update the tiny sub-configs key by key. ``attn_implementation`` is for
    the LM: default :func:`default_attn_implementation` (the towers keep transformers' choice).

    ``emollm-7b`` (CLIP ViT-L/14, whisper-base, vicuna-7b-v1.5) is planned: it will load the three
    pretrained parts from local paths (``vision_path``, ``audio_path``, ``text_path``) or a hub.
    """
    if name == "emollm-7b":
        raise NotImplementedError("emollm-7b is not built yet: it is planned to load CLIP ViT-L/14, whisper-base and "
                                  "vicuna-7b-v1.5 from local paths (vision_path=, audio_path=, text_path=); use "
                                  "EmoLLMConfig + EmoLLMForConditionalGeneration with your own weights meanwhile")
    if name != "emollm-tiny":
        raise ValueError(f"unknown EmoLLM name {name!r}; known: {', '.join(NAMES)}")

    tokenizer = build_tiny_tokenizer()
    vision = _merged(_TINY_VISION, overrides.pop("vision_config", None))
    audio = _merged(_TINY_AUDIO, overrides.pop("audio_config", None))
    text = _merged(_TINY_TEXT, overrides.pop("text_config", None))
    text.update(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    fields = {"image_token_id": tokenizer.convert_tokens_to_ids("<image>"),
              "video_token_id": tokenizer.convert_tokens_to_ids("<video>"),
              "audio_token_id": tokenizer.convert_tokens_to_ids("<audio>"),
              "audio_pool_stride": 5,  # 50 positions -> 10 audio tokens
              **overrides}
    config = EmoLLMConfig(vision_config=vision, audio_config=audio, text_config=text, **fields)
    impl = attn_implementation or default_attn_implementation(device)
    config.text_config._attn_implementation = impl

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = EmoLLMForConditionalGeneration(config)
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    model.eval()

    # The extractor pads/truncates to chunk_length seconds = 100 mel frames per second (hop 160
    # at 16 kHz), which must be exactly the encoder's 2 * max_source_positions frames.
    mel_frames = 2 * config.audio_config.max_source_positions
    if mel_frames % 100:
        raise ValueError(f"max_source_positions must be a multiple of 50 (whole seconds of audio), got "
                         f"{config.audio_config.max_source_positions}")
    features = WhisperFeatureExtractor(feature_size=config.audio_config.num_mel_bins, sampling_rate=16000,
                                       hop_length=160, chunk_length=mel_frames // 100)
    processor = EmoLLMProcessor(image_processor(config.vision_config.image_size), features, tokenizer,
                                num_image_tokens=config.num_image_tokens, frames_per_event=config.frames_per_event,
                                audio_pool_stride=config.audio_pool_stride)
    return model, processor

"""Named EmoLLM set-ups: ``from_named("emollm-tiny" | "emollm-7b")`` -> ``(model, processor)``."""

from __future__ import annotations

from typing import Any

import torch

from emollm.model.attention import default_attn_implementation
from emollm.model.configuration_emollm import EmoLLMConfig
from emollm.model.modeling_emollm import EmoLLMForConditionalGeneration
from emollm.model.pretrained_towers import from_pretrained_towers
from emollm.model.processing_emollm import EmoLLMProcessor, clip_image_processor, whisper_feature_extractor
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


def image_processor(size: int):
    """CLIP's default image processor at ``size`` px (see :func:`clip_image_processor`)."""
    return clip_image_processor(size)


def _merged(defaults: dict, override: dict | None) -> dict:
    return {**defaults, **(override or {})}


def _tiny(device, dtype, attn_implementation, seed, overrides):
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
    config.text_config._attn_implementation = attn_implementation or default_attn_implementation(device)
    features = whisper_feature_extractor(config.audio_config)  # checks the audio length first

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = EmoLLMForConditionalGeneration(config)
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    model.eval()
    processor = EmoLLMProcessor(image_processor(config.vision_config.image_size), features, tokenizer,
                                num_image_tokens=config.num_image_tokens, frames_per_event=config.frames_per_event,
                                audio_pool_stride=config.audio_pool_stride)
    return model, processor


def from_named(name: str, *, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
               attn_implementation: str | None = None, seed: int = 0, device_map=None, **overrides: Any):
    """``(EmoLLMForConditionalGeneration, EmoLLMProcessor)`` for a named set-up.

    ``emollm-tiny``: random weights (seeded by ``seed``), tiny dims, offline; runs on CPU in
    seconds. ``overrides`` are ``EmoLLMConfig`` fields; ``vision_config`` / ``audio_config`` /
    ``text_config`` dicts update the tiny sub-configs key by key.

    ``emollm-7b``: CLIP ViT-L/14 (224 px), whisper-base and vicuna-7b-v1.5 with their pretrained
    weights, from ``vision=`` / ``audio=`` / ``text=`` (local folders or hub names), else the
    ``EMOLLM_CLIP`` / ``EMOLLM_WHISPER`` / ``EMOLLM_VICUNA`` environment variables, else the hub
    names ``openai/clip-vit-large-patch14``, ``openai/whisper-base``, ``lmsys/vicuna-7b-v1.5``. The
    MVP and the audio MLP are new weights (seeded by ``seed``); ``device_map`` goes to the LM's
    ``from_pretrained``; other ``overrides`` are ``EmoLLMConfig`` fields. See
    :func:`~emollm.model.pretrained_towers.from_pretrained_towers`.

    ``attn_implementation`` is the LM's: default :func:`default_attn_implementation` (the towers
    keep transformers' default, sdpa). ``torch_dtype`` is accepted as the older name of ``dtype``.
    """
    if "torch_dtype" in overrides:
        torch_dtype = overrides.pop("torch_dtype")
        if dtype is not None and torch_dtype != dtype:
            raise ValueError(f"dtype={dtype} and torch_dtype={torch_dtype} disagree; give only dtype")
        dtype = torch_dtype
    if name == "emollm-7b":
        paths = {part: overrides.pop(part, None) for part in ("vision", "audio", "text")}
        return from_pretrained_towers(**paths, dtype=dtype, device=device, device_map=device_map,
                                      attn_implementation=attn_implementation, seed=seed, **overrides)
    if name != "emollm-tiny":
        raise ValueError(f"unknown EmoLLM name {name!r}; known: {', '.join(NAMES)}")
    if device_map is not None:
        raise ValueError("device_map is for emollm-7b's pretrained LM; place emollm-tiny with device=")
    return _tiny(device, dtype, attn_implementation, seed, overrides)

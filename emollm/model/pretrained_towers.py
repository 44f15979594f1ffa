"""EmoLLM from pretrained towers: a CLIP vision checkpoint, a Whisper checkpoint and a LLaMA LM
(``emollm-7b`` = CLIP ViT-L/14 224 px + whisper-base + vicuna-7b-v1.5, paper §5.1).

Each tower is loaded with its own ``from_pretrained`` (so ``dtype``, ``device_map`` and the LM's
``attn_implementation`` behave as transformers users expect) and must supply every weight it is
used for: a missing weight would otherwise be random-initialized with only a log line. The MVP and
the audio MLP are new (seeded) weights. The LM's tokenizer gets the ``<image>`` / ``<video>`` /
``<audio>`` placeholders as special tokens, and the LM's embeddings and head grow by their rows.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoTokenizer,
    CLIPVisionModel,
    LlamaForCausalLM,
    PreTrainedModel,
    WhisperModel,
)
from transformers.utils import logging as hf_logging

from emollm.model.attention import default_attn_implementation
from emollm.model.configuration_emollm import EmoLLMConfig
from emollm.model.modeling_emollm import EmoLLMForConditionalGeneration, new_projectors
from emollm.model.processing_emollm import EmoLLMProcessor, clip_image_processor, whisper_feature_extractor
from emollm.model.tokenizer import VICUNA_V1_TEMPLATE

__all__ = ["PLACEHOLDERS", "TOWERS", "Tower", "from_pretrained_towers", "resolve_source"]

PLACEHOLDERS = ("<image>", "<video>", "<audio>")


@dataclass(frozen=True)
class Tower:
    """One pretrained part: its environment variable, its hub default, the ``model_type`` values its
    ``config.json`` may carry, and what it is, in words (for error messages)."""

    env: str
    default: str
    model_types: tuple[str, ...]
    what: str


TOWERS = {
    "vision": Tower("EMOLLM_CLIP", "openai/clip-vit-large-patch14", ("clip", "clip_vision_model"),
                    "a CLIP checkpoint (CLIPModel or CLIPVisionModel)"),
    "audio": Tower("EMOLLM_WHISPER", "openai/whisper-base", ("whisper",),
                   "a Whisper checkpoint (WhisperForConditionalGeneration or WhisperModel)"),
    "text": Tower("EMOLLM_VICUNA", "lmsys/vicuna-7b-v1.5", ("llama",),
                  "a LLaMA causal LM checkpoint with its tokenizer (e.g. Vicuna)"),
}

# A hub id is "name" or "owner/name"; anything else that does not exist locally is a missing folder.
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


def resolve_source(part: str, value: str | os.PathLike | None = None) -> str:
    """Where ``part`` (``"vision"``, ``"audio"`` or ``"text"``) comes from: ``value``, else the
    part's environment variable (``EMOLLM_CLIP`` / ``EMOLLM_WHISPER`` / ``EMOLLM_VICUNA``), else its
    hub name. A local folder must exist and hold a ``config.json``; a hub name is returned as is."""
    tower = TOWERS[part]
    source = str(value) if value is not None else os.environ.get(tower.env) or tower.default
    path = Path(source).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ValueError(f"{part}={source!r} has no config.json; expected {tower.what} saved with "
                             "save_pretrained")
        return str(path)
    if source.startswith((".", "/", "~")) or not _HUB_ID.match(source):
        raise ValueError(f"{part}={source!r}: no such folder; expected {tower.what} (set {part}= or {tower.env})")
    return source


def _check_model_type(part: str, source: str) -> None:
    tower = TOWERS[part]
    try:
        model_type = AutoConfig.from_pretrained(source).model_type
    except OSError as e:
        raise ValueError(f"{part}={source!r} is not a local folder and could not be fetched from the Hugging Face "
                         f"Hub ({e}); pass {part}=PATH or set {tower.env} to a local copy") from e
    if model_type not in tower.model_types:
        raise ValueError(f"{part}={source!r} is a {model_type!r} checkpoint; expected {tower.what}, model_type "
                         f"{' or '.join(map(repr, tower.model_types))}")


@contextmanager
def _quiet_load_reports():
    """Silence transformers' per-load key reports: a full CLIP checkpoint has a text half and a
    Whisper one a decoder that we do not use, so "unexpected keys" is the normal case here; missing
    keys, the harmful case, are checked by :func:`_load`."""
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def _load(cls: type[PreTrainedModel], part: str, source: str, used_prefix: str = "", **kwargs) -> PreTrainedModel:
    """``cls.from_pretrained(source, **kwargs)``; raises if a weight under ``used_prefix`` is missing."""
    with _quiet_load_reports():
        model, info = cls.from_pretrained(source, output_loading_info=True, **kwargs)
    missing = sorted(k for k in info["missing_keys"] if k.startswith(used_prefix))
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise ValueError(f"{part}={source!r} lacks weights that {cls.__name__} needs: {shown}")
    return model


def _prepare_tokenizer(source: str):
    """The LM's tokenizer with the placeholders added as special tokens; ``<unk>`` doubles as padding
    when there is no pad token (as FastChat and LLaVA do for LLaMA), and Vicuna v1's chat template
    is set when the checkpoint has none (Vicuna v1.5 ships without one)."""
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.add_tokens([t for t in PLACEHOLDERS if t not in tokenizer.get_vocab()], special_tokens=True)
    if tokenizer.pad_token is None:
        if tokenizer.unk_token is None:
            raise ValueError(f"text={source!r}: the tokenizer has neither a pad nor an unk token to pad with")
        tokenizer.pad_token = tokenizer.unk_token
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = VICUNA_V1_TEMPLATE
    return tokenizer


def _grow_vocabulary(model: EmoLLMForConditionalGeneration, size: int) -> None:
    """Resize the LM's embeddings and head to ``size`` rows; new rows are the mean of the old ones
    (Hewitt 2021: keeps the new tokens' logits near the average; our placeholders' input rows are
    always replaced by media features, so only the head rows matter)."""
    old = model.get_input_embeddings().weight.shape[0]
    if size <= old:
        return
    model.resize_token_embeddings(size, mean_resizing=False)
    with torch.no_grad():
        for weight in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
            weight[old:] = weight[:old].float().mean(0).to(weight.dtype)


def _assemble(config: EmoLLMConfig, vision: CLIPVisionModel, audio: nn.Module, lm: LlamaForCausalLM,
              seed: int) -> EmoLLMForConditionalGeneration:
    """An EmoLLM whose towers are the loaded modules (not copies: the LM keeps any device-map hooks)
    and whose MVP and audio MLP are new, initialized as ``post_init`` initializes them."""
    with torch.device("meta"):  # a skeleton: every meta parameter is replaced below
        model = EmoLLMForConditionalGeneration(config)
    base = model.model
    base.vision_tower, base.audio_tower = vision, audio
    base.language_model, model.lm_head = lm.model, lm.lm_head
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        projector, audio_projector = new_projectors(config)
        for module in (*projector.modules(), *audio_projector.modules()):
            model._init_weights(module)
    device, dtype = lm.get_input_embeddings().weight.device, lm.dtype
    base.projector, base.audio_projector = projector.to(device, dtype), audio_projector.to(device, dtype)
    leftover = [name for name, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if leftover:  # a bug here, never the user's input
        raise RuntimeError(f"EmoLLM assembly left parameters unset: {leftover[:4]}")
    model.generation_config = lm.generation_config
    model.freeze_encoders()
    return model.eval()


def _placement(device: str | torch.device | None, device_map) -> str | torch.device | None:
    """The device the model lands on, for choosing the attention implementation."""
    if device is not None:
        return device
    if device_map == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if isinstance(device_map, int):
        return torch.device("cuda", device_map)
    if isinstance(device_map, (str, torch.device)):
        return device_map
    if isinstance(device_map, dict):  # a module -> device plan: CUDA if any part is on a GPU
        gpu = any(isinstance(d, int) or torch.device(d).type == "cuda" for d in device_map.values()
                  if d not in ("disk", "meta"))
        return "cuda" if gpu else "cpu"
    return None


def from_pretrained_towers(vision: str | os.PathLike | None = None, audio: str | os.PathLike | None = None,
                           text: str | os.PathLike | None = None, *, dtype: torch.dtype | str | None = None,
                           device: str | torch.device | None = None, device_map=None,
                           attn_implementation: str | None = None, seed: int = 0, **config_fields):
    """``(EmoLLMForConditionalGeneration, EmoLLMProcessor)`` from three pretrained checkpoints.

    Args:
        vision / audio / text: local folders or hub names (see :func:`resolve_source` for the
            ``EMOLLM_CLIP`` / ``EMOLLM_WHISPER`` / ``EMOLLM_VICUNA`` fallbacks and the defaults).
        dtype: of every part; default the LM checkpoint's own dtype (``"auto"``), which the towers
            and the new projectors then take too.
        device / device_map: ``device_map`` is passed to the LM's ``from_pretrained`` (default
            ``device``, so the weights load straight onto it); the towers and the projectors go to
            the device of the LM's input embeddings.
        attn_implementation: the LM's; default ``flash_attention_2`` where flash-attn is installed
            and the model lands on CUDA, else ``sdpa``. The towers use transformers' default (sdpa).
        seed: for the new MVP and audio MLP weights.
        config_fields: other ``EmoLLMConfig`` fields (``mvp``, ``audio_pool_stride``, ...).
    """
    sources = {part: resolve_source(part, value) for part, value in (("vision", vision), ("audio", audio),
                                                                     ("text", text))}
    for part, source in sources.items():
        _check_model_type(part, source)
    tokenizer = _prepare_tokenizer(sources["text"])
    impl = attn_implementation or default_attn_implementation(_placement(device, device_map))
    lm = _load(LlamaForCausalLM, "text", sources["text"], dtype=dtype or "auto", attn_implementation=impl,
               device_map=device_map if device_map is not None else device)
    place = {"dtype": lm.dtype, "device_map": lm.get_input_embeddings().weight.device}
    clip = _load(CLIPVisionModel, "vision", sources["vision"], **place)
    whisper = _load(WhisperModel, "audio", sources["audio"], used_prefix="encoder.", **place)
    audio_tower = whisper.encoder
    del whisper  # the decoder is not used

    ids = dict(zip(("image_token_id", "video_token_id", "audio_token_id"),
                   tokenizer.convert_tokens_to_ids(list(PLACEHOLDERS)), strict=True))
    towers = {"vision_config": clip, "audio_config": audio_tower, "text_config": lm}
    loaded_impls = {key: tower.config._attn_implementation for key, tower in towers.items()}
    config = EmoLLMConfig(**{key: tower.config for key, tower in towers.items()}, **ids, **config_fields)
    for key, loaded in loaded_impls.items():  # the composite config resets its sub-configs' choice
        getattr(config, key)._attn_implementation = loaded
    config.text_config.pad_token_id = tokenizer.pad_token_id
    config.dtype = lm.dtype
    model = _assemble(config, clip, audio_tower, lm, seed)
    _grow_vocabulary(model, len(tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id

    processor = EmoLLMProcessor(clip_image_processor(config.vision_config.image_size, sources["vision"]),
                                whisper_feature_extractor(config.audio_config, sources["audio"]), tokenizer,
                                num_image_tokens=config.num_image_tokens, frames_per_event=config.frames_per_event,
                                audio_pool_stride=config.audio_pool_stride)
    return model, processor

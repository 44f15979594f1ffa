"""EmoLLM model (paper §4.1-4.2, docs/design.md#architecture-and-data-flow).

CLIP vision tower (layer ``vision_feature_layer``, patch tokens) -> :class:`MVPProjector` for
images and videos; Whisper encoder -> average pooling -> 2-layer MLP for audio; the results
replace the placeholder tokens of a LLaMA LM's input embeddings, in order of appearance.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn
from transformers import AutoModel, CLIPVisionModel, GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from emollm.model._compat import CACHE_NAME, one_cache
from emollm.model.configuration_emollm import EmoLLMConfig
from emollm.projector import MVPProjector

__all__ = ["EmoLLMCausalLMOutput", "EmoLLMForConditionalGeneration", "EmoLLMModel", "EmoLLMPreTrainedModel"]

# Inputs that only the prefill step consumes: after it, their embeddings live in the KV cache.
# The *_patch_tokens / audio_encoder_states are the frozen towers' outputs, read from a feature
# cache (emollm.training.feature_cache) in place of the media.
MULTIMODAL_INPUTS = ("pixel_values", "pixel_values_videos", "video_frame_mask", "input_features",
                     "image_patch_tokens", "video_patch_tokens", "audio_encoder_states")


@dataclass
class EmoLLMCausalLMOutput(CausalLMOutputWithPast):
    """``loss`` (scalar, with ``labels``), ``logits`` ``[B,L,V]``, the KV cache, ``hidden_states``,
    ``attentions`` (the LM's). The cache field is the installed transformers' own: ``cache`` from
    5.24 on, ``past_key_values`` before (``emollm.model._compat.CACHE_NAME``)."""


class EmoLLMPreTrainedModel(PreTrainedModel):
    config: EmoLLMConfig
    config_class = EmoLLMConfig
    base_model_prefix = "model"
    input_modalities = ("image", "video", "audio", "text")
    supports_gradient_checkpointing = True
    _skip_keys_device_placement: ClassVar[list[str]] = ["cache", "past_key_values"]
    _no_split_modules: ClassVar[list[str]] = ["LlamaDecoderLayer", "CLIPEncoderLayer", "WhisperEncoderLayer"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_attention_backend = True

    def freeze_encoders(self) -> None:
        """Apply ``config.freeze_vision`` / ``config.freeze_audio``: the towers' parameters get
        ``requires_grad=False`` (the rest is left as it is)."""
        base = self.model if isinstance(self, EmoLLMForConditionalGeneration) else self
        if self.config.freeze_vision:
            base.vision_tower.requires_grad_(False)
        if self.config.freeze_audio:
            base.audio_tower.requires_grad_(False)
        base.audio_tower.embed_positions.requires_grad_(False)  # Whisper's sinusoids are never trained

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        # Loading materializes fresh parameters (requires_grad=True), which undoes the freezing
        # done in __init__.
        model = super().from_pretrained(*args, **kwargs)
        model.freeze_encoders()
        return model


class AudioProjector(nn.Module):
    """Whisper states ``[A,P,d_audio]`` -> average pool (window = stride = ``stride``) -> Linear, GELU,
    Linear -> ``[A, P // stride, d_text]``."""

    def __init__(self, in_dim: int, out_dim: int, stride: int):
        super().__init__()
        self.stride = stride
        self.linear_1 = nn.Linear(in_dim, out_dim)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(out_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = nn.functional.avg_pool1d(x.transpose(1, 2), self.stride, self.stride).transpose(1, 2)
        return self.linear_2(self.act(self.linear_1(x)))


def new_projectors(config: EmoLLMConfig) -> tuple[MVPProjector, AudioProjector]:
    """The MVP and the audio MLP for ``config``, with PyTorch's default initialization (the model's
    ``post_init`` / ``_init_weights`` re-initializes them)."""
    text_hidden = config.text_config.hidden_size
    return (MVPProjector(config.vision_config.hidden_size, text_hidden, config.mvp_config),
            AudioProjector(config.audio_config.d_model, text_hidden, config.audio_pool_stride))


def _grad_context(module: nn.Module):
    # A frozen encoder sits at the start of the graph: no activations need keeping for backward.
    return nullcontext() if any(p.requires_grad for p in module.parameters()) else torch.no_grad()


class EmoLLMModel(EmoLLMPreTrainedModel):
    """Encoders, projectors and the LM body (no LM head)."""

    def __init__(self, config: EmoLLMConfig):
        super().__init__(config)
        self.vision_tower = CLIPVisionModel(config.vision_config)
        self.audio_tower = WhisperEncoder(config.audio_config)
        self.projector, self.audio_projector = new_projectors(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.freeze_encoders()
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def _patch_tokens(self, pixel_values: Tensor) -> Tensor:
        """``[M,3,H,W]`` -> the vision tower's patch tokens at ``vision_feature_layer`` ``[M,N,D]``."""
        with _grad_context(self.vision_tower):
            out = self.vision_tower(pixel_values.to(self.vision_tower.dtype), output_hidden_states=True)
        return out.hidden_states[self.config.vision_feature_layer][:, 1:]

    def get_image_features(self, pixel_values: Tensor | None = None, image_patch_tokens: Tensor | None = None,
                           ) -> Tensor:
        """``pixel_values`` ``[I,3,H,W]``, or the tower's patch tokens ``image_patch_tokens``
        ``[I,N,D]`` computed earlier -> ``[I, num_tokens, d_text]``."""
        tokens = self._patch_tokens(pixel_values) if image_patch_tokens is None else image_patch_tokens
        return self.projector(tokens)

    def get_video_features(self, pixel_values_videos: Tensor | None = None, video_frame_mask: Tensor | None = None,
                           video_patch_tokens: Tensor | None = None) -> Tensor:
        """``pixel_values_videos`` ``[V,T,3,H,W]``, or the tower's patch tokens of every frame
        ``video_patch_tokens`` ``[V,T,N,D]`` computed earlier (``video_frame_mask`` ``[V,T]`` bool,
        real frames first) -> ``[sum_v ceil(T_v / frames_per_event) * num_tokens, d_text]``, video-major."""
        given = pixel_values_videos if video_patch_tokens is None else video_patch_tokens
        v, t = given.shape[:2]
        if video_frame_mask is None:
            video_frame_mask = torch.ones(v, t, dtype=torch.bool, device=given.device)
        video_frame_mask = video_frame_mask.to(device=given.device, dtype=torch.bool)
        if video_patch_tokens is not None:
            frames = video_patch_tokens * video_frame_mask[:, :, None, None]  # padded frames are zero
        else:
            # Only the real frames go through the tower; padded frames stay zero and masked.
            real = self._patch_tokens(pixel_values_videos[video_frame_mask])  # [sum T_v, N, D]
            frames = real.new_zeros(v, t, *real.shape[1:])
            frames[video_frame_mask] = real
        tokens, mask = self.projector.forward_video(frames, video_frame_mask, mode=self.config.video_mode,
                                                    frames_per_event=self.config.frames_per_event)
        return tokens[mask]

    def audio_states(self, input_features: Tensor) -> Tensor:
        """``input_features`` ``[A, n_mels, 2*max_source_positions]`` -> the Whisper encoder's last
        hidden states ``[A, P, d_audio]``."""
        with _grad_context(self.audio_tower):
            return self.audio_tower(input_features.to(self.audio_tower.dtype)).last_hidden_state

    def get_audio_features(self, input_features: Tensor | None = None, audio_encoder_states: Tensor | None = None,
                           ) -> Tensor:
        """``input_features`` ``[A, n_mels, 2*max_source_positions]``, or the encoder states
        ``audio_encoder_states`` ``[A, P, d_audio]`` computed earlier -> ``[A, P // audio_pool_stride, d_text]``."""
        states = self.audio_states(input_features) if audio_encoder_states is None else audio_encoder_states
        return self.audio_projector(states.to(self.audio_projector.linear_1.weight.dtype))

    def _placeholder_mask(self, input_ids: Tensor | None, inputs_embeds: Tensor, token_id: int) -> Tensor:
        if input_ids is not None:
            return input_ids == token_id
        token = self.get_input_embeddings()(torch.tensor(token_id, device=inputs_embeds.device))
        return (inputs_embeds == token).all(-1)

    def _scatter(self, inputs_embeds: Tensor, mask: Tensor, features: Tensor, modality: str) -> Tensor:
        features = features.reshape(-1, inputs_embeds.shape[-1])
        found = int(mask.sum())
        if found != features.shape[0]:
            raise ValueError(f"{modality}: the inputs give {features.shape[0]} {modality} embeddings but input_ids "
                             f"hold {found} {modality} placeholder tokens (expected {features.shape[0]}, found "
                             f"{found}); build the text with EmoLLMProcessor, which expands each <{modality}> to the "
                             "right count")
        return inputs_embeds.masked_scatter(mask.unsqueeze(-1), features.to(inputs_embeds.dtype))

    def embed(self, input_ids: Tensor | None = None, inputs_embeds: Tensor | None = None,
              pixel_values: Tensor | None = None, pixel_values_videos: Tensor | None = None,
              video_frame_mask: Tensor | None = None, input_features: Tensor | None = None,
              image_patch_tokens: Tensor | None = None, video_patch_tokens: Tensor | None = None,
              audio_encoder_states: Tensor | None = None) -> Tensor:
        """Text embeddings ``[B,L,d_text]`` with every placeholder replaced by its modality's features
        (from the media, or from the towers' outputs computed earlier)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        cfg = self.config
        has_image = pixel_values is not None or image_patch_tokens is not None
        has_video = pixel_values_videos is not None or video_patch_tokens is not None
        has_audio = input_features is not None or audio_encoder_states is not None
        for modality, token_id, features in (
            ("image", cfg.image_token_id, self.get_image_features(pixel_values, image_patch_tokens)
             if has_image else None),
            ("video", cfg.video_token_id, self.get_video_features(pixel_values_videos, video_frame_mask,
                                                                  video_patch_tokens) if has_video else None),
            ("audio", cfg.audio_token_id, self.get_audio_features(input_features, audio_encoder_states)
             if has_audio else None),
        ):
            if features is not None:
                mask = self._placeholder_mask(input_ids, inputs_embeds, token_id)
                inputs_embeds = self._scatter(inputs_embeds, mask, features, modality)
            elif input_ids is not None and bool((found := input_ids == token_id).any()):
                raise ValueError(f"{modality}: input_ids hold {int(found.sum())} {modality} placeholder tokens "
                                 f"(expected 0, found {int(found.sum())}) but no {modality} input was given")
        return inputs_embeds

    def forward(self, input_ids: Tensor | None = None, pixel_values: Tensor | None = None,
                pixel_values_videos: Tensor | None = None, video_frame_mask: Tensor | None = None,
                input_features: Tensor | None = None, attention_mask: Tensor | None = None,
                position_ids: Tensor | None = None, cache=None, inputs_embeds: Tensor | None = None,
                past_key_values=None, image_patch_tokens: Tensor | None = None,
                video_patch_tokens: Tensor | None = None, audio_encoder_states: Tensor | None = None, **kwargs):
        """Returns the LM body's output (``last_hidden_state`` ``[B,L,d_text]``, the KV cache...). The
        cache is accepted as ``cache`` or ``past_key_values`` on every supported transformers."""
        inputs_embeds = self.embed(input_ids, inputs_embeds, pixel_values, pixel_values_videos, video_frame_mask,
                                   input_features, image_patch_tokens, video_patch_tokens, audio_encoder_states)
        kwargs[CACHE_NAME] = one_cache(cache, past_key_values)
        return self.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                   position_ids=position_ids, **kwargs)


class EmoLLMForConditionalGeneration(EmoLLMPreTrainedModel, GenerationMixin):
    """EmoLLM with its LM head: ``forward`` gives logits (and the causal LM loss when ``labels``
    ``[B,L]`` are given, -100 ignored; labels are shifted inside), ``generate`` decodes with a KV
    cache and feeds the multimodal inputs only to the first (prefill) step.

    Inputs: ``input_ids`` ``[B,L]`` with placeholders from :class:`EmoLLMProcessor`;
    ``pixel_values`` ``[I,3,H,W]``; ``pixel_values_videos`` ``[V,T,3,H,W]`` with optional
    ``video_frame_mask`` ``[V,T]``; ``input_features`` ``[A,n_mels,frames]``. Images, videos and
    audios fill their placeholders in order of appearance (row-major over the batch). In place of
    the media, the frozen towers' outputs may be given (from a feature cache):
    ``image_patch_tokens`` ``[I,N,D]``, ``video_patch_tokens`` ``[V,T,N,D]`` (with
    ``video_frame_mask``), ``audio_encoder_states`` ``[A,P,d_audio]``.
    """

    _tied_weights_keys: ClassVar[dict[str, str]] = {"lm_head.weight": "model.language_model.embed_tokens.weight"}

    def __init__(self, config: EmoLLMConfig):
        super().__init__(config)
        self.model = EmoLLMModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    def forward(self, input_ids: Tensor | None = None, pixel_values: Tensor | None = None,
                pixel_values_videos: Tensor | None = None, video_frame_mask: Tensor | None = None,
                input_features: Tensor | None = None, attention_mask: Tensor | None = None,
                position_ids: Tensor | None = None, cache=None, inputs_embeds: Tensor | None = None,
                labels: Tensor | None = None, logits_to_keep: int | Tensor = 0, past_key_values=None,
                image_patch_tokens: Tensor | None = None, video_patch_tokens: Tensor | None = None,
                audio_encoder_states: Tensor | None = None, **kwargs) -> EmoLLMCausalLMOutput:
        out = self.model(input_ids=input_ids, pixel_values=pixel_values, pixel_values_videos=pixel_values_videos,
                         video_frame_mask=video_frame_mask, input_features=input_features,
                         attention_mask=attention_mask, position_ids=position_ids,
                         cache=one_cache(cache, past_key_values), inputs_embeds=inputs_embeds,
                         image_patch_tokens=image_patch_tokens, video_patch_tokens=video_patch_tokens,
                         audio_encoder_states=audio_encoder_states, **kwargs)
        hidden = out.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden[:, keep, :])
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size,
                                      **kwargs)
        return EmoLLMCausalLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                    attentions=out.attentions, **{CACHE_NAME: getattr(out, CACHE_NAME)})

    def generate(self, *args, **kwargs):
        """``GenerationMixin.generate`` that never emits a media placeholder id (``<image>``,
        ``<video>``, ``<audio>``): such a token fed back would claim media that no input carries.
        The placeholder ids are added to any ``suppress_tokens`` given."""
        cfg = self.config
        generation_config = kwargs.get("generation_config") or self.generation_config
        given = kwargs.get("suppress_tokens", generation_config.suppress_tokens) or []
        placeholders = (cfg.image_token_id, cfg.video_token_id, cfg.audio_token_id)
        kwargs["suppress_tokens"] = sorted({*given, *placeholders})
        return super().generate(*args, **kwargs)

    def prepare_inputs_for_generation(self, *args, is_first_iteration=False, **kwargs):
        # The cache arrives under the installed release's name and goes on to GenerationMixin as it came.
        inputs = super().prepare_inputs_for_generation(*args, is_first_iteration=is_first_iteration, **kwargs)
        # After prefill the media live in the KV cache; feeding them again would fail the
        # placeholder count (the new token holds none) and waste an encoder pass.
        if not is_first_iteration and kwargs.get("use_cache", True):
            for key in MULTIMODAL_INPUTS:
                inputs.pop(key, None)
        return inputs

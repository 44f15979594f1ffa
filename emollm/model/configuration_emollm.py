"""EmoLLM configuration: CLIP vision tower, MVP, Whisper encoder, LLaMA LM."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from huggingface_hub.dataclasses import strict
from transformers import CLIPVisionConfig, LlamaConfig, PretrainedConfig, WhisperConfig

from emollm.projector import MVPConfig

__all__ = ["EmoLLMConfig"]


@strict
class EmoLLMConfig(PretrainedConfig):
    r"""EmoLLM: ``vision_config`` (``CLIPVisionConfig``; default CLIP ViT-L/14 at 224 px, paper §5),
    ``audio_config`` (``WhisperConfig``, only the encoder is built; default whisper-base),
    ``text_config`` (``LlamaConfig``; default LLaMA-7B dims, i.e. Vicuna-7B v1.5).

    Other fields:
        mvp: the projector's settings, an :class:`~emollm.projector.MVPConfig` or its dict
            (``stages``, ``tau``, ``alpha``, ``gcn_layers``, ``combine``); stored as
            ``MVPConfig.to_dict()``, so missing keys take the defaults and the saved config is
            complete. :attr:`mvp_config` gives it back typed.
        vision_feature_layer: hidden state of the vision tower fed to the MVP (CLS dropped).
        image_token_id / video_token_id / audio_token_id: placeholder ids in ``input_ids``.
        audio_pool_stride: average-pool window and stride over Whisper encoder positions; an
            audio of P encoder positions gives ``P // audio_pool_stride`` LLM tokens.
        frames_per_event: a video of T frames gives ``ceil(T / frames_per_event)`` events of
            ``num_tokens`` tokens each.
        video_mode: ``"expand"`` (paper) or ``"hierarchical"``, see ``MVPProjector.forward_video``.
        freeze_vision / freeze_audio: keep the encoders' weights fixed (``requires_grad=False``).
    """

    model_type = "emollm"
    # The sub-configs are built here rather than through transformers' ``SubConfigSpec`` (5.20+),
    # so that one class serves every supported release (emollm/model/_compat.py).
    sub_configs: ClassVar[dict[str, type[PretrainedConfig]]] = {
        "vision_config": CLIPVisionConfig, "audio_config": WhisperConfig, "text_config": LlamaConfig,
    }
    sub_config_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "vision_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                          "num_attention_heads": 16, "patch_size": 14, "image_size": 224, "projection_dim": 768},
        "audio_config": {"d_model": 512, "encoder_layers": 6, "encoder_attention_heads": 8, "encoder_ffn_dim": 2048,
                         "decoder_layers": 6, "decoder_attention_heads": 8, "decoder_ffn_dim": 2048,
                         "num_mel_bins": 80, "max_source_positions": 1500},
        "text_config": {},
    }

    vision_config: dict | PretrainedConfig | None = None
    audio_config: dict | PretrainedConfig | None = None
    text_config: dict | PretrainedConfig | None = None
    mvp: dict | MVPConfig | None = None
    vision_feature_layer: int = -2
    image_token_id: int = 32000
    video_token_id: int = 32001
    audio_token_id: int = 32002
    # 1500 whisper positions (30 s) // 10 = 150 tokens per audio; the paper does not give the pooling.
    audio_pool_stride: int = 10
    frames_per_event: int = 16
    video_mode: Literal["expand", "hierarchical"] = "expand"
    freeze_vision: bool = True
    freeze_audio: bool = True
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        for key, config_class in self.sub_configs.items():
            value = getattr(self, key)
            if value is None:
                value = config_class(**self.sub_config_defaults[key])
            elif isinstance(value, dict):
                value = config_class(**{k: v for k, v in value.items() if k != "model_type"})
            elif not isinstance(value, config_class):
                raise TypeError(f"{key} must be a {config_class.__name__} or a dict, got {type(value).__name__}")
            setattr(self, key, value)
        super().__post_init__(**kwargs)
        # A plain dict in the config, so config.json and to_dict() need nothing special for it.
        self.mvp = _mvp_config(self.mvp).to_dict()
        if self.audio_pool_stride < 1 or self.frames_per_event < 1:
            raise ValueError(f"audio_pool_stride and frames_per_event must be >= 1, got "
                             f"{self.audio_pool_stride} and {self.frames_per_event}")
        if not self.tie_word_embeddings and getattr(self.text_config, "tie_word_embeddings", False):
            self.tie_word_embeddings = True

    @property
    def mvp_config(self) -> MVPConfig:
        """The projector's settings, typed (read from ``mvp``, so edits to that dict show here)."""
        return _mvp_config(self.mvp)

    @property
    def num_image_tokens(self) -> int:
        """LLM tokens per image (and per video event): ``MVPConfig.num_tokens``."""
        return self.mvp_config.num_tokens

    @property
    def num_audio_tokens(self) -> int:
        """LLM tokens per audio: Whisper encoder positions // ``audio_pool_stride``."""
        return self.audio_config.max_source_positions // self.audio_pool_stride


def _mvp_config(mvp: dict | MVPConfig | None) -> MVPConfig:
    """``EmoLLMConfig.mvp`` as given (None, an MVPConfig, or a possibly partial dict) -> MVPConfig;
    errors name the field, since they may come from a config.json far from the code."""
    if isinstance(mvp, MVPConfig):
        return mvp
    try:
        return MVPConfig.from_dict(mvp or {})
    except (TypeError, ValueError) as err:
        raise type(err)(f"mvp: {err}") from None

"""EmoLLM processor: text with ``<image>``/``<video>``/``<audio>`` placeholders + media -> model inputs.

Each placeholder expands to exactly as many placeholder ids as the model produces embeddings for
that item (the model checks the counts and raises on a mismatch):

- ``<image>``: ``num_image_tokens`` (the MVP's ``num_tokens``, 112 by default);
- ``<video>`` of T frames: ``ceil(T / frames_per_event) * num_image_tokens``;
- ``<audio>``: Whisper encoder positions // ``audio_pool_stride``, where the encoder has half as
  many positions as the (fixed-length, padded or truncated) mel frames.
"""

from __future__ import annotations

import importlib.util
import math
import os
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin, WhisperFeatureExtractor

__all__ = ["EmoLLMProcessor", "clip_image_processor", "whisper_feature_extractor"]


def _clip_image_processor_class():
    # The torchvision-backed processor where torchvision is installed, else the PIL one
    # (transformers would fall back to it anyway, with a warning).
    from transformers import CLIPImageProcessor, CLIPImageProcessorPil

    return CLIPImageProcessor if importlib.util.find_spec("torchvision") is not None else CLIPImageProcessorPil


def clip_image_processor(size: int, source: str | os.PathLike | None = None):
    """A CLIP image processor for ``size`` px images: the one saved in ``source`` (a checkpoint folder
    or hub name) when it has a ``preprocessor_config.json``, else CLIP's default (resize the short
    side, center-crop, OpenAI CLIP mean/std). Raises if the saved one makes another size."""
    cls = _clip_image_processor_class()
    if source is not None:
        try:
            processor = cls.from_pretrained(source)
        except OSError:
            warnings.warn(f"{source!r} has no preprocessor_config.json; using CLIP's default image processor at "
                          f"{size} px", stacklevel=2)
        else:
            crop = processor.crop_size if processor.do_center_crop else processor.size
            if (crop.get("height"), crop.get("width")) != (size, size):
                raise ValueError(f"the image processor in {source!r} makes {crop} images but the vision tower takes "
                                 f"{size}x{size}")
            return processor
    return cls(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def whisper_feature_extractor(audio_config, source: str | os.PathLike | None = None) -> WhisperFeatureExtractor:
    """The Whisper feature extractor saved in ``source`` when there is one, else one built from
    ``audio_config`` (a ``WhisperConfig``). Either way its fixed length must be the encoder's
    ``2 * max_source_positions`` mel frames (100 frames per second: hop 160 at 16 kHz)."""
    mel_frames = 2 * audio_config.max_source_positions
    extractor = None
    if source is not None:
        try:
            extractor = WhisperFeatureExtractor.from_pretrained(source)
        except OSError:
            warnings.warn(f"{source!r} has no preprocessor_config.json; using Whisper's default feature extractor",
                          stacklevel=2)
    if extractor is None:
        if mel_frames % 100:
            raise ValueError(f"max_source_positions must be a multiple of 50 (whole seconds of audio), got "
                             f"{audio_config.max_source_positions}")
        extractor = WhisperFeatureExtractor(feature_size=audio_config.num_mel_bins, sampling_rate=16000,
                                            hop_length=160, chunk_length=mel_frames // 100)
    if (extractor.feature_size, extractor.nb_max_frames) != (audio_config.num_mel_bins, mel_frames):
        raise ValueError(f"the feature extractor makes {extractor.feature_size} x {extractor.nb_max_frames} mel "
                         f"features but the Whisper encoder takes {audio_config.num_mel_bins} x {mel_frames}")
    return extractor


def _as_list(items) -> list:
    if items is None:
        return []
    if isinstance(items, (list, tuple)):
        return list(items)
    return [items]


class EmoLLMProcessor(ProcessorMixin):
    """Tokenizer + ``CLIPImageProcessor`` (images and video frames) + ``WhisperFeatureExtractor``.

    ``processor(text, images=None, videos=None, audio=None, padding=True, return_tensors="pt")``:
    ``text`` a string or a list (one per sample); ``images`` the images of all ``<image>``
    placeholders in order (PIL / HWC arrays / CHW tensors); ``videos`` one frame sequence per
    ``<video>`` (a list of frames, a ``[T,H,W,C]`` array or a ``[T,C,H,W]`` tensor; T may differ);
    ``audio`` one 1-D waveform per ``<audio>`` at ``sampling_rate`` (default: the extractor's).

    Returns a ``BatchFeature`` with ``input_ids`` and ``attention_mask`` ``[B,L]``, and as given
    ``pixel_values`` ``[I,3,H,W]``, ``pixel_values_videos`` ``[V,T_max,3,H,W]`` with
    ``video_frame_mask`` ``[V,T_max]`` bool (True = real frame), ``input_features``
    ``[A,n_mels,frames]``.
    """

    def __init__(self, image_processor=None, feature_extractor=None, tokenizer=None, chat_template=None,
                 num_image_tokens: int = 112, frames_per_event: int = 16, audio_pool_stride: int = 10,
                 image_token: str = "<image>", video_token: str = "<video>", audio_token: str = "<audio>"):
        self.num_image_tokens = num_image_tokens
        self.frames_per_event = frames_per_event
        self.audio_pool_stride = audio_pool_stride
        self.image_token, self.video_token, self.audio_token = image_token, video_token, audio_token
        if chat_template is None and tokenizer is not None:
            chat_template = getattr(tokenizer, "chat_template", None)
        super().__init__(image_processor, feature_extractor, tokenizer, chat_template=chat_template)
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(video_token)
        self.audio_token_id = tokenizer.convert_tokens_to_ids(audio_token)

    # ---- token counts (the model's, see EmoLLMConfig.num_image_tokens / num_audio_tokens) ----
    def num_video_tokens(self, num_frames: int) -> int:
        return math.ceil(num_frames / self.frames_per_event) * self.num_image_tokens

    @property
    def num_audio_tokens(self) -> int:
        # Whisper's conv2 has stride 2: nb_max_frames mel frames -> nb_max_frames // 2 positions.
        return (self.feature_extractor.nb_max_frames // 2) // self.audio_pool_stride

    def expand_placeholders(self, texts: Sequence[str], video_frames: Sequence[int] = ()) -> list[str]:
        """``texts`` with every ``<image>`` / ``<audio>`` repeated as many times as the model has
        embeddings for it, and the ``i``-th ``<video>`` (over all texts) as many as a video of
        ``video_frames[i]`` frames gives."""
        expanded, frames = [], iter(video_frames)
        for t in texts:
            t = t.replace(self.image_token, self.image_token * self.num_image_tokens)
            t = t.replace(self.audio_token, self.audio_token * self.num_audio_tokens)
            parts = t.split(self.video_token)
            t = parts[0] + "".join(self.video_token * self.num_video_tokens(next(frames)) + p for p in parts[1:])
            expanded.append(t)
        return expanded

    # ---- media ----
    def _videos(self, videos: Sequence) -> dict[str, torch.Tensor]:
        clips = [self.image_processor(list(v), return_tensors="pt")["pixel_values"] for v in videos]
        longest = max(c.shape[0] for c in clips)
        out = clips[0].new_zeros(len(clips), longest, *clips[0].shape[1:])
        mask = torch.zeros(len(clips), longest, dtype=torch.bool)
        for i, c in enumerate(clips):
            out[i, : c.shape[0]] = c
            mask[i, : c.shape[0]] = True
        return {"pixel_values_videos": out, "video_frame_mask": mask}

    def __call__(self, text=None, images=None, videos=None, audio=None, sampling_rate: int | None = None,
                 padding: bool | str = True, truncation: bool = False, max_length: int | None = None,
                 padding_side: str | None = None, return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        if text is None:
            raise ValueError("EmoLLMProcessor needs text (with <image>/<video>/<audio> placeholders)")
        texts = [text] if isinstance(text, str) else list(text)
        images, videos, audios = _as_list(images), _as_list(videos), _as_list(audio)
        if images and isinstance(images[0], (list, tuple)):  # one list of images per sample
            images = [im for sample in images for im in sample]
        for token, items, name in ((self.image_token, images, "images"), (self.video_token, videos, "videos"),
                                   (self.audio_token, audios, "audios")):
            found = sum(t.count(token) for t in texts)
            if found != len(items):
                raise ValueError(f"the text holds {found} {token} placeholders but {len(items)} {name} were given")

        data: dict[str, torch.Tensor] = {}
        if images:
            data["pixel_values"] = self.image_processor(images, return_tensors="pt")["pixel_values"]
        video_tokens = []
        if videos:
            data.update(self._videos(videos))
            video_tokens = data["video_frame_mask"].sum(1).tolist()
        if audios:
            rate = sampling_rate or self.feature_extractor.sampling_rate
            audios = [np.asarray(a, dtype=np.float32) for a in audios]
            data["input_features"] = self.feature_extractor(audios, sampling_rate=rate,
                                                            return_tensors="pt")["input_features"]

        expanded = self.expand_placeholders(texts, video_tokens)
        data.update(self.tokenize(expanded, padding=padding, truncation=truncation, max_length=max_length,
                                  padding_side=padding_side, **kwargs))
        return BatchFeature(data=data, tensor_type=return_tensors)

    def tokenize(self, expanded: Sequence[str], padding: bool | str = True, truncation: bool = False,
                 max_length: int | None = None, padding_side: str | None = None, **kwargs):
        """The tokenizer's tensors (``input_ids``, ``attention_mask``, ...) for texts whose
        placeholders are already expanded (:meth:`expand_placeholders`)."""
        tok_kwargs = {"padding": padding, "truncation": truncation, "max_length": max_length, **kwargs}
        if padding_side is not None:
            tok_kwargs["padding_side"] = padding_side
        encoded = self.tokenizer(list(expanded), return_tensors="pt", **tok_kwargs)
        if padding_side is not None and hasattr(self.tokenizer, "_tokenizer"):
            # A fast tokenizer keeps the last call's padding (side included) in its Rust backend,
            # and save_pretrained writes it to tokenizer.json: a one-off padding_side="left" would
            # become the saved processor's default. Reset it (every call sets its own padding).
            self.tokenizer._tokenizer.no_padding()
        return encoded

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values", "pixel_values_videos", "video_frame_mask",
                "input_features"]

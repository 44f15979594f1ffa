"""One question's media files, decoded up front: a file that is missing or does not decode is a
:class:`MediaError` with a one-line message naming the flag and the file, before any model loads.

Decoding is :mod:`emollm.data.media`'s (the same frames and resampling as training): images to RGB,
videos to 1 frame per second (at most ``max_frames``, spread uniformly beyond that), audio to
16 kHz mono.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emollm.data.media import MAX_FRAMES, SAMPLING_RATE, load_audio, load_image, load_video

__all__ = ["Media", "MediaError", "load_media_files"]


class MediaError(ValueError):
    """A media file that cannot be used; ``str(e)`` is one line naming the kind and the file."""


@dataclass
class Media:
    """Decoded media of one question, each optional: ``image`` a PIL RGB image, ``video`` its frames
    (PIL RGB), ``audio`` float32 ``[T]`` at 16 kHz; ``paths`` the files they came from."""

    image: Any = None
    video: list | None = None
    audio: np.ndarray | None = None
    paths: dict[str, str] = field(default_factory=dict)

    @property
    def kinds(self) -> list[str]:
        """The kinds present, in placeholder order: a subset of ``["image", "video", "audio"]``."""
        return [k for k in ("image", "video", "audio") if getattr(self, k) is not None]

    def processor_inputs(self) -> dict[str, list]:
        """``images`` / ``videos`` / ``audio`` keyword arguments for ``EmoLLMProcessor`` (None when absent)."""
        return {"images": None if self.image is None else [self.image],
                "videos": None if self.video is None else [self.video],
                "audio": None if self.audio is None else [self.audio]}


def _decode(kind: str, path: Path, max_frames: int):
    if kind == "image":
        return load_image(path)
    if kind == "video":
        return load_video(path, max_frames=max_frames)
    audio = load_audio(path, rate=SAMPLING_RATE)
    if audio.size == 0:
        raise ValueError("no audio samples")
    return audio


def load_media_files(image: str | os.PathLike | None = None, video: str | os.PathLike | None = None,
                     audio: str | os.PathLike | None = None, *, max_frames: int = MAX_FRAMES) -> Media:
    """Decode the given files; raises :class:`MediaError` for the first that is missing or broken."""
    media = Media()
    for kind, given in (("image", image), ("video", video), ("audio", audio)):
        if given is None:
            continue
        path = Path(given)
        if not path.is_file():
            raise MediaError(f"--{kind} {given}: no such file")
        try:
            value = _decode(kind, path, max_frames)
        except ImportError:  # PyAV missing: the caller names the extra
            raise
        except Exception as e:  # PIL, PyAV and wave each raise their own types for undecodable files
            reason = " ".join(str(e).split()) or type(e).__name__
            raise MediaError(f"--{kind} {given}: cannot be read as {kind}: {reason}") from None
        setattr(media, kind, value)
        media.paths[kind] = str(path)
    return media

"""Media loading for EmoBench records: images, video frames and 16 kHz mono audio.

- Images: PIL, converted to RGB.
- Video: decoded with PyAV (``pip install 'emollm[data]'``), sampled at ``fps`` frames per second
  (1 by default, as Chat-UniVi and the paper's video sources use); beyond ``max_frames`` the
  frames are taken uniformly over the whole clip instead (:func:`frame_times`).
- Audio: mono float32 at 16 kHz (Whisper's rate). ``.wav`` files with integer PCM are read with
  the standard library's ``wave``; anything else (the audio track of an ``.mp4``, mp3, flac, float
  wav) is decoded and resampled by PyAV (libswresample). The wav path resamples with SciPy's
  polyphase filter (``scipy.signal.resample_poly``, anti-aliased), not by linear interpolation.
"""

from __future__ import annotations

import math
import os
import wave
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # Pillow is imported where an image is opened: re-scoring answers needs no media
    from PIL import Image

__all__ = ["MAX_FRAMES", "SAMPLING_RATE", "frame_times", "load_audio", "load_image", "load_video", "resample"]

SAMPLING_RATE = 16000  # Whisper's input rate
# 64 frames = 4 events of 16 frames (EmoLLMConfig.frames_per_event): a 64 s clip at 1 fps.
MAX_FRAMES = 64


def _require_av():
    try:
        import av
    except ImportError as e:
        raise ImportError("decoding video (and non-wav audio) needs PyAV: pip install 'emollm[data]' "
                          "(or pip install av)") from e
    return av


def load_image(path: str | os.PathLike) -> Image.Image:
    """The image at ``path`` as an RGB ``PIL.Image`` (fully loaded, file closed)."""
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")


def frame_times(duration: float, fps: float = 1.0, max_frames: int = MAX_FRAMES) -> list[float]:
    """Timestamps (seconds) of the frames to keep from a clip of ``duration`` seconds.

    ``k / fps`` for every ``k`` with ``k / fps < duration`` (at least one frame); when that gives
    more than ``max_frames``, ``max_frames`` times spread uniformly instead, each at the middle
    of its equal share of the clip: ``(i + 0.5) * duration / max_frames``.
    """
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if not duration >= 0:
        raise ValueError(f"duration must be >= 0 seconds, got {duration}")
    count = max(1, math.ceil(duration * fps - 1e-9))
    if count <= max_frames:
        return [k / fps for k in range(count)]
    return [(i + 0.5) * duration / max_frames for i in range(max_frames)]


def _video_duration(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # av.time_base: microseconds
    # No duration in the header: the last packet's end, read without decoding.
    end = 0.0
    for packet in container.demux(stream):
        if packet.pts is not None:
            end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    container.seek(0)
    return end


def load_video(path: str | os.PathLike, fps: float = 1.0, max_frames: int = MAX_FRAMES) -> list[Image.Image]:
    """Frames of the video at ``path`` at :func:`frame_times` as RGB images: for each target time,
    the first decoded frame shown at or after it (frames are decoded once, in order)."""
    av = _require_av()
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream")
        stream = container.streams.video[0]
        targets = frame_times(_video_duration(container, stream), fps, max_frames)
        frames, next_target = [], 0
        for frame in container.decode(stream):
            shown = frame.time if frame.time is not None else 0.0
            image = None
            # 1e-6 s: timestamps are rationals turned to floats; k / fps must still match frame k.
            while next_target < len(targets) and shown + 1e-6 >= targets[next_target]:
                image = image or frame.to_image().convert("RGB")
                frames.append(image)
                next_target += 1
            if next_target == len(targets):
                break
    if not frames:
        raise ValueError(f"{path}: no video frames could be decoded")
    return frames


def resample(audio: np.ndarray, orig_rate: int, rate: int = SAMPLING_RATE) -> np.ndarray:
    """``audio`` ``[T]`` from ``orig_rate`` to ``rate`` Hz with SciPy's polyphase filter, float32."""
    if orig_rate <= 0 or rate <= 0:
        raise ValueError(f"sampling rates must be > 0, got orig_rate={orig_rate}, rate={rate}")
    audio = np.asarray(audio, dtype=np.float32)
    if orig_rate == rate:
        return audio
    from scipy.signal import resample_poly

    ratio = Fraction(rate, orig_rate)
    return resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32)


def _read_pcm_wav(path: Path) -> tuple[np.ndarray, int]:
    """Integer-PCM wav -> (float32 ``[T, channels]`` in [-1, 1), rate)."""
    with wave.open(str(path), "rb") as f:
        width, channels, rate = f.getsampwidth(), f.getnchannels(), f.getframerate()
        raw = f.readframes(f.getnframes())
    if width == 1:  # 8-bit wav is unsigned
        data = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width in (2, 4):
        data = np.frombuffer(raw, f"<i{width}").astype(np.float32) / float(2 ** (8 * width - 1))
    elif width == 3:  # 24-bit: sign-extend three little-endian bytes into an int32
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        data = ((b[:, 0] << 8 | b[:, 1] << 16 | b[:, 2] << 24) >> 8).astype(np.float32) / float(2**23)
    else:
        raise ValueError(f"{path}: unsupported wav sample width {width} bytes")
    return data.reshape(-1, channels), rate


def _decode_audio_av(path: Path, rate: int) -> np.ndarray:
    av = _require_av()
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError(f"{path}: no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = []
        for frame in container.decode(container.streams.audio[0]):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]  # flush
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def load_audio(path: str | os.PathLike, rate: int = SAMPLING_RATE) -> np.ndarray:
    """Mono float32 samples ``[T]`` at ``rate`` Hz: channels averaged, integer PCM scaled to [-1, 1)."""
    path = Path(path)
    if path.suffix.lower() == ".wav":
        try:
            data, orig_rate = _read_pcm_wav(path)
        except wave.Error:  # float or compressed wav: the stdlib reads integer PCM only
            return _decode_audio_av(path, rate)
        return resample(data.mean(axis=1), orig_rate, rate)
    return _decode_audio_av(path, rate)

"""Small media files written on the fly for the inference and serve tests: no downloads."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, size: tuple[int, int] = (48, 40), seed: int = 0) -> Path:
    """A random RGB PNG of ``size`` (width, height)."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def write_video(path: Path, frames: int = 3, fps: int = 1, side: int = 32) -> Path:
    """A ``frames``-frame MPEG-4 clip at ``fps`` (PyAV): one frame per second, each a colour ramp."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            pixels = np.zeros((side, side, 3), np.uint8)
            pixels[..., i % 3] = np.linspace(0, 255, side, dtype=np.uint8)[None, :]
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def write_wav(path: Path, seconds: float = 0.8, rate: int = 16000) -> Path:
    """A 440 Hz tone as 16-bit mono PCM."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(samples.tobytes())
    return path


def write_media(folder: Path) -> dict[str, Path]:
    """``{"image": .png, "video": .mp4, "audio": .wav}`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return {"image": write_image(folder / "face.png"), "video": write_video(folder / "clip.mp4"),
            "audio": write_wav(folder / "voice.wav")}

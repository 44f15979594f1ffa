"""The frozen towers' outputs, computed once and kept on disk.

CLIP and Whisper are frozen, so what they make of a media file never changes: the CLIP layer
``vision_feature_layer`` patch tokens of an image ``[N, D]`` or of every frame of a video
``[T, N, D]``, and the Whisper encoder states of an audio ``[P, d_audio]``. :class:`FeatureCache`
keeps them in safetensors shards; training and evaluation read them instead of decoding the media
and running the towers.

Layout: ``DIR/<kind>-<fingerprint>/<shard>.safetensors``, ``kind`` one of ``image``, ``video``,
``audio``. A shard holds many entries, each named by the SHA-256 of the media file's bytes. The
fingerprint (:func:`tower_fingerprints`) hashes everything that decides the output: the tower's
weights and config, the feature layer, the preprocessing (image processor, feature extractor,
video fps and frame cap). So a changed media file has a new name and is computed again, and
another tower (other weights, other preprocessing) reads and writes another folder. Shards are
written whole (atomically), each process its own: several processes may fill one cache.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn

from emollm._io import atomic_path

__all__ = ["KINDS", "FeatureCache", "file_digest", "inner_model", "tower_fingerprints"]

KINDS = ("image", "video", "audio")
_SHARD_BYTES = 1 << 30  # a shard is closed at about 1 GiB


def file_digest(path: str | os.PathLike) -> str:
    """The SHA-256 of the file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _hash_module(h, module: nn.Module) -> None:
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tensor.dtype).encode())
        h.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


def inner_model(model: nn.Module):
    """The EmoLLMModel inside ``model`` (an EmoLLM, a peft model around one, ...)."""
    from emollm.model.modeling_emollm import EmoLLMModel

    inner = next((m for m in model.modules() if isinstance(m, EmoLLMModel)), None)
    if inner is None:
        raise TypeError(f"model holds no EmoLLMModel: {type(model).__name__}")
    return inner


def tower_fingerprints(model: nn.Module, processor, *, fps: float, max_frames: int) -> dict[str, str]:
    """``{kind: hex}``: a hash of what decides each kind's cached output (see the module docstring)."""
    inner = inner_model(model)
    vision, audio = hashlib.sha256(), hashlib.sha256()
    vision.update(inner.config.vision_config.to_json_string().encode())
    vision.update(f"layer {inner.config.vision_feature_layer}".encode())
    vision.update(processor.image_processor.to_json_string().encode())
    _hash_module(vision, inner.vision_tower)
    audio.update(inner.config.audio_config.to_json_string().encode())
    audio.update(processor.feature_extractor.to_json_string().encode())
    _hash_module(audio, inner.audio_tower)
    image = vision.hexdigest()
    video = hashlib.sha256(f"{image} video fps={fps} max_frames={max_frames}".encode()).hexdigest()
    return {"image": image, "video": video, "audio": audio.hexdigest()}


class FeatureCache:
    """The cached tower outputs under ``root`` for one set of ``fingerprints`` (see the module
    docstring). ``cache.has(kind, digest)``, ``cache.get(kind, digest) -> Tensor``; :meth:`fill`
    computes what is missing."""

    def __init__(self, root: str | os.PathLike, fingerprints: dict[str, str]):
        self.root, self.fingerprints = Path(root), dict(fingerprints)
        self._where: dict[tuple[str, str], Path] = {}
        self._open: dict[Path, object] = {}
        self.rescan()

    def folder(self, kind: str) -> Path:
        return self.root / f"{kind}-{self.fingerprints[kind][:16]}"

    def rescan(self) -> None:
        """Indexes every shard on disk (reads the shards' headers only)."""
        from safetensors import safe_open

        self._where.clear()
        self._open.clear()
        for kind in KINDS:
            # Not the hidden temporary files of shards being written (emollm._io.atomic_path).
            for shard in sorted(p for p in self.folder(kind).glob("*.safetensors") if not p.name.startswith(".")):
                with safe_open(shard, framework="pt") as f:
                    self._where.update(((kind, key), shard) for key in f.keys())

    def has(self, kind: str, digest: str) -> bool:
        return (kind, digest) in self._where

    def get(self, kind: str, digest: str) -> torch.Tensor:
        from safetensors import safe_open

        shard = self._where[(kind, digest)]
        if shard not in self._open:
            self._open[shard] = safe_open(shard, framework="pt")
        return self._open[shard].get_tensor(digest)

    def __getstate__(self):  # data-loader workers reopen the shards themselves
        return {**self.__dict__, "_open": {}}

    def write(self, kind: str, entries: dict[str, torch.Tensor]) -> Path | None:
        """One new shard of ``entries`` (digest -> tensor), written atomically."""
        from safetensors.torch import save_file

        if not entries:
            return None
        path = self.folder(kind) / f"{uuid.uuid4().hex}.safetensors"
        with atomic_path(path) as tmp:
            save_file({k: v.detach().to("cpu").contiguous() for k, v in entries.items()}, str(tmp),
                      metadata={"kind": kind, "fingerprint": self.fingerprints[kind]})
        self._where.update(((kind, key), path) for key in entries)
        return path

    def fill(self, items: Iterable[tuple[str, str, str]], model: nn.Module, processor, *, fps: float,
             max_frames: int, batch_size: int = 16, progress: bool = False) -> int:
        """Computes and stores the entries of ``items`` (``(kind, path, digest)``) that are missing;
        returns how many. ``model``'s towers run where they are (move them to the GPU first)."""
        from tqdm.auto import tqdm

        todo = list({(k, d): (k, p, d) for k, p, d in items if not self.has(k, d)}.values())  # one per entry
        inner = inner_model(model)
        bar = tqdm(total=len(todo), unit="file", desc="emollm feature cache", disable=not progress)
        for kind in KINDS:
            mine = [(p, d) for k, p, d in todo if k == kind]
            pending, size = {}, 0
            step = 1 if kind == "video" else batch_size
            for start in range(0, len(mine), step):
                chunk = mine[start:start + step]
                for (_, digest), features in zip(chunk, _compute(kind, [p for p, _ in chunk], inner, processor,
                                                                 fps, max_frames), strict=True):
                    pending[digest] = features
                    size += features.numel() * features.element_size()
                bar.update(len(chunk))
                if size >= _SHARD_BYTES:
                    self.write(kind, pending)
                    pending, size = {}, 0
            self.write(kind, pending)
        bar.close()
        return len(todo)


@torch.no_grad()
def _compute(kind: str, paths: Sequence[str], inner, processor, fps: float, max_frames: int) -> list[torch.Tensor]:
    """The towers' outputs for ``paths``, preprocessed exactly as :class:`EmoLLMProcessor` does."""
    from emollm.data.media import load_audio, load_image, load_video

    device = inner.vision_tower.device if kind != "audio" else inner.audio_tower.device
    if kind == "image":
        pixels = processor.image_processor([load_image(p) for p in paths], return_tensors="pt")["pixel_values"]
        return list(inner._patch_tokens(pixels.to(device)))
    if kind == "video":
        frames = load_video(paths[0], fps=fps, max_frames=max_frames)
        pixels = processor.image_processor(frames, return_tensors="pt")["pixel_values"]
        return [inner._patch_tokens(pixels.to(device))]
    rate = processor.feature_extractor.sampling_rate
    audio = [load_audio(p, rate=rate) for p in paths]
    features = processor.feature_extractor(audio, sampling_rate=rate, return_tensors="pt")["input_features"]
    return list(inner.audio_states(features.to(device)))


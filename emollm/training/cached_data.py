"""Training and evaluation on cached tower outputs (:mod:`emollm.model.feature_cache`) instead of
media: the dataset hands out the cached tensors, the collator and :func:`cached_batch` build the
model inputs from them (``image_patch_tokens``, ``video_patch_tokens`` + ``video_frame_mask``,
``audio_encoder_states``) with the same text, placeholders and labels as from the media."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from transformers import BatchFeature

from emollm.data.collator import EmoBenchCollator
from emollm.data.dataset import conversation_text
from emollm.data.records import resolve_media
from emollm.model.feature_cache import FeatureCache, file_digest, tower_fingerprints

__all__ = ["CachedFeatureCollator", "CachedFeatureDataset", "cached_batch", "open_feature_cache",
           "record_features"]

_MODALITY = {"image": "images", "video": "videos", "audio": "audio"}


def _media(records: Sequence[Any], base_dir: str | os.PathLike) -> list[dict[str, str]]:
    return [item for record in records for item in resolve_media(record, base_dir)]


def open_feature_cache(root: str | os.PathLike, model, processor, sources: Sequence[tuple[Sequence[Any], Path]], *,
                       fps: float, max_frames: int, batch_size: int = 16, progress: bool = False,
                       rank: int = 0, world_size: int = 1) -> tuple[FeatureCache, dict[str, str]]:
    """The cache under ``root`` for ``model``'s towers, holding every media file of ``sources``
    (``(records, base_dir)`` pairs), and ``{path: digest}`` of those files. Missing entries are
    computed, process ``rank`` of ``world_size`` taking every ``world_size``-th; with several
    processes, they wait for each other (a torch.distributed barrier) before reading the shards."""
    media = [item for records, base in sources for item in _media(records, base)]
    digests = {path: file_digest(path) for path in dict.fromkeys(m["path"] for m in media)}
    cache = FeatureCache(root, tower_fingerprints(model, processor, fps=fps, max_frames=max_frames))
    # Shares of all entries, not of the missing ones: another process may already have written some
    # when this one looks, and every process must draw the same shares.
    entries = {(m["type"], digests[m["path"]]): (m["type"], m["path"], digests[m["path"]]) for m in media}
    items = sorted(entries.values())
    cache.fill(items[rank::world_size], model, processor, fps=fps, max_frames=max_frames, batch_size=batch_size,
               progress=progress)
    if world_size > 1:
        torch.distributed.barrier()
        cache.rescan()
    return cache, digests


def record_features(record: Any, base_dir: str | os.PathLike, cache: FeatureCache,
                    digests: dict[str, str]) -> dict[str, list[torch.Tensor]]:
    """``{"images": [[N,D]], "videos": [[T,N,D]], "audio": [[P,d]]}``: the record's cached tower
    outputs in placeholder order."""
    out: dict[str, list[torch.Tensor]] = {"images": [], "videos": [], "audio": []}
    for item in resolve_media(record, base_dir):
        out[_MODALITY[item["type"]]].append(cache.get(item["type"], digests[item["path"]]))
    return out


def cached_batch(processor, texts: Sequence[str], features: Sequence[dict[str, list[torch.Tensor]]], *,
                 padding_side: str, return_offsets_mapping: bool = False) -> BatchFeature:
    """The model inputs for ``texts`` (one per sample, with ``<image>``/``<video>``/``<audio>``)
    and each sample's cached tower outputs: what the processor gives from the media, with
    ``image_patch_tokens`` ``[I,N,D]``, ``video_patch_tokens`` ``[V,T_max,N,D]`` + ``video_frame_mask``
    ``[V,T_max]`` and ``audio_encoder_states`` ``[A,P,d]`` in place of the pixels and mel features."""
    images = [t for f in features for t in f["images"]]
    videos = [t for f in features for t in f["videos"]]
    audio = [t for f in features for t in f["audio"]]
    data: dict[str, torch.Tensor] = {}
    if images:
        data["image_patch_tokens"] = torch.stack(images)
    if videos:
        longest = max(v.shape[0] for v in videos)
        data["video_patch_tokens"] = videos[0].new_zeros(len(videos), longest, *videos[0].shape[1:])
        data["video_frame_mask"] = torch.zeros(len(videos), longest, dtype=torch.bool)
        for i, v in enumerate(videos):
            data["video_patch_tokens"][i, : v.shape[0]] = v
            data["video_frame_mask"][i, : v.shape[0]] = True
    if audio:
        data["audio_encoder_states"] = torch.stack(audio)
    expanded = processor.expand_placeholders(texts, [v.shape[0] for v in videos])
    data.update(processor.tokenize(expanded, padding=True, padding_side=padding_side,
                                   return_offsets_mapping=return_offsets_mapping))
    return BatchFeature(data=data)


class CachedFeatureDataset(Dataset):
    """A conversation dataset (``EmoBenchDataset`` / ``InstructionDataset``) whose samples carry the
    cached tower outputs instead of loaded media: ``{"id", "text", "answers", "features"}``."""

    def __init__(self, dataset, cache: FeatureCache, digests: dict[str, str]):
        self.dataset, self.cache, self.digests = dataset, cache, digests

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.dataset.records[index]
        text, answers = conversation_text(record)
        return {"id": record.id, "text": text, "answers": answers,
                "features": record_features(record, self.dataset.base_dir, self.cache, self.digests)}


class CachedFeatureCollator(EmoBenchCollator):
    """:class:`EmoBenchCollator` for :class:`CachedFeatureDataset` samples (right padding, labels
    on the answers only)."""

    def __call__(self, samples: Sequence[dict[str, Any]]) -> BatchFeature:
        if not samples:
            raise ValueError("samples must hold at least one sample")
        batch = cached_batch(self.processor, [s["text"] for s in samples], [s["features"] for s in samples],
                             padding_side="right", return_offsets_mapping=True)
        offsets = batch.pop("offset_mapping")
        batch["labels"] = self.labels(batch["input_ids"], batch["attention_mask"], offsets,
                                      [s["answers"] for s in samples], [s.get("id", i) for i, s in enumerate(samples)])
        return batch

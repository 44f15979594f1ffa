"""Embeddings for ``nearest`` exemplar selection: the mean CLIP patch token of a sample's pictures.

:class:`VisionEmbedder` is one ``embed`` function for :class:`~emollm.prompting.select.ExemplarSelector`
(any callable from a record or exemplar to a vector will do). It runs a CLIP vision tower on the
sample's images, or on a few frames of its video, takes the patch tokens at ``layer`` (-2, the
layer EmoLLM's MVP reads) and averages them over patches and pictures: a cheap summary of what
the sample shows, so ``nearest`` picks an exemplar that looks alike. Samples without a picture
(audio or text only) have no such embedding and raise ``ValueError``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch

from emollm.prompting.generate import sample_frames
from emollm.prompting.store import Exemplar


class VisionEmbedder:
    """``embed(item) -> [D]`` float32: the mean patch token of ``item``'s images / video frames.

    Args:
        vision_tower: a ``transformers`` ``CLIPVisionModel`` (eval mode is set here).
        image_processor: its image processor (resize, crop, normalize).
        layer: the hidden-state index whose patch tokens are averaged (CLS token dropped).
        num_frames: frames taken per video (:func:`~emollm.prompting.generate.sample_frames`).
        base: the folder that relative media paths are relative to (a records file's folder);
            exemplars loaded from a store already hold absolute paths.
    """

    def __init__(self, vision_tower: torch.nn.Module, image_processor: Any, *, layer: int = -2, num_frames: int = 4,
                 base: str | os.PathLike | None = None):
        self.tower, self.processor = vision_tower.eval(), image_processor
        self.layer, self.num_frames, self.base = layer, num_frames, base

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> VisionEmbedder:
        """From a CLIP checkpoint folder (or hub name): its vision tower and image processor."""
        from transformers import CLIPVisionModel

        from emollm.model.processing_emollm import clip_image_processor

        tower = CLIPVisionModel.from_pretrained(path)
        return cls(tower, clip_image_processor(tower.config.image_size, path), **kwargs)

    def _pictures(self, item: Any) -> list[Any]:
        from PIL import Image

        pictures = []
        for m in item.media:
            path = m["path"] if self.base is None else os.path.join(self.base, m["path"])
            if m["type"] in ("image", "video") and not os.path.isfile(path):  # a pipe or device: never ends
                raise ValueError(f"{path} is not a regular file")
            if m["type"] == "image":
                with Image.open(path) as image:
                    pictures.append(image.convert("RGB"))
            elif m["type"] == "video":
                pictures.extend(frame.convert("RGB") for frame in sample_frames(path, self.num_frames))
        if not pictures:
            raise ValueError(f"{item.id!r} has no image or video to embed")
        return pictures

    @torch.no_grad()
    def __call__(self, item: Any) -> torch.Tensor:
        pixels = self.processor(images=self._pictures(item), return_tensors="pt")["pixel_values"]
        param = next(self.tower.parameters())
        out = self.tower(pixels.to(device=param.device, dtype=param.dtype), output_hidden_states=True)
        return out.hidden_states[self.layer][:, 1:].float().mean(dim=(0, 1)).cpu()


def embed_exemplars(exemplars: Iterable[Exemplar], embed: Any, *, overwrite: bool = False) -> tuple[int, list[str]]:
    """Fills in ``embedding`` (in place) where it is missing, or everywhere with ``overwrite``.

    Returns how many were embedded and the ids that could not be (``embed`` raised ``ValueError``
    or ``OSError``, e.g. an audio-only sample or a missing file); those keep no embedding.
    """
    done, skipped = 0, []
    for e in exemplars:
        if e.embedding is not None and not overwrite:
            continue
        try:
            e.embedding = [float(v) for v in torch.as_tensor(embed(e)).flatten()]
        except (ValueError, OSError):
            skipped.append(e.id)
            continue
        done += 1
    return done, skipped

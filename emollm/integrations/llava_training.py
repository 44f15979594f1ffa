"""Training the MVP inside a transformers LLaVA with ``emollm train`` (docs/training.md).

A LLaVA folder (``config.json`` with ``model_type: llava``) given as ``--model`` is loaded as an
:class:`~emollm.integrations.llava.MVPLlavaForConditionalGeneration`. When its config records no
MVP settings yet, the MLP projector is replaced by a **new, untrained** MVP (seeded); a folder saved
by an earlier run keeps its trained MVP. Then, by ``--lora``:

- ``--no-lora``: the MVP alone is trained; the vision tower and the LM stay as they are;
- ``--lora`` (default): LoRA adapters on the LM's q/k/v/o/gate/up/down projections as well,
  merged into the LM weights when the run ends.

The data are EmoBench records with images only (a LLaVA has no video or audio input here); the
text is the same Vicuna v1 conversation as for EmoLLM, which is LLaVA-1.5's own format.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch

__all__ = ["MEDIA", "apply_llava_lora", "check_images_only", "is_llava", "is_llava_folder", "load_llava"]

MEDIA = ("image",)  # the media kinds a LLaVA takes
PROJECTOR = "multi_modal_projector"


def is_llava_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a saved transformers LLaVA (``model_type`` ``llava`` in its config.json)."""
    config = Path(path) / "config.json"
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type") == "llava"
    except (OSError, ValueError, AttributeError):
        return False


def is_llava(model) -> bool:
    return getattr(getattr(model, "config", None), "model_type", None) == "llava"


def load_llava(path: str | os.PathLike, seed: int = 0):
    """``(model, processor)`` for training: the MVP in the projector's place (new and untrained when
    the checkpoint has none, seeded by ``seed``), the processor expanding ``<image>`` to its token
    count, and every parameter but the MVP's frozen."""
    from transformers import LlavaProcessor

    from emollm.integrations.llava import MVPLlavaForConditionalGeneration, mvp_settings, use_mvp_projector

    model = MVPLlavaForConditionalGeneration.from_pretrained(path)
    processor = LlavaProcessor.from_pretrained(path)
    if mvp_settings(model.config) is None:
        warnings.warn(f"{path}: no MVP in this LLaVA yet; its MLP projector is replaced by a new MVP with random "
                      "weights, which only training makes useful", stacklevel=2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, processor = use_mvp_projector(model, processor, tau=0.1)
    else:
        model, processor = use_mvp_projector(model, processor)  # keeps the trained MVP, patches the processor
    model.requires_grad_(False)
    getattr(model.model, PROJECTOR).requires_grad_(True)
    return model, processor


def apply_llava_lora(model, r: int = 8, alpha: int = 16, dropout: float = 0.05):
    """A peft model: LoRA adapters on the LLaVA LM's LLaMA projections (nowhere in the vision tower),
    the MVP trained in full, everything else frozen."""
    from peft import LoraConfig, get_peft_model

    from emollm.model.lora import LM_PROJECTIONS

    pattern = r"model\.language_model\..*\.(" + "|".join(LM_PROJECTIONS) + r")"
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=pattern,
                        modules_to_save=[PROJECTOR], task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def check_images_only(records) -> None:
    """Raises ``ValueError`` naming the first record with a video or audio item."""
    for record in records:
        kinds = {m["type"] for m in record.media} - set(MEDIA)
        if kinds:
            raise ValueError(f"record {record.id!r} has {', '.join(sorted(kinds))} media; a LLaVA model is trained "
                             "on images only: leave those records out of --data")

"""How a training run uses its processes and devices: the ``--parallel`` presets and precision,
as ``TrainingArguments`` keywords. The Trainer (through accelerate) does the work; this module
only chooses its settings.

- ``ddp`` (default): every process holds the whole model; gradients are averaged (PyTorch DDP;
  NCCL on GPUs, gloo on CPU). One process is the same with no communication.
- ``fsdp``: PyTorch FSDP2 (``fully_shard``), parameters, gradients and optimizer state sharded
  over the processes, one FSDP unit per LLaMA decoder layer (and per CLIP / Whisper layer).
- ``zero2`` / ``zero3``: DeepSpeed ZeRO stage 2 (optimizer state and gradients sharded) / stage 3
  (parameters too), the configurations LLaVA-style projects ship; needs ``pip install deepspeed``.
  The batch, accumulation, clipping and precision are ``"auto"``: the Trainer fills them in from
  the run's settings, and keeps its own AdamW and cosine schedule (no optimizer block).

Processes come from the launcher (``torchrun --nproc-per-node N -m emollm train ...``,
``accelerate launch``, or ``deepspeed``). On a machine without an accelerator the processes join
a gloo group on CPU; transformers would otherwise leave each of them alone (world size 1).
"""

from __future__ import annotations

import copy
import importlib.util
from typing import Any

import torch

from emollm.training.config import PARALLEL

__all__ = ["DEEPSPEED_PRESETS", "FSDP_CONFIG", "PARALLEL", "bf16_setting", "parallel_arguments"]

# One FSDP unit per LLaMA decoder layer; everything else (the towers, projectors, embeddings, LM
# head) is the root unit. Every process must gather the same units in the same order, and a batch
# without audio (or images) skips that tower: as units of their own, the towers would be gathered
# by some processes and not by others, and the collectives would not match.
FSDP_CONFIG: dict[str, Any] = {
    "version": 2,
    "transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"],
    "reshard_after_forward": True,
    "state_dict_type": "FULL_STATE_DICT",  # save_pretrained gets whole tensors on process 0
    "cpu_ram_efficient_loading": False,
}

_DEEPSPEED_COMMON: dict[str, Any] = {
    "bf16": {"enabled": "auto"},
    "fp16": {"enabled": "auto"},
    "train_batch_size": "auto",
    "train_micro_batch_size_per_gpu": "auto",
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
}
DEEPSPEED_PRESETS: dict[str, dict[str, Any]] = {
    "zero2": {**_DEEPSPEED_COMMON, "zero_optimization": {
        "stage": 2, "overlap_comm": True, "contiguous_gradients": True, "reduce_scatter": True,
        "reduce_bucket_size": "auto", "allgather_bucket_size": 500_000_000}},
    "zero3": {**_DEEPSPEED_COMMON, "zero_optimization": {
        "stage": 3, "overlap_comm": True, "contiguous_gradients": True, "sub_group_size": 1_000_000_000,
        "reduce_bucket_size": "auto", "stage3_prefetch_bucket_size": "auto",
        "stage3_param_persistence_threshold": "auto", "stage3_max_live_parameters": 1_000_000_000,
        "stage3_max_reuse_distance": 1_000_000_000,
        # save_pretrained on process 0 needs whole 16-bit weights, gathered from every process
        "stage3_gather_16bit_weights_on_model_save": True}},
}


def _has_accelerator() -> bool:
    return torch.accelerator.is_available()


def bf16_setting(requested: bool | None) -> bool:
    """Whether to train in bf16: ``requested``, or by default where CUDA supports it. Raises
    ``ValueError`` (one line) where bf16 is asked for and cannot run: a GPU without bf16."""
    if requested is None:
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if requested and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise ValueError(f"--bf16: this GPU ({torch.cuda.get_device_name()}) has no bf16 support (it needs compute "
                         "capability 8.0 or later); train with --no-bf16")
    return requested  # on CPU, bf16 runs as CPU autocast (use_cpu below)


def parallel_arguments(parallel: str, deepspeed_file: str | None = None) -> dict[str, Any]:
    """``TrainingArguments`` keywords for the ``parallel`` preset (a ``deepspeed_file`` replaces
    the ZeRO preset's configuration). Raises ``ValueError`` naming what is missing."""
    if parallel not in PARALLEL:
        raise ValueError(f"parallel must be one of {PARALLEL}, got {parallel!r}")
    # Without an accelerator, the Trainer must be told it runs on CPU, or it neither joins the
    # process group torchrun set up nor accepts bf16 (CPU autocast). accelerate then picks gloo
    # (no backend is named: naming one fails a single process, which has no group).
    kwargs: dict[str, Any] = {"use_cpu": True} if not _has_accelerator() else {}
    if deepspeed_file is not None and not parallel.startswith("zero"):
        raise ValueError(f"--deepspeed FILE goes with --parallel zero2 or zero3, not {parallel!r}")
    if parallel == "fsdp":
        kwargs.update(fsdp="full_shard", fsdp_config=copy.deepcopy(FSDP_CONFIG))
    elif parallel.startswith("zero"):
        if importlib.util.find_spec("deepspeed") is None:
            raise ValueError(f"--parallel {parallel} needs DeepSpeed, which is not installed (pip install deepspeed); "
                             "--parallel fsdp shards without it")
        kwargs["deepspeed"] = deepspeed_file or copy.deepcopy(DEEPSPEED_PRESETS[parallel])
    return kwargs

"""Training settings: the paper preset, overridden by a YAML file, overridden by command-line flags."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from emollm._config import MAX_COUNT, check_setting, read_settings

__all__ = ["PARALLEL", "STRATEGIES", "TrainConfig", "load_config"]

STRATEGIES = ("emo", "mix", "sequential")
PARALLEL = ("ddp", "fsdp", "zero2", "zero3")  # emollm.training.parallel (kept free of torch imports here)


@dataclasses.dataclass
class TrainConfig:
    """Everything ``emollm train`` needs. The defaults are the paper's preset (§5.1): AdamW, cosine
    schedule, warmup ratio 0.03, lr 2e-5, 5 epochs, global batch 16, LoRA on the LM.

    ``batch_size`` is the global batch (over all processes and accumulation steps), as in the paper:
    each device gets ``batch_size / (world_size * grad_accum)`` samples per step.
    ``max_steps`` (optimizer steps), when set, replaces ``epochs``.
    ``general``: general instruction data for the ``mix`` and ``sequential`` strategies: JSONL, or
    a JSON array as LLaVA publishes it; ``image_folder``: the folder its relative ``image`` /
    ``video`` paths start from (default: the file's folder).
    ``bf16``: ``None`` = bf16 where CUDA supports it, else fp32 (``True`` on CPU: CPU autocast).
    ``save_total_limit``: checkpoints kept (the newest; ``None`` keeps all). Two, so that a kill
    while the newest is written still leaves a whole one to resume from.
    ``resume_with_changes``: continue the checkpoints in ``output`` although they were made with
    other settings (:mod:`emollm.training.run_record`).
    ``feature_cache``: a folder of the frozen towers' outputs (:mod:`emollm.model.feature_cache`):
    missing ones are computed before training, which then reads them instead of the media.
    ``parallel``: how processes share the work (:mod:`emollm.training.parallel`): ``ddp``, ``fsdp``,
    ``zero2``, ``zero3``; ``deepspeed``: a DeepSpeed JSON replacing the ZeRO preset.
    """

    model: str | None = None
    data: str | None = None
    output: str | None = None
    general: str | None = None
    image_folder: str | None = None
    strategy: str = "emo"
    epochs: int = 5
    max_steps: int | None = None
    lr: float = 2e-5
    batch_size: int = 16
    grad_accum: int = 1
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    lora: bool = True
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    seed: int = 0
    save_steps: int = 500
    save_total_limit: int | None = 2
    logging_steps: int = 10
    resume: bool = True
    resume_with_changes: bool = False
    fps: float = 1.0
    max_frames: int = 64
    num_workers: int = 0
    bf16: bool | None = None
    gradient_checkpointing: bool = False
    parallel: str = "ddp"
    feature_cache: str | None = None
    deepspeed: str | None = None

    def validate(self) -> TrainConfig:
        """Raises ``ValueError`` naming the setting that is missing, of the wrong type (a YAML
        ``lora: maybe``, ``lr: [1, 2]``), not finite or out of range."""
        for field in dataclasses.fields(self):
            setattr(self, field.name, check_setting(field.name, getattr(self, field.name), field.type))
        for name in ("model", "data", "output"):
            if not getattr(self, name):
                raise ValueError(f"{name} is required (--{name} or '{name}:' in the YAML config)")
        if self.parallel not in PARALLEL:
            raise ValueError(f"parallel must be one of {PARALLEL}, got {self.parallel!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.strategy != "emo" and not self.general:
            raise ValueError(f"strategy {self.strategy!r} needs general instruction data (--general FILE.jsonl)")
        if self.image_folder is not None and not self.general:
            raise ValueError("image_folder goes with general data (--general FILE)")
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "grad_accum": self.grad_accum,
                    "lora_r": self.lora_r, "save_steps": self.save_steps, "logging_steps": self.logging_steps,
                    "max_frames": self.max_frames}
        if self.max_steps is not None:
            positive["max_steps"] = self.max_steps
        if self.save_total_limit is not None:
            positive["save_total_limit"] = self.save_total_limit
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
            if value > MAX_COUNT:
                raise ValueError(f"{name} must be at most {MAX_COUNT}, got {value}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.lora_alpha < 1:
            raise ValueError(f"lora_alpha must be an integer >= 1 (LoRA scales by lora_alpha / lora_r), "
                             f"got {self.lora_alpha}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must lie in [0, 2**32), got {self.seed}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must lie in [0, 1), got {self.warmup_ratio}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must lie in [0, 1), got {self.lora_dropout}")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | os.PathLike | None = None, **overrides: Any) -> TrainConfig:
    """The preset, updated by the YAML mapping at ``path`` (keys = :class:`TrainConfig` fields), then
    by ``overrides`` whose value is not ``None`` (the command-line flags that were given). Raises
    ``ValueError`` (:class:`~emollm._config.ConfigError`) for a file that cannot be read as YAML
    settings, naming it, and for a bad setting, naming that."""
    values: dict[str, Any] = {}
    if path is not None:
        values.update(read_settings(path))
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown training setting(s) {unknown}; known: {sorted(known)}")
    return TrainConfig(**values).validate()

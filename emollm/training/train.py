"""EmoLLM fine-tuning on EmoBench with the ``transformers`` Trainer (paper §5.1).

``train(config)`` builds the model (a named set-up or a saved folder), wraps it in LoRA (unless
``config.lora`` is False), lays out the data per strategy (:mod:`emollm.training.schedule`) and
runs the Trainer: AdamW, cosine schedule with warmup, checkpoints every ``save_steps`` and
resumption from the last one in ``output``. The Trainer owns devices and processes, so the same
code runs on a CPU, one GPU, or many through ``torchrun`` / ``accelerate launch``.

The finished model is saved to ``output`` as a plain EmoLLM (LoRA merged into the LM weights)
with its processor, loadable by ``EmoLLMForConditionalGeneration.from_pretrained(output)`` and
``emollm eval --model output``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from emollm._io import write_json_atomic
from emollm.data.collator import EmoBenchCollator
from emollm.data.dataset import EmoBenchDataset, InstructionDataset
from emollm.data.records import RecordError
from emollm.model import NAMES, EmoLLMForConditionalGeneration, EmoLLMProcessor, apply_lora, from_named
from emollm.model._compat import checkpointing_argument
from emollm.training.config import TrainConfig
from emollm.training.schedule import ScheduledDataset, schedule

__all__ = ["TrainInputError", "TrainResult", "load_model", "train", "training_arguments"]


class TrainInputError(ValueError):
    """A data file or model folder that cannot be used; the message says which and why.
    ``emollm train`` prints it in one line (exit code 2) instead of a traceback."""


@dataclasses.dataclass
class TrainResult:
    global_step: int
    train_loss: float
    output: Path
    resumed_from: str | None


def load_model(name_or_dir: str, seed: int = 0) -> tuple[EmoLLMForConditionalGeneration, EmoLLMProcessor]:
    """``(model, processor)`` from a named set-up (``emollm-tiny``, ...) or a saved EmoLLM folder."""
    if name_or_dir in NAMES:
        return from_named(name_or_dir, seed=seed)
    path = Path(name_or_dir)
    if not (path / "config.json").is_file():
        raise TrainInputError(f"model must be one of {NAMES} or a folder saved by save_pretrained, "
                              f"got {name_or_dir!r}")
    try:
        return EmoLLMForConditionalGeneration.from_pretrained(path), EmoLLMProcessor.from_pretrained(path)
    except (OSError, ValueError) as e:  # no weights, not an EmoLLM config, no processor files
        raise TrainInputError(f"model {name_or_dir!r} is not a loadable EmoLLM folder: {e}") from e


def training_arguments(config: TrainConfig) -> TrainingArguments:
    """The Trainer's arguments for ``config``; the epochs are already unrolled into the data, so the
    Trainer makes one sequential pass (or ``max_steps`` steps)."""
    bf16 = config.bf16 if config.bf16 is not None else torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    args = TrainingArguments(
        output_dir=config.output, num_train_epochs=1, max_steps=config.max_steps or -1,
        per_device_train_batch_size=1, gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr, weight_decay=config.weight_decay, optim="adamw_torch",
        lr_scheduler_type="cosine", warmup_steps=config.warmup_ratio,  # a float < 1 is a ratio of the steps
        logging_steps=config.logging_steps, save_strategy="steps", save_steps=config.save_steps,
        save_total_limit=config.save_total_limit, seed=config.seed, data_seed=config.seed, bf16=bf16,
        dataloader_num_workers=config.num_workers, **{checkpointing_argument(): config.gradient_checkpointing},
        dataloader_pin_memory=torch.cuda.is_available(),
        train_sampling_strategy="sequential", remove_unused_columns=False, report_to="none",
    )
    devices = args.world_size * config.grad_accum
    if config.batch_size % devices:
        raise ValueError(f"batch_size {config.batch_size} (the global batch) must be a multiple of world size "
                         f"{args.world_size} x grad_accum {config.grad_accum}")
    args.per_device_train_batch_size = config.batch_size // devices
    return args


def _datasets(config: TrainConfig) -> ScheduledDataset:
    media = {"fps": config.fps, "max_frames": config.max_frames}
    try:
        emo = EmoBenchDataset(config.data, **media)
        general = InstructionDataset(config.general, **media) if config.strategy != "emo" else None
    except (RecordError, OSError, ValueError) as e:  # a missing, empty or malformed file
        raise TrainInputError(str(e)) from e
    order = schedule(config.strategy, len(emo), len(general) if general else 0, config.epochs, config.seed)
    return ScheduledDataset([emo, general], order)


def train(config: TrainConfig, callbacks: Sequence[TrainerCallback] = ()) -> TrainResult:
    """Fine-tunes per ``config`` (validated here) and saves the merged model + processor to ``config.output``."""
    config.validate()
    output = Path(config.output)
    set_seed(config.seed)  # LoRA's initial A matrices come from the global RNG: same seed, same run
    dataset = _datasets(config)  # first: a bad data file is reported before a large model loads
    model, processor = load_model(config.model, seed=config.seed)
    if config.lora:
        # Recorded as the adapters' base_model_name_or_path, so `emollm eval` of a checkpoint finds
        # it. (A named random set-up such as emollm-tiny is rebuilt with seed 0 there: checkpoints
        # of runs with another --seed need the merged final output instead.)
        model.name_or_path = config.model if config.model in NAMES else str(Path(config.model).resolve())
        model = apply_lora(model, r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout)
    args = training_arguments(config)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=EmoBenchCollator(processor),
                      processing_class=processor, callbacks=list(callbacks))
    checkpoint = get_last_checkpoint(str(output)) if config.resume and output.is_dir() else None
    result = trainer.train(resume_from_checkpoint=checkpoint)

    if trainer.is_world_process_zero():
        final = trainer.model.merge_and_unload() if config.lora else trainer.model
        final.save_pretrained(output)
        processor.save_pretrained(output)
        write_json_atomic(output / "train_config.json", config.to_dict())
    return TrainResult(trainer.state.global_step, result.training_loss, output, checkpoint)

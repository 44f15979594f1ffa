"""EmoLLM fine-tuning on EmoBench with the ``transformers`` Trainer (paper §5.1).

``train(config)`` builds the model (a named set-up or a saved folder), wraps it in LoRA (unless
``config.lora`` is False), lays out the data per strategy (:mod:`emollm.training.schedule`) and
runs the Trainer: AdamW, cosine schedule with warmup, checkpoints every ``save_steps`` and
resumption from the last one in ``output``. The Trainer owns devices and processes, so the same
code runs on a CPU, one GPU, or many through ``torchrun`` / ``accelerate launch``
(:mod:`emollm.training.parallel`: DDP, FSDP, DeepSpeed ZeRO). With ``feature_cache`` it reads the
frozen towers' outputs instead of the media (:mod:`emollm.training.cached_data`); ``loss.csv`` /
``loss.png`` and ``train_config.json`` record the run (:mod:`emollm.training.loss_log`,
:mod:`emollm.training.run_record`).

The finished model is saved to ``output`` as a plain EmoLLM (LoRA merged into the LM weights)
with its processor, loadable by ``EmoLLMForConditionalGeneration.from_pretrained(output)`` and
``emollm eval --model output``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from emollm.data.collator import EmoBenchCollator
from emollm.data.dataset import EmoBenchDataset, InstructionDataset
from emollm.data.records import RecordError
from emollm.model import NAMES, EmoLLMForConditionalGeneration, EmoLLMProcessor, apply_lora, from_named
from emollm.model._compat import checkpointing_argument
from emollm.training.config import TrainConfig
from emollm.training.loss_log import LossLog
from emollm.training.parallel import bf16_setting, parallel_arguments
from emollm.training.run_record import SettingsChanged, check_rerun, finish_part, start_part
from emollm.training.schedule import ScheduledDataset, schedule
from emollm.training.trainer import EmoLLMTrainer, keep_projectors_in_graph

__all__ = ["TrainInputError", "TrainResult", "load_model", "train", "training_arguments"]


class TrainInputError(ValueError):
    """A data file, model folder or setting that cannot be used here; the message says which and
    why. ``emollm train`` prints it in one line (exit code 2) instead of a traceback."""


@dataclasses.dataclass
class TrainResult:
    global_step: int
    train_loss: float
    output: Path
    resumed_from: str | None


def load_model(name_or_dir: str, seed: int = 0) -> tuple[EmoLLMForConditionalGeneration, EmoLLMProcessor]:
    """``(model, processor)`` from a named set-up (``emollm-tiny``, ...), a saved EmoLLM folder, or a
    saved transformers LLaVA folder (its MVP trained: :mod:`emollm.integrations.llava_training`)."""
    if name_or_dir in NAMES:
        return from_named(name_or_dir, seed=seed)
    path = Path(name_or_dir)
    if not (path / "config.json").is_file():
        raise TrainInputError(f"model must be one of {NAMES}, a folder saved by save_pretrained or a LLaVA folder, "
                              f"got {name_or_dir!r}")
    from emollm.integrations import llava_training

    if llava_training.is_llava_folder(path):
        try:
            return llava_training.load_llava(path, seed=seed)
        except (OSError, ValueError) as e:
            raise TrainInputError(f"model {name_or_dir!r} is not a loadable LLaVA folder: {e}") from e
    try:
        return EmoLLMForConditionalGeneration.from_pretrained(path), EmoLLMProcessor.from_pretrained(path)
    except (OSError, ValueError) as e:  # no weights, not an EmoLLM config, no processor files
        raise TrainInputError(f"model {name_or_dir!r} is not a loadable EmoLLM folder: {e}") from e


def training_arguments(config: TrainConfig) -> TrainingArguments:
    """The Trainer's arguments for ``config``; the epochs are already unrolled into the data, so the
    Trainer makes one sequential pass (or ``max_steps`` steps). Raises :class:`TrainInputError` for
    a setting this machine cannot run (bf16 on a GPU without it, DeepSpeed not installed)."""
    try:
        bf16 = bf16_setting(config.bf16)
        parallel = parallel_arguments(config.parallel, config.deepspeed)
    except ValueError as e:
        raise TrainInputError(str(e)) from e
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
        ddp_find_unused_parameters=False,  # every trainable parameter is in every step (keep_projectors_in_graph)
        **parallel,
    )
    devices = args.world_size * config.grad_accum
    if config.batch_size % devices:
        raise TrainInputError(f"batch_size {config.batch_size} (the global batch) must be a multiple of world size "
                              f"{args.world_size} x grad_accum {config.grad_accum}")
    args.per_device_train_batch_size = config.batch_size // devices
    return args


def _datasets(config: TrainConfig) -> tuple[EmoBenchDataset, InstructionDataset | None]:
    media = {"fps": config.fps, "max_frames": config.max_frames}
    try:
        emo = EmoBenchDataset(config.data, **media)
        general = InstructionDataset(config.general, image_folder=config.image_folder, **media) \
            if config.strategy != "emo" else None
    except (RecordError, OSError, ValueError) as e:  # a missing, empty or malformed file
        raise TrainInputError(str(e)) from e
    return emo, general


def _scheduled(config: TrainConfig, emo, general) -> ScheduledDataset:
    order = schedule(config.strategy, len(emo), len(general) if general else 0, config.epochs, config.seed)
    return ScheduledDataset([emo, general], order)


def _cached(config: TrainConfig, args: TrainingArguments, model, processor, emo, general):
    """``(emo, general, collator)`` reading the towers' outputs from ``config.feature_cache``,
    after computing the missing ones (each process a share, the towers on its device)."""
    from emollm.model.feature_cache import inner_model
    from emollm.training.cached_data import CachedFeatureCollator, CachedFeatureDataset, open_feature_cache

    inner = inner_model(model)
    inner.vision_tower.to(args.device)
    inner.audio_tower.to(args.device)
    sources = [(d.records, d.base_dir) for d in (emo, general) if d is not None]
    cache, digests = open_feature_cache(config.feature_cache, model, processor, sources, fps=config.fps,
                                        max_frames=config.max_frames, progress=args.process_index == 0,
                                        rank=args.process_index, world_size=args.world_size)
    wrap = lambda d: None if d is None else CachedFeatureDataset(d, cache, digests)  # noqa: E731
    return wrap(emo), wrap(general), CachedFeatureCollator(processor)


def _step_of(checkpoint: str | None) -> int:
    return int(Path(checkpoint).name.rsplit("-", 1)[1]) if checkpoint else 0


def torn(checkpoint: Path) -> str | None:
    """What shows that ``checkpoint`` was not written whole (a kill or a full disk during the
    Trainer's save, which writes in place), or None. Cheap checks: ``trainer_state.json`` parses,
    every safetensors file's header covers the file, every torch file's zip directory is there."""
    import json
    import zipfile

    from safetensors import SafetensorError, safe_open

    if not any(checkpoint.glob("*.safetensors")) and not any(checkpoint.glob("*.bin")):
        return "no model weights file (model.safetensors, adapter_model.safetensors or *.bin)"
    state = checkpoint / "trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"trainer_state.json: {' '.join(str(e).split())}"
    for file in sorted(checkpoint.iterdir()):
        try:
            if file.suffix == ".safetensors":
                with safe_open(str(file), framework="pt"):
                    pass
            elif file.suffix in (".pt", ".pth", ".bin") and not zipfile.is_zipfile(file):
                return f"{file.name}: cut off (not a whole torch file)"
        except (OSError, SafetensorError) as e:
            return f"{file.name}: {' '.join(str(e).split())}"
    return None


def resume_point(output: Path) -> str | None:
    """The newest checkpoint in ``output`` that was written whole, or None when there is none. A
    newer one that is torn is passed over with a note (two are kept, so that a kill while the
    newest is written leaves the one before); when every checkpoint is torn, :class:`TrainInputError`."""
    last = get_last_checkpoint(str(output))
    if last is None:
        return None
    checkpoints = sorted((p for p in output.iterdir() if p.is_dir() and p.name.startswith("checkpoint-")
                          and p.name.removeprefix("checkpoint-").isdigit()), key=lambda p: -_step_of(str(p)))
    for checkpoint in checkpoints:
        problem = torn(checkpoint)
        if problem is None:
            return str(checkpoint)
        if checkpoint != checkpoints[-1]:
            _note(f"{checkpoint} is incomplete ({problem}); resuming from the checkpoint before it")
    raise TrainInputError(f"{checkpoints[-1]} is incomplete ({torn(checkpoints[-1])}) and no whole checkpoint is "
                          f"left to resume from; remove it (or pass --no-resume) to start again")


def _note(message: str) -> None:
    if os.environ.get("RANK", "0") == "0":  # under torchrun, process 0 speaks for all
        print(f"emollm train: note: {message}", file=sys.stderr)


def train(config: TrainConfig, callbacks: Sequence[TrainerCallback] = ()) -> TrainResult:
    """Fine-tunes per ``config`` (validated here) and saves the merged model + processor to ``config.output``.

    Raises :class:`~emollm.training.run_record.RunFinished` when ``config.output`` holds a finished
    run with the same settings, and :class:`TrainInputError` when it holds checkpoints of a run
    with other settings (unless ``config.resume_with_changes``)."""
    config.validate()
    output = Path(config.output)
    checkpoint = resume_point(output) if config.resume and output.is_dir() else None
    try:
        check_rerun(config, has_checkpoint=checkpoint is not None)
    except SettingsChanged as e:
        raise TrainInputError(str(e)) from e
    set_seed(config.seed)  # LoRA's initial A matrices come from the global RNG: same seed, same run
    emo, general = _datasets(config)  # first: a bad data file is reported before a large model loads
    args = training_arguments(config)  # then a setting this machine cannot run (bf16, DeepSpeed)
    model, processor = load_model(config.model, seed=config.seed)
    from emollm.integrations import llava_training

    llava = llava_training.is_llava(model)
    if llava:  # images only: refuse video or audio records now, not at their first batch
        try:
            llava_training.check_images_only(r for d in (emo, general) if d is not None for r in d.records)
        except ValueError as e:
            raise TrainInputError(str(e)) from e
        if config.feature_cache:
            raise TrainInputError("--feature-cache works with EmoLLM models only, not with a LLaVA model")
    collator = EmoBenchCollator(processor)
    if config.feature_cache:
        emo, general, collator = _cached(config, args, model, processor, emo, general)
    dataset = _scheduled(config, emo, general)
    if config.lora:
        # Recorded as the adapters' base_model_name_or_path, so `emollm eval` of a checkpoint finds
        # it. (A named random set-up such as emollm-tiny is rebuilt with seed 0 there: checkpoints
        # of runs with another --seed need the merged final output instead.)
        model.name_or_path = config.model if config.model in NAMES else str(Path(config.model).resolve())
        lora = llava_training.apply_llava_lora if llava else apply_lora
        model = lora(model, r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout)
    if not llava:  # a LLaVA's one projector (the MVP) sees every batch: images only
        # In every run, not only multi-process ones: one process then computes what N processes do.
        keep_projectors_in_graph(model)
    trainer = EmoLLMTrainer(model=model, args=args, train_dataset=dataset, data_collator=collator,
                            processing_class=processor,
                            callbacks=[LossLog(output), *callbacks])
    if trainer.is_world_process_zero():
        start_part(config, from_step=_step_of(checkpoint), processes=args.world_size)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    _save_final(trainer, config, processor)
    # Every process leaves together: one that tore its process group down while process 0 still
    # saves could end the job (and under FSDP the shards' owners must outlive the gathering).
    trainer.accelerator.wait_for_everyone()
    return TrainResult(trainer.state.global_step, result.training_loss, output, checkpoint)


def _save_final(trainer: Trainer, config: TrainConfig, processor: EmoLLMProcessor) -> None:
    """The finished model (LoRA merged into the LM), its processor and ``train_config.json`` in
    ``config.output``, written by process 0.

    Under ``fsdp`` and ``zero3`` no process holds whole parameters, so the Trainer first gathers
    them into a save (the adapters of a LoRA run, into ``output/adapter``); process 0 then merges
    those into a fresh copy of the base model."""
    output = Path(config.output)
    sharded = config.parallel in ("fsdp", "zero3")
    if sharded:
        trainer.save_model(str(output / "adapter") if config.lora else str(output))  # collective: every process
    if not trainer.is_world_process_zero():
        return
    if sharded and config.lora:
        from peft import PeftModel

        base, _ = load_model(config.model, seed=config.seed)
        final = PeftModel.from_pretrained(base, output / "adapter").merge_and_unload()
    elif sharded:
        final = None  # the Trainer saved the whole model
    else:
        final = trainer.model.merge_and_unload() if config.lora else trainer.model
    # Saved beside the output first, then moved in file by file: each file appears whole or not at all.
    with tempfile.TemporaryDirectory(dir=output, prefix=".final-") as tmp:
        if final is not None:
            final.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        for path in Path(tmp).iterdir():
            os.replace(path, output / path.name)
    finish_part(config, trainer.state.global_step)

"""``emollm train``: fine-tune EmoLLM on EmoBench (see :mod:`emollm.training.train`).

    emollm train --model emollm-tiny --data synth/train.jsonl --output runs/tiny [--config FILE.yaml]
                 [--epochs 5 --max-steps N --lr 2e-5 --batch-size 16 --grad-accum 1]
                 [--strategy emo|mix|sequential --general FILE.jsonl|FILE.json [--image-folder DIR]]
                 [--lora-r 8 --lora-alpha 16 --lora-dropout 0.05 | --no-lora]
                 [--seed 0 --save-steps 500 --save-total-limit 2 --logging-steps 10]
                 [--resume | --no-resume] [--resume-with-changes]
                 [--parallel ddp|fsdp|zero2|zero3 [--deepspeed FILE.json]] [--bf16 | --no-bf16]
                 [--feature-cache DIR]

Settings come from the paper preset, then the YAML file (keys = the flag names, ``-`` or ``_``),
then the flags given on the command line.
"""

from __future__ import annotations

import argparse
import os
import sys

from emollm._io import NewFolders, check_output_dir
from emollm.training.config import PARALLEL, STRATEGIES, TrainConfig

_PRESET = TrainConfig()


def cmd_train(args: argparse.Namespace) -> int:
    from emollm.training.config import load_config
    from emollm.training.run_record import RunFinished
    from emollm.training.train import TrainInputError, train

    flags = {k: v for k, v in vars(args).items()
             if k not in ("command", "func", "extra", "config", "allow_outside_media")}
    try:
        config = load_config(args.config, **flags)
    except (ValueError, OSError) as e:  # an unreadable --config, a setting of the wrong type or out of range
        return _refuse(str(e))
    folders = NewFolders(check_output_dir(config.output, what="--output")).expect()
    problem = None if args.allow_outside_media else media_outside(config)
    if problem:
        return _refuse(problem)
    try:
        result = train(config)
    except TrainInputError as e:  # a bad data file, model folder or setting: one line, not a traceback
        folders.remove()  # an --output folder made for this run goes again
        return _refuse(str(e))
    except RunFinished as e:
        if _is_main_process():
            print(f"emollm train: {e}")
        return 0
    except KeyboardInterrupt:
        print(f"\nemollm train: interrupted; run the same command again to continue from the last checkpoint "
              f"in {config.output}", file=sys.stderr)
        return 130
    finally:
        _end_process_group()
    if _is_main_process():
        resumed = f", resumed from {result.resumed_from}" if result.resumed_from else ""
        print(f"trained {result.global_step} steps (mean loss {result.train_loss:.4f}{resumed}); "
              f"model and processor saved to {result.output}")
    return 0


def _is_main_process() -> bool:
    # Under torchrun every process runs the command; process 0 speaks for all.
    return os.environ.get("RANK", "0") == "0"


def _refuse(problem: str) -> int:
    if _is_main_process():
        print(f"emollm train: {problem}", file=sys.stderr)
    return 2


def _end_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def media_outside(config: TrainConfig) -> str | None:
    """The first record whose media lead out of its file's folder, as ``file:line: ...``, or None
    (a missing or malformed file is left to ``train``, which reports it)."""
    from emollm.data.dataset import read_instructions
    from emollm.data.records import MediaOutsideError, RecordError, read_jsonl

    try:
        for _ in read_jsonl(config.data, confine_media=True):
            pass
        if config.general and config.strategy != "emo":
            read_instructions(config.general, confine_media=True)
    except MediaOutsideError as e:
        return str(e)
    except (RecordError, OSError):
        return None
    return None


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Adds ``emollm train``. Every setting defaults to ``None`` here so that only the flags given
    override the YAML config; the preset values are in the help."""
    p = sub.add_parser("train", help="fine-tune EmoLLM on EmoBench JSONL (transformers Trainer, LoRA)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a named set-up (emollm-tiny, emollm-7b) or a saved EmoLLM folder")
    p.add_argument("--data", help="EmoBench training records (JSONL; media relative to its folder)")
    p.add_argument("--output", help="folder for checkpoints and the final model")
    p.add_argument("--config", help="YAML file of settings (flag names as keys); flags override it")
    p.add_argument("--general", help="general instruction data for mix/sequential: JSONL with 'conversations', or "
                   "a JSON array as LLaVA publishes it (e.g. llava_v1_5_mix665k.json)")
    p.add_argument("--image-folder", metavar="DIR", help="folder the general data's relative image/video paths start "
                   "from (LLaVA's --image_folder; default: the --general file's folder)")
    p.add_argument("--strategy", choices=STRATEGIES, help=f"default: {_PRESET.strategy}")
    p.add_argument("--epochs", type=int, help=f"default: {_PRESET.epochs}")
    p.add_argument("--max-steps", type=int, help="optimizer steps; replaces --epochs when given")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default: {_PRESET.lr})")
    p.add_argument("--batch-size", type=int, help=f"global batch size (default: {_PRESET.batch_size})")
    p.add_argument("--grad-accum", type=int, help=f"gradient accumulation steps (default: {_PRESET.grad_accum})")
    p.add_argument("--warmup-ratio", type=float, help=f"default: {_PRESET.warmup_ratio}")
    p.add_argument("--weight-decay", type=float, help=f"default: {_PRESET.weight_decay}")
    p.add_argument("--lora", action=argparse.BooleanOptionalAction,
                   help="LoRA on the LM, projectors trained in full (default); --no-lora trains LM and projectors")
    p.add_argument("--lora-r", type=int, help=f"default: {_PRESET.lora_r}")
    p.add_argument("--lora-alpha", type=int, help=f"default: {_PRESET.lora_alpha}")
    p.add_argument("--lora-dropout", type=float, help=f"default: {_PRESET.lora_dropout}")
    p.add_argument("--seed", type=int, help=f"default: {_PRESET.seed}")
    p.add_argument("--save-steps", type=int, help=f"checkpoint every N steps (default: {_PRESET.save_steps})")
    p.add_argument("--save-total-limit", type=int,
                   help=f"keep the newest N checkpoints (default: {_PRESET.save_total_limit})")
    p.add_argument("--logging-steps", type=int, help=f"default: {_PRESET.logging_steps}")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction,
                   help="continue from the last checkpoint in --output if there is one (default: yes)")
    p.add_argument("--resume-with-changes", action="store_true", default=None,
                   help="continue checkpoints made with other settings (refused without it)")
    p.add_argument("--fps", type=float, help=f"video frames per second (default: {_PRESET.fps})")
    p.add_argument("--max-frames", type=int, help=f"video frame cap (default: {_PRESET.max_frames})")
    p.add_argument("--num-workers", type=int, help=f"data loading processes (default: {_PRESET.num_workers})")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction,
                   help="default: where CUDA supports it; on CPU --bf16 runs CPU autocast")
    p.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--parallel", choices=PARALLEL, help="how the processes of torchrun / accelerate launch share the "
                   "work: ddp (default), fsdp, zero2 / zero3 (DeepSpeed); see docs/training.md")
    p.add_argument("--feature-cache", metavar="DIR", help="keep the frozen CLIP/Whisper outputs in DIR (computed "
                   "once, keyed by media file and tower) and train on them instead of the media")
    p.add_argument("--deepspeed", metavar="FILE.json", help="a DeepSpeed config replacing the zero2/zero3 preset")
    p.add_argument("--allow-outside-media", action="store_true",
                   help="read media whose paths lead out of the --data (and --general) file's folder")
    p.set_defaults(func=cmd_train, extra="train")

"""``emollm eval``: answer EmoBench records with a model and score them, or re-score predictions.

    emollm eval --model DIR --data test.jsonl --out eval/ [--config FILE.yaml] [--batch-size 8] [--max-new-tokens 32]
                [--limit N] [--device cpu|cuda] [--dtype auto] [--prompts STORE.jsonl] [--resume]
    emollm eval --predictions eval/predictions.jsonl --out eval2/

Both write ``predictions.jsonl``, ``metrics.json``, ``report.md`` and ``accuracy.png`` into
``--out``. ``--model`` is a folder saved by ``emollm train`` (a merged EmoLLM + processor), a
folder holding a peft adapter (e.g. a Trainer checkpoint; its base is ``--base-model`` or the
adapter's ``base_model_name_or_path``), or a named set-up (``emollm-tiny``: random weights, for
smoke tests). Re-scoring parses each stored ``output`` again with today's parser.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from emollm._config import MAX_COUNT, check_setting, read_settings
from emollm._io import NewFolders, check_output_dir, write_jsonl_atomic

__all__ = ["add_commands", "cmd_eval", "load_model"]

DTYPES = ("auto", "float32", "bfloat16", "float16")
# The options a --config YAML may set, with their defaults (the flags default to None, so that a
# flag given on the command line is told apart from one left to the YAML file).
SETTINGS = {"data": None, "batch_size": 8, "max_new_tokens": 32, "limit": None, "device": None, "dtype": "auto",
            "prompts": None, "prompt_seed": 0, "base_model": None, "max_unparseable": 50, "feature_cache": None,
            "bootstrap": 1000, "bootstrap_seed": 0}
# Their types, as a --config value is checked (emollm._config.check_setting).
TYPES = {"data": "str | None", "batch_size": "int", "max_new_tokens": "int", "limit": "int | None",
         "device": "str | None", "dtype": "str", "prompts": "str | None", "prompt_seed": "int",
         "base_model": "str | None", "max_unparseable": "int", "feature_cache": "str | None", "bootstrap": "int",
         "bootstrap_seed": "int"}


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Adds ``emollm eval`` to the ``emollm`` parser."""
    p = sub.add_parser("eval", help="answer EmoBench records with a model and score them (or re-score predictions)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="DIR_OR_NAME", help="a saved EmoLLM folder, a peft adapter folder, "
                        "or a named set-up such as emollm-tiny")
    source.add_argument("--predictions", metavar="FILE", help="re-score this predictions.jsonl (no model)")
    p.add_argument("--data", metavar="FILE.jsonl", help="EmoBench records to answer (with --model)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for predictions.jsonl, metrics.json, "
                   "report.md, accuracy.png")
    p.add_argument("--config", metavar="FILE.yaml", help="settings of the other options below (keys = their names, "
                   "- or _); flags given override it (configs/eval/)")
    p.add_argument("--batch-size", type=int, help="records per generate call (default: 8)")
    p.add_argument("--max-new-tokens", type=int, help="answer length limit (default: 32)")
    p.add_argument("--limit", type=int, help="answer the first N records only")
    p.add_argument("--device", help="default: cuda if available, else cpu")
    p.add_argument("--dtype", choices=DTYPES, help="default auto: bfloat16 on CUDA, float32 on CPU")
    p.add_argument("--prompts", metavar="STORE.jsonl", help="EmoPrompt store: put a random exemplar of each "
                   "record's task before its question (paper §4.4)")
    p.add_argument("--prompt-seed", type=int, help="seed of the exemplar choice (default: 0)")
    p.add_argument("--base-model", metavar="DIR_OR_NAME", help="base model of a peft adapter --model")
    p.add_argument("--resume", action="store_true", help="keep the answers already in OUT/predictions.jsonl")
    p.add_argument("--overwrite", action="store_true", help="replace an OUT/predictions.jsonl that is already there "
                   "(without --resume or --overwrite, eval refuses to touch it)")
    p.add_argument("--allow-outside-media", action="store_true",
                   help="read media whose paths lead out of the --data file's folder")
    p.add_argument("--max-unparseable", type=int, help="unparseable answers listed in report.md (default: 50)")
    p.add_argument("--feature-cache", metavar="DIR", help="keep the frozen CLIP/Whisper outputs in DIR (computed "
                   "once, keyed by media file and tower) and answer from them instead of the media")
    p.add_argument("--bootstrap", type=int, metavar="N",
                   help="bootstrap resamples for the 95%% intervals (default: 1000; 0: no intervals)")
    p.add_argument("--bootstrap-seed", type=int, help="seed of the bootstrap resamples (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval, extra="eval")


def _resolve_base(spec: str, adapter_dir: Path) -> str:
    """A base given relative to the adapter folder is found there too."""
    if Path(spec).exists() or not (adapter_dir / spec).exists():
        return spec
    return str(adapter_dir / spec)


def load_model(spec: str, *, device: str = "cpu", dtype: str = "float32", base_model: str | None = None):
    """``(model, processor)`` in eval mode on ``device``, for a named set-up, a saved EmoLLM folder
    or a peft adapter folder (over ``base_model``, else the adapter's recorded base)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from emollm.model import NAMES, from_named  # importing emollm.model registers the Auto classes

    torch_dtype = getattr(torch, dtype)
    path = Path(spec)
    if spec in NAMES and not path.exists():
        return from_named(spec, device=device, dtype=torch_dtype)
    if not path.is_dir():
        raise ValueError(f"--model {spec!r} is neither a folder nor a named set-up ({', '.join(NAMES)})")
    adapter = path / "adapter_config.json"
    if adapter.is_file():
        from peft import PeftModel

        base = base_model or json.loads(adapter.read_text()).get("base_model_name_or_path")
        if not base:
            raise ValueError(f"{adapter} names no base model: pass --base-model DIR_OR_NAME")
        model, processor = load_model(_resolve_base(base, path), device=device, dtype=dtype)
        model = PeftModel.from_pretrained(model, path).to(device)
        if (path / "processor_config.json").is_file():
            processor = AutoProcessor.from_pretrained(path)
        return model.eval(), processor
    if not (path / "config.json").is_file():
        raise ValueError(f"--model {spec!r}: no config.json or adapter_config.json in that folder")
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch_dtype).to(device)
    return model.eval(), AutoProcessor.from_pretrained(path)


def _cached_features(root: str, model, processor, records, base_dir: Path, progress: bool):
    """A record -> cached tower outputs function, after computing this process's missing ones
    (video frames as in training's defaults: 1 per second, at most 64)."""
    from emollm.data.media import MAX_FRAMES
    from emollm.training.cached_data import open_feature_cache, record_features

    cache, digests = open_feature_cache(root, model, processor, [(records, base_dir)], fps=1.0,
                                        max_frames=MAX_FRAMES, progress=progress)
    return lambda record: record_features(record, base_dir, cache, digests)


def _exemplars(store: str, seed: int):
    from emollm.prompting import ExemplarSelector, load_store

    return ExemplarSelector(load_store(store), "random", seed=seed).exemplar_text


MAX_NEW_TOKENS = 8192  # a limit beyond any answer; a model that never stops would otherwise run for hours


def _settle(args: argparse.Namespace) -> None:
    """Fills the options not given on the command line from ``--config`` (a YAML mapping), then
    from :data:`SETTINGS`. Raises ``ValueError`` for a file that is no YAML mapping, naming it, and for a
    YAML key that is no such option or a value of the wrong type, naming the setting."""
    values: dict[str, Any] = {}
    if args.config is not None:
        values = read_settings(args.config)
        unknown = sorted(set(values) - set(SETTINGS))
        if unknown:
            raise ValueError(f"--config {args.config}: unknown setting(s) {unknown}; known: {sorted(SETTINGS)}")
        for name, value in values.items():
            try:
                values[name] = check_setting(name, value, TYPES[name])
            except ValueError as e:
                raise ValueError(f"--config {args.config}: {e}") from None
    for name, default in SETTINGS.items():
        if getattr(args, name) is None:
            setattr(args, name, values.get(name, default))
    if args.dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {args.dtype!r}")


def _check(args: argparse.Namespace) -> str | None:
    """The first thing wrong with the arguments, or None."""
    if args.model is not None and args.data is None:
        return "--model needs --data FILE.jsonl (the records to answer)"
    if args.predictions is not None and args.data is not None:
        return "--data goes with --model; --predictions re-scores the records stored in the file"
    if args.resume and args.overwrite:
        return "--resume keeps OUT/predictions.jsonl and --overwrite replaces it: give one of them"
    if args.resume and args.predictions is not None:
        return "--resume goes with --model; --predictions re-scores a whole file"
    for name in ("batch_size", "max_new_tokens", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            return f"--{name.replace('_', '-')} must be at least 1, got {value}"
        if value is not None and value > MAX_COUNT:
            return f"--{name.replace('_', '-')} must be at most {MAX_COUNT}, got {value}"
    if args.max_new_tokens > MAX_NEW_TOKENS:
        return f"--max-new-tokens must be at most {MAX_NEW_TOKENS}, got {args.max_new_tokens}"
    for name in ("max_unparseable", "bootstrap", "bootstrap_seed"):
        if getattr(args, name) < 0:
            return f"--{name.replace('_', '-')} must be at least 0, got {getattr(args, name)}"
    for name in ("data", "predictions", "prompts"):
        value = getattr(args, name)
        if value is not None and not Path(value).is_file():
            return f"--{name} {value}: " + ("a folder, not a file" if Path(value).is_dir() else "no such file")
    if args.model is not None and args.device is not None:
        import torch

        try:
            device = torch.device(args.device)
        except RuntimeError:
            return f"--device {args.device!r} is not a device name (cpu, cuda, cuda:1, ...)"
        if device.type == "cuda" and not torch.cuda.is_available():
            return f"--device {args.device}: no CUDA device here (see `emollm env`)"
    return None


def _kept_predictions(args: argparse.Namespace, target: Path) -> str | None:
    """Why ``target`` (OUT/predictions.jsonl) must not be written by this run, or None: answers
    already there are never replaced without ``--overwrite``, and ``--resume`` keeps only answers to
    the records being run (others would be dropped from the file). The shards an interrupted run
    left (``predictions.rank<r>.jsonl``) count as answers too."""
    if args.overwrite:
        return None
    if args.predictions is None and not args.resume and (shard := _leftover_shard(target.parent)):
        return (f"{shard} holds answers of an interrupted run; pass --resume to keep them and answer only the "
                f"records they lack, or --overwrite to start again")
    if not target.is_file() or target.stat().st_size == 0:
        return None
    if args.predictions is not None:
        if target.resolve() == Path(args.predictions).resolve():
            return None  # re-scoring a file in place: its outputs are kept, only the scores change
        return f"{target} already holds predictions; pass --overwrite to replace them with the re-scored ones"
    if not args.resume:
        return (f"{target} already holds predictions; pass --resume to answer only the records it lacks, "
                f"or --overwrite to start again")
    return None


def _leftover_shard(out: Path) -> Path | None:
    """A shard of an interrupted run in ``out`` that holds something, or None."""
    from emollm.evaluation.sharding import shards

    return next((path for path in shards(out) if path.is_file() and path.stat().st_size > 0), None)


def _foreign_answers(args: argparse.Namespace, target: Path, records: list) -> str | None:
    """With ``--resume``: why the kept file does not belong to this run, or None."""
    from emollm.evaluation.predict import read_predictions
    from emollm.evaluation.sharding import shards

    if not args.resume:
        return None
    wanted = {r.id for r in records}
    # The merged file, and the shards an interrupted run left (merging them keeps only this run's).
    for kept in [target, *shards(target.parent)]:
        if not kept.is_file():
            continue
        foreign = [p["id"] for p in read_predictions(kept, warn=lambda message: None) if p.get("id") not in wanted]
        if foreign:
            return (f"{kept} holds {len(foreign)} answer(s) to records that this run does not answer (e.g. "
                    f"{foreign[0]!r}); resuming would drop them. Run with the same --data and --limit, or pass "
                    f"--overwrite to start again")
    return None


def _answer(args: argparse.Namespace, out: Path) -> tuple[list[dict[str, Any]] | None, dict[str, Any]]:
    """Answers ``--data`` in this process's share of the records (all of them when alone); process 0
    returns the merged predictions, the others ``None``."""
    import torch

    from emollm.data.records import read_jsonl
    from emollm.evaluation import sharding
    from emollm.evaluation.predict import CutOffLineWarning, predict

    # A moved JSONL fails here, not mid-run; so does one whose media lead out of its folder.
    records = list(read_jsonl(args.data, check_media=True, confine_media=not args.allow_outside_media))
    if args.limit is not None:
        records = records[: args.limit]
    if not records:
        raise ValueError(f"--data {args.data} holds no records")
    if problem := _foreign_answers(args, out / "predictions.jsonl", records):
        raise ValueError(problem)
    state = sharding.process_state(args.device)
    world, rank = state.num_processes, state.process_index
    if world > 1:
        device = str(state.device)  # cuda:<local rank>, or cpu
    else:
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = args.dtype if args.dtype != "auto" else "bfloat16" if torch.device(device).type == "cuda" else "float32"
    earlier = sharding.answered(out, records) if args.resume else {}
    state.wait_for_everyone()  # every process has read the old answers before any shard is rewritten
    exemplars = _exemplars(args.prompts, args.prompt_seed) if args.prompts else None  # a bad store: before the model
    model, processor = load_model(args.model, device=device, dtype=dtype, base_model=args.base_model)
    base_dir = Path(args.data).parent
    with state.split_between_processes(records) as share:
        features = _cached_features(args.feature_cache, model, processor, share, base_dir,
                                    progress=not args.no_progress and state.is_main_process) \
            if args.feature_cache else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CutOffLineWarning)  # said once, in one line, by the resume check
            predict(model, processor, share, base_dir, batch_size=args.batch_size,
                    max_new_tokens=args.max_new_tokens, exemplars=exemplars, out=sharding.shard_path(out, rank),
                    answered=earlier, progress=not args.no_progress and state.is_main_process,
                    desc="emollm eval" + (f" (process 0 of {world}, {len(share)} records)" if world > 1 else ""),
                    features=features)
    state.wait_for_everyone()
    predictions = sharding.merge_shards(out, records, world) if state.is_main_process else None
    meta = {"model": args.model, "data": args.data, "records": len(records), "device": device, "dtype": dtype,
            "processes": world, "max_new_tokens": args.max_new_tokens, "prompts": args.prompts or "none"}
    return predictions, meta


def _rescore(args: argparse.Namespace, out: Path) -> tuple[list[dict[str, Any]] | None, dict[str, Any]]:
    from emollm.evaluation.metrics import rescore
    from emollm.evaluation.predict import read_predictions
    from emollm.evaluation.sharding import is_main_process

    if not is_main_process():  # re-scoring needs no model: one process does it
        return None, {}
    predictions = [rescore(p, i) for i, p in enumerate(read_predictions(args.predictions, warn=_note))]
    if not predictions:
        raise ValueError(f"--predictions {args.predictions} holds no predictions")
    write_jsonl_atomic(out / "predictions.jsonl", predictions)
    return predictions, {"predictions": args.predictions, "records": len(predictions)}


def _note(message: str) -> None:
    print(f"emollm eval: note: {message}", file=sys.stderr)


def _refuse(problem: str) -> int:
    """Exit code 2 after one line on stderr (from process 0 only: under torchrun every process
    finds the same problem)."""
    _say(f"emollm eval: {problem}")
    return 2


def _say(line: str) -> None:
    """``line`` on stderr, from process 0 only."""
    from emollm.evaluation.sharding import is_main_process

    if is_main_process():
        print(line, file=sys.stderr)


def _end_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def cmd_eval(args: argparse.Namespace) -> int:
    from emollm.data.records import RecordError
    from emollm.evaluation.metrics import compute_metrics
    from emollm.evaluation.report import format_report, write_report

    try:
        _settle(args)
    except (ValueError, OSError) as e:
        return _refuse(str(e))
    problem = _check(args)
    if problem:
        return _refuse(problem)
    out = check_output_dir(args.out)
    if problem := _kept_predictions(args, out / "predictions.jsonl"):
        return _refuse(problem)
    # The folders made for --out are removed again when the run fails before writing anything.
    with NewFolders(out) as folders:
        if args.resume and (out / "predictions.jsonl").is_file():
            from emollm.evaluation.predict import read_predictions

            try:
                read_predictions(out / "predictions.jsonl", warn=_note)  # says now what --resume will drop
            except RecordError as e:
                return _refuse(str(e))
        try:
            predictions, meta = (_answer if args.model is not None else _rescore)(args, out)
            if predictions is None:  # not process 0: its share is in its shard, merged by process 0
                return 0
            metrics = compute_metrics(predictions, resamples=args.bootstrap, seed=args.bootstrap_seed)
        except (RecordError, ValueError, TypeError) as e:  # bad input, in one line; anything else keeps its traceback
            folders.remove()
            return _refuse(str(e))
        except KeyboardInterrupt:
            folders.remove()  # only the folders it made that are still empty
            kept = "; the answers so far are kept: rerun with --resume to continue" if args.model is not None else ""
            _say(f"\nemollm eval: interrupted{kept}")
            return 130
        finally:
            _end_process_group()
        paths = write_report(metrics, out, meta=meta, max_unparseable=args.max_unparseable)
    print(format_report(metrics, meta=meta, max_unparseable=0).split("## Per task", 1)[0].rstrip())
    print("wrote " + ", ".join(str(p) for p in [out / "predictions.jsonl", *paths.values()]))
    return 0

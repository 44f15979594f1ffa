"""``emollm eval``: answer EmoBench records with a model and score them, or re-score predictions.

    emollm eval --model DIR --data test.jsonl --out eval/ [--batch-size 8] [--max-new-tokens 32]
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

from emollm._io import NewFolders, check_output_dir, write_jsonl_atomic

__all__ = ["add_commands", "cmd_eval", "load_model"]

DTYPES = ("auto", "float32", "bfloat16", "float16")


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
    p.add_argument("--batch-size", type=int, default=8, help="records per generate call (default: 8)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="answer length limit (default: 32)")
    p.add_argument("--limit", type=int, help="answer the first N records only")
    p.add_argument("--device", help="default: cuda if available, else cpu")
    p.add_argument("--dtype", choices=DTYPES, default="auto", help="auto: bfloat16 on CUDA, float32 on CPU")
    p.add_argument("--prompts", metavar="STORE.jsonl", help="EmoPrompt store: put a random exemplar of each "
                   "record's task before its question (paper §4.4)")
    p.add_argument("--prompt-seed", type=int, default=0, help="seed of the exemplar choice (default: 0)")
    p.add_argument("--base-model", metavar="DIR_OR_NAME", help="base model of a peft adapter --model")
    p.add_argument("--resume", action="store_true", help="keep the answers already in OUT/predictions.jsonl")
    p.add_argument("--overwrite", action="store_true", help="replace an OUT/predictions.jsonl that is already there "
                   "(without --resume or --overwrite, eval refuses to touch it)")
    p.add_argument("--allow-outside-media", action="store_true",
                   help="read media whose paths lead out of the --data file's folder")
    p.add_argument("--max-unparseable", type=int, default=50, help="unparseable answers listed in report.md")
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


def _exemplars(store: str, seed: int):
    from emollm.prompting import ExemplarSelector, load_store

    return ExemplarSelector(load_store(store), "random", seed=seed).exemplar_text


MAX_NEW_TOKENS = 8192  # a limit beyond any answer; a model that never stops would otherwise run for hours


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
    if args.max_new_tokens > MAX_NEW_TOKENS:
        return f"--max-new-tokens must be at most {MAX_NEW_TOKENS}, got {args.max_new_tokens}"
    if args.max_unparseable < 0:
        return f"--max-unparseable must be at least 0, got {args.max_unparseable}"
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
    the records being run (others would be dropped from the file)."""
    if not target.is_file() or target.stat().st_size == 0 or args.overwrite:
        return None
    if args.predictions is not None:
        if target.resolve() == Path(args.predictions).resolve():
            return None  # re-scoring a file in place: its outputs are kept, only the scores change
        return f"{target} already holds predictions; pass --overwrite to replace them with the re-scored ones"
    if not args.resume:
        return (f"{target} already holds predictions; pass --resume to answer only the records it lacks, "
                f"or --overwrite to start again")
    return None


def _foreign_answers(args: argparse.Namespace, target: Path, records: list) -> str | None:
    """With ``--resume``: why the kept file does not belong to this run, or None."""
    from emollm.evaluation.predict import read_predictions

    if not args.resume or not target.is_file():
        return None
    wanted = {r.id for r in records}
    foreign = [p["id"] for p in read_predictions(target, warn=lambda message: None) if p["id"] not in wanted]
    if not foreign:
        return None
    return (f"{target} holds {len(foreign)} answer(s) to records that this run does not answer (e.g. "
            f"{foreign[0]!r}); resuming would drop them. Run with the same --data and --limit, or pass "
            f"--overwrite to start again")


def _answer(args: argparse.Namespace, out: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    import torch

    from emollm.data.records import read_jsonl
    from emollm.evaluation.predict import CutOffLineWarning, predict

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = args.dtype if args.dtype != "auto" else "bfloat16" if torch.device(device).type == "cuda" else "float32"
    # A moved JSONL fails here, not mid-run; so does one whose media lead out of its folder.
    records = list(read_jsonl(args.data, check_media=True, confine_media=not args.allow_outside_media))
    if args.limit is not None:
        records = records[: args.limit]
    if not records:
        raise ValueError(f"--data {args.data} holds no records")
    target = out / "predictions.jsonl"
    if problem := _foreign_answers(args, target, records):
        raise ValueError(problem)
    exemplars = _exemplars(args.prompts, args.prompt_seed) if args.prompts else None  # a bad store: before the model
    model, processor = load_model(args.model, device=device, dtype=dtype, base_model=args.base_model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CutOffLineWarning)  # said once, below, in one line
        predictions = predict(model, processor, records, Path(args.data).parent, batch_size=args.batch_size,
                              max_new_tokens=args.max_new_tokens, exemplars=exemplars, out=target,
                              resume=args.resume, progress=not args.no_progress)
    meta = {"model": args.model, "data": args.data, "records": len(records), "device": device, "dtype": dtype,
            "max_new_tokens": args.max_new_tokens, "prompts": args.prompts or "none"}
    return predictions, meta


def _rescore(args: argparse.Namespace, out: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from emollm.evaluation.metrics import rescore
    from emollm.evaluation.predict import read_predictions

    predictions = [rescore(p, i) for i, p in enumerate(read_predictions(args.predictions, warn=_note))]
    if not predictions:
        raise ValueError(f"--predictions {args.predictions} holds no predictions")
    NewFolders(out).make()
    write_jsonl_atomic(out / "predictions.jsonl", predictions)
    return predictions, {"predictions": args.predictions, "records": len(predictions)}


def _note(message: str) -> None:
    print(f"emollm eval: note: {message}", file=sys.stderr)


def cmd_eval(args: argparse.Namespace) -> int:
    from emollm.data.records import RecordError
    from emollm.evaluation.metrics import compute_metrics
    from emollm.evaluation.report import format_report, write_report

    problem = _check(args)
    if problem:
        print(f"emollm eval: {problem}", file=sys.stderr)
        return 2
    out = check_output_dir(args.out)
    problem = _kept_predictions(args, out / "predictions.jsonl")
    if problem:
        print(f"emollm eval: {problem}", file=sys.stderr)
        return 2
    # The folders made for --out are removed again when the run fails before writing anything.
    with NewFolders(out) as folders:
        if args.resume and (out / "predictions.jsonl").is_file():
            from emollm.evaluation.predict import read_predictions

            try:
                read_predictions(out / "predictions.jsonl", warn=_note)  # says now what --resume will drop
            except RecordError as e:
                print(f"emollm eval: {e}", file=sys.stderr)
                return 2
        try:
            predictions, meta = (_answer if args.model is not None else _rescore)(args, out)
            metrics = compute_metrics(predictions)
        except (RecordError, ValueError, TypeError) as e:  # bad input, in one line; anything else keeps its traceback
            folders.remove()
            print(f"emollm eval: {e}", file=sys.stderr)
            return 2
        paths = write_report(metrics, out, meta=meta, max_unparseable=args.max_unparseable)
    print(format_report(metrics, meta=meta, max_unparseable=0).split("## Per task", 1)[0].rstrip())
    print("wrote " + ", ".join(str(p) for p in [out / "predictions.jsonl", *paths.values()]))
    return 0

"""``emollm prompts generate|embed|show``: build and inspect an EmoPrompt store (see docs/prompting.md).

    emollm prompts generate --data train.jsonl --out prompts.jsonl --base-url https://api.openai.com/v1 \\
        --model gpt-4o [--api-key-env OPENAI_API_KEY] [--per-task 200] [--rate 2] [--max-retries 5] [--timeout 120]
    emollm prompts embed prompts.jsonl --vision CLIP_DIR [--overwrite]
    emollm prompts show prompts.jsonl
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections import Counter
from pathlib import Path


def _int_in(low: int, high: int):
    """An argparse type: an integer in ``[low, high]``."""
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer from {low} to {high}, got {value}")
        return value
    return parse


def _number_in(low: float, high: float):
    """An argparse type: a finite number in ``[low, high]`` (so that no wait is unbounded)."""
    def parse(text: str) -> float:
        value = float(text)
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be a number from {low:g} to {high:g}, got {text}")
        return value
    return parse


_positive_int = _int_in(1, 2**31 - 1)


def _fail(command: str, message: str, code: int = 2) -> int:
    print(f"emollm prompts {command}: {message}", file=sys.stderr)
    return code


def cmd_generate(args: argparse.Namespace) -> int:
    from emollm._io import check_output_file
    from emollm.data.records import RecordError, read_jsonl
    from emollm.prompting.generate import ChatClient, generate_store
    from emollm.prompting.store import StoreError

    try:
        records = list(read_jsonl(args.data, confine_media=not args.allow_outside_media))
    except (OSError, RecordError) as e:
        return _fail("generate", str(e))
    out = check_output_file(args.out)
    if out.exists() and Path(args.data).resolve() == out.resolve():
        return _fail("generate", f"--out {args.out} is the --data file; the store needs a file of its own")
    api_key = os.environ.get(args.api_key_env)
    if not api_key:
        print(f"emollm prompts generate: ${args.api_key_env} is not set; sending no Authorization header",
              file=sys.stderr)
    try:
        client = ChatClient(args.base_url, args.model, api_key=api_key, timeout=args.timeout,
                            max_retries=args.max_retries, rate=args.rate, backoff=args.backoff,
                            max_unreachable=args.max_unreachable)
    except ValueError as e:
        return _fail("generate", str(e))
    try:
        report = generate_store(records, out, client, data_dir=Path(args.data).resolve().parent,
                                per_task=args.per_task, seed=args.seed, num_frames=args.frames,
                                progress=not args.no_progress)
    except StoreError as e:  # an existing --out that is not a store: left as it was
        return _fail("generate", f"--out {args.out} is not an exemplar store, so it was left as it is: {e}")
    except OSError as e:  # an unreadable store, a full disk
        return _fail("generate", str(e))
    except KeyboardInterrupt:
        print(f"\nemollm prompts generate: interrupted; {args.out} keeps what was done, rerun to resume",
              file=sys.stderr)
        return 130
    if report.dropped_partial_line:
        print(f"{args.out}: dropped an incomplete last line left by an interrupted run; its record is redone")
    print(f"{args.out}: {report.written} exemplars written, {report.skipped} already there, "
          f"{len(report.failed)} failed")
    for record_id, reason in report.failed:
        print(f"  failed {record_id}: {reason}", file=sys.stderr)
    if report.failed and not report.stopped:
        print("rerun the same command to retry the failed records", file=sys.stderr)
    if report.stopped:
        return _fail("generate", f"stopped: {report.stopped}")
    return 1 if report.failed else 0


def cmd_embed(args: argparse.Namespace) -> int:
    from emollm._io import check_output_file
    from emollm.data.records import RecordError
    from emollm.prompting.embed import VisionEmbedder, embed_exemplars
    from emollm.prompting.store import load_store, save_store

    try:
        exemplars = load_store(args.store, confine_media=not args.allow_outside_media)
    except (OSError, RecordError) as e:
        return _fail("embed", str(e))
    check_output_file(args.store, what="STORE")  # rewritten in place: it must be replaceable
    try:
        embedder = VisionEmbedder.from_pretrained(args.vision, layer=args.layer, num_frames=args.frames)
    except (OSError, ValueError) as e:
        return _fail("embed", f"cannot load a CLIP vision tower from {args.vision}: {e}")
    done, skipped = embed_exemplars(exemplars, embedder, overwrite=args.overwrite)
    try:
        save_store(exemplars, args.store)
    except OSError as e:  # the old store is kept whole
        return _fail("embed", f"{args.store} was not changed: {e}")
    print(f"{args.store}: {done} exemplars embedded, {len(skipped)} without a picture or readable media")
    for exemplar_id in skipped:
        print(f"  not embedded: {exemplar_id}", file=sys.stderr)
    return 1 if skipped else 0


def cmd_show(args: argparse.Namespace) -> int:
    from emollm.data.records import RecordError
    from emollm.prompting.store import iter_store

    try:
        exemplars = list(iter_store(args.store))
    except (OSError, RecordError) as e:
        return _fail("show", str(e))
    per_task = Counter(e.task for e in exemplars)
    embedded = Counter(e.task for e in exemplars if e.embedding is not None)
    sources: dict[str, Counter] = {}
    for e in exemplars:
        sources.setdefault(e.task, Counter())[e.source] += 1
    print(f"{args.store}: {len(exemplars)} exemplars")
    print(f"{'task':<10}{'exemplars':>10}{'embedded':>10}  sources")
    for task in sorted(per_task):
        by_source = ", ".join(f"{s} {n}" for s, n in sorted(sources[task].items()))
        print(f"{task:<10}{per_task[task]:>10}{embedded[task]:>10}  {by_source}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Adds ``emollm prompts generate|embed|show`` to the ``emollm`` parser."""
    prompts = sub.add_parser("prompts", help="EmoPrompt: generate and inspect chain-of-thought exemplars")
    commands = prompts.add_subparsers(dest="prompts_command", required=True)

    gen = commands.add_parser(
        "generate", help="write rationales for EmoBench records with an OpenAI-compatible chat endpoint",
        description="Asks POST {base-url}/chat/completions for the reasoning from each record's media to its "
                    "ground-truth label and appends it to the store. Rerunning resumes: records already in the "
                    "store are skipped, failed ones are tried again.")
    gen.add_argument("--data", required=True, help="EmoBench records (JSONL)")
    gen.add_argument("--out", required=True, help="the exemplar store to write or resume (JSONL)")
    gen.add_argument("--base-url", required=True, help="e.g. https://api.openai.com/v1 or http://localhost:8000/v1")
    gen.add_argument("--model", required=True, help="the model name the endpoint expects")
    gen.add_argument("--api-key-env", default="OPENAI_API_KEY",
                     help="environment variable holding the API key (default: OPENAI_API_KEY)")
    gen.add_argument("--per-task", type=_positive_int,
                     help="at most N records per task, drawn with --seed (default: all)")
    gen.add_argument("--seed", type=int, default=0, help="seed of the --per-task draw (default: 0)")
    gen.add_argument("--rate", type=_number_in(0.001, 1000.0),
                     help="at most this many requests per second, 0.001 to 1000 (default: no limit)")
    gen.add_argument("--max-retries", type=_int_in(0, 20), default=5,
                     help="retries of a request on 429/5xx/timeouts, 0 to 20 (default: 5)")
    gen.add_argument("--timeout", type=_number_in(0.01, 3600.0), default=120.0,
                     help="seconds for a whole request, the complete reply included, up to 3600 (default: 120)")
    gen.add_argument("--backoff", type=_number_in(0.001, 60.0), default=1.0,
                     help="first retry's wait in seconds, doubled per retry up to 60 s; a Retry-After header "
                          "replaces it, also capped at 60 s, and one over 600 s stops the run (default: 1)")
    gen.add_argument("--max-unreachable", type=_int_in(1, 100), default=6,
                     help="stop the run after this many requests in a row got no reply at all: refused, "
                          "unknown host, timed out (default: 6)")
    gen.add_argument("--frames", type=_int_in(1, 64), default=4, help="frames sent per video, up to 64 (default: 4)")
    gen.add_argument("--allow-outside-media", action="store_true",
                     help="read (and send) media whose paths lead out of the --data file's folder; without it "
                          "such a record stops the run before anything is sent")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.set_defaults(func=cmd_generate, extra="data")

    embed = commands.add_parser(
        "embed", help="store each exemplar's mean CLIP patch token, for nearest selection",
        description="Runs a CLIP vision tower on each exemplar's images or video frames and stores the mean "
                    "patch token at --layer as its embedding (emollm.prompting.embed.VisionEmbedder).")
    embed.add_argument("store", help="the exemplar store (JSONL), rewritten in place")
    embed.add_argument("--vision", required=True, metavar="CLIP_DIR", help="a CLIP checkpoint folder (or hub name)")
    embed.add_argument("--layer", type=int, default=-2, help="hidden state averaged (default: -2)")
    embed.add_argument("--frames", type=_int_in(1, 64), default=4, help="frames per video, up to 64 (default: 4)")
    embed.add_argument("--allow-outside-media", action="store_true",
                       help="read media whose paths lead out of the store's folder")
    embed.add_argument("--overwrite", action="store_true", help="recompute embeddings that are already there")
    embed.set_defaults(func=cmd_embed, extra="model,data")

    show = commands.add_parser("show", help="exemplars per task in a store")
    show.add_argument("store", help="the exemplar store (JSONL)")
    show.set_defaults(func=cmd_show, extra=None)

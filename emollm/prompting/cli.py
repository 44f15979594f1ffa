"""``emollm prompts generate|embed|show``: build and inspect an EmoPrompt store (see docs/prompting.md).

    emollm prompts generate --data train.jsonl --out prompts.jsonl --base-url https://api.openai.com/v1 \\
        --model gpt-4o [--api-key-env OPENAI_API_KEY] [--per-task 200] [--rate 2] [--max-retries 5] [--timeout 120]
    emollm prompts embed prompts.jsonl --vision CLIP_DIR [--overwrite]
    emollm prompts show prompts.jsonl
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def cmd_generate(args: argparse.Namespace) -> int:
    from emollm.data.records import RecordError, read_jsonl
    from emollm.prompting.generate import ChatClient, generate_store

    try:
        records = list(read_jsonl(args.data))
    except (OSError, RecordError) as e:
        print(f"emollm prompts generate: {e}", file=sys.stderr)
        return 2
    api_key = os.environ.get(args.api_key_env)
    if not api_key:
        print(f"emollm prompts generate: ${args.api_key_env} is not set; sending no Authorization header",
              file=sys.stderr)
    try:
        client = ChatClient(args.base_url, args.model, api_key=api_key, timeout=args.timeout,
                            max_retries=args.max_retries, rate=args.rate, backoff=args.backoff)
    except ValueError as e:
        print(f"emollm prompts generate: {e}", file=sys.stderr)
        return 2
    try:
        report = generate_store(records, args.out, client, data_dir=Path(args.data).resolve().parent,
                                per_task=args.per_task, seed=args.seed, num_frames=args.frames,
                                progress=not args.no_progress)
    except (OSError, RecordError) as e:  # an unreadable or malformed existing store
        print(f"emollm prompts generate: {e}", file=sys.stderr)
        return 2
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
    if report.failed:
        print("rerun the same command to retry the failed records", file=sys.stderr)
    if report.stopped:
        print(f"emollm prompts generate: stopped: {report.stopped}", file=sys.stderr)
        return 2
    return 1 if report.failed else 0


def cmd_embed(args: argparse.Namespace) -> int:
    from emollm.data.records import RecordError
    from emollm.prompting.embed import VisionEmbedder, embed_exemplars
    from emollm.prompting.store import load_store, save_store

    try:
        exemplars = load_store(args.store)
    except (OSError, RecordError) as e:
        print(f"emollm prompts embed: {e}", file=sys.stderr)
        return 2
    try:
        embedder = VisionEmbedder.from_pretrained(args.vision, layer=args.layer, num_frames=args.frames)
    except (OSError, ValueError) as e:
        print(f"emollm prompts embed: cannot load a CLIP vision tower from {args.vision}: {e}", file=sys.stderr)
        return 2
    done, skipped = embed_exemplars(exemplars, embedder, overwrite=args.overwrite)
    save_store(exemplars, args.store)
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
        print(f"emollm prompts show: {e}", file=sys.stderr)
        return 2
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
    gen.add_argument("--rate", type=_positive_float, help="at most this many requests per second (default: no limit)")
    gen.add_argument("--max-retries", type=_non_negative_int, default=5,
                     help="retries of a request on 429/5xx/timeouts (default: 5)")
    gen.add_argument("--timeout", type=_positive_float, default=120.0, help="seconds per request (default: 120)")
    gen.add_argument("--backoff", type=_positive_float, default=1.0,
                     help="first retry's wait in seconds, doubled per retry, unless Retry-After says (default: 1)")
    gen.add_argument("--frames", type=_positive_int, default=4, help="frames sent per video (default: 4)")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.set_defaults(func=cmd_generate, extra="data")

    embed = commands.add_parser(
        "embed", help="store each exemplar's mean CLIP patch token, for nearest selection",
        description="Runs a CLIP vision tower on each exemplar's images or video frames and stores the mean "
                    "patch token at --layer as its embedding (emollm.prompting.embed.VisionEmbedder).")
    embed.add_argument("store", help="the exemplar store (JSONL), rewritten in place")
    embed.add_argument("--vision", required=True, metavar="CLIP_DIR", help="a CLIP checkpoint folder (or hub name)")
    embed.add_argument("--layer", type=int, default=-2, help="hidden state averaged (default: -2)")
    embed.add_argument("--frames", type=_positive_int, default=4, help="frames per video (default: 4)")
    embed.add_argument("--overwrite", action="store_true", help="recompute embeddings that are already there")
    embed.set_defaults(func=cmd_embed, extra="model,data")

    show = commands.add_parser("show", help="exemplars per task in a store")
    show.add_argument("store", help="the exemplar store (JSONL)")
    show.set_defaults(func=cmd_show, extra=None)

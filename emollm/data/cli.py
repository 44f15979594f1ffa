"""``emollm data ...``: build EmoBench files from the sources, summarize them, write a synthetic set.

    emollm data build --source NAME --root DIR --split SPLIT --out FILE.jsonl [--seed N] [--skip-bad]
                      [--limit N] [--task TASK ...] [--absolute-paths] [--no-progress]
    emollm data stats FILE [FILE ...]
    emollm data synth --out DIR [--train N] [--test N] [--seed S]

Exit codes: 0 done; 1 bad records (``build`` without ``--skip-bad``, a malformed line in
``stats``); 2 bad arguments or a dataset folder that does not have the source's layout.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from emollm.data.records import TASKS, RecordError, numbered_records
from emollm.data.sources import SOURCES


def _error(command: str, message: str, code: int) -> int:
    print(f"emollm data {command}: {message}", file=sys.stderr)
    return code


def cmd_build(args: argparse.Namespace) -> int:
    from emollm.data.build import BuildError, build

    try:
        summary = build(args.source, args.root, args.split, args.out, seed=args.seed, skip_bad=args.skip_bad,
                        limit=args.limit, tasks=args.task, absolute=args.absolute_paths,
                        progress=False if args.no_progress else None)
    except BuildError as e:
        return _error("build", str(e), 1)
    except (ValueError, OSError, ImportError) as e:  # bad arguments, a layout that is not the source's, a full disk
        return _error("build", str(e), 2)
    print(summary.describe())
    return 0


def table(headers: tuple[str, ...], counts: Counter, total: int) -> str:
    """A text table: one column per part of the keys of ``counts`` (tuples), then the count and its
    share of ``total``; rows largest first, then by key."""
    rows = [(*key, str(n), f"{100 * n / total:.1f}%")
            for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    header = (*headers, "records", "share")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    numeric = range(len(headers), len(header))  # right-aligned columns
    return "\n".join("  ".join(f"{cell:>{w}}" if i in numeric else f"{cell:<{w}}"
                               for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
                     for row in [header, *rows])


def cmd_stats(args: argparse.Namespace) -> int:
    by_task, by_source, by_label = Counter(), Counter(), Counter()
    seen: dict[str, str] = {}  # record id -> where it was first read, across all the files
    for file in args.files:
        if not Path(file).is_file():
            what = "no such file" if not Path(file).exists() else "a folder" if Path(file).is_dir() else \
                "not a regular file"
            return _error("stats", f"{file}: {what}", 2)
        try:
            for lineno, r in numbered_records(file):
                if r.id in seen:  # counted once: the files overlap, and the counts would not be records
                    raise RecordError(f"id {r.id!r} was already read at {seen[r.id]}", file, lineno)
                seen[r.id] = f"{file}:{lineno}"
                by_task[(r.task,)] += 1
                by_source[(r.source,)] += 1
                by_label[(r.task, r.source, r.answer)] += 1
        except RecordError as e:
            return _error("stats", str(e), 1)
    total = sum(by_task.values())
    print(f"{total} record(s) in {len(args.files)} file(s)")
    if total:
        for headers, counts in ((("task",), by_task), (("source",), by_source),
                                (("task", "source", "label"), by_label)):
            print()
            print(table(headers, counts, total))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from emollm.data.synth import write_synthetic

    # Only the sizes given on the command line are passed, so write_synthetic's defaults apply.
    sizes = {k: v for k, v in (("n_train", args.train), ("n_test", args.test), ("seed", args.seed)) if v is not None}
    try:
        written = write_synthetic(args.out, **sizes)
    except (ValueError, OSError) as e:  # an --out that cannot be written, a full disk
        return _error("synth", str(e), 2)
    print("wrote " + " and ".join(str(path) for path in written.values()))
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


MAX_SYNTH = 100_000  # records per split: far more than a smoke test needs, still minutes and < 1 GB


def _synth_size(text: str) -> int:
    value = _positive(text)
    if value > MAX_SYNTH:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SYNTH}, got {value}")
    return value


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Adds ``emollm data build|stats|synth`` to the ``emollm`` parser."""
    data = sub.add_parser("data", help="EmoBench data: build records from a source, stats, synthetic set")
    commands = data.add_subparsers(dest="data_command", required=True)

    build = commands.add_parser("build", help="convert one split of a source's own layout to EmoBench JSONL")
    build.add_argument("--source", required=True, choices=list(SOURCES), help="the dataset (paper Table 1)")
    build.add_argument("--root", required=True, help="the dataset's folder, in its published layout (docs/data.md)")
    build.add_argument("--split", required=True, help="the source's split name, e.g. train, val, dev, test")
    build.add_argument("--out", required=True, help="the JSONL file to write")
    build.add_argument("--seed", type=int, default=0, help="seed of the question templates (default: 0)")
    build.add_argument("--skip-bad", action="store_true", help="leave out bad items (counted) instead of failing")
    build.add_argument("--limit", type=_positive, help="stop after N records")
    build.add_argument("--task", action="append", choices=TASKS, help="only this task (repeatable; default: all)")
    build.add_argument("--absolute-paths", action="store_true",
                       help="write absolute media paths (default: relative to the output file's folder)")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(func=cmd_build, extra="data")

    stats = commands.add_parser("stats", help="records per task, source and label")
    stats.add_argument("files", nargs="+", metavar="FILE", help="EmoBench JSONL files")
    stats.set_defaults(func=cmd_stats, extra=None)

    synth = commands.add_parser("synth", help="write a small synthetic EmoBench (train.jsonl, test.jsonl)")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--train", type=_synth_size, help=f"training records, up to {MAX_SYNTH} (default: 600)")
    synth.add_argument("--test", type=_synth_size, help=f"test records, up to {MAX_SYNTH} (default: 120)")
    synth.add_argument("--seed", type=int, help="random seed (default: write_synthetic's)")
    synth.set_defaults(func=cmd_synth, extra="data")

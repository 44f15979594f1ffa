"""``emollm ask``: one question about one image, video and/or audio clip, answered as it is generated.

    emollm ask --model DIR_OR_NAME [--image F] [--video F] [--audio F] "How does she feel?"
               [--task emo-c [--labels a,b,c]] [--prompts STORE.jsonl] [--json]
               [--max-new-tokens 64] [--temperature 0] [--device cpu|cuda] [--dtype auto]

The model loads once; the answer is printed token by token (greedy decoding: the same question
gets the same answer). ``--task`` also prints the label the answer names (``emollm eval``'s
parser); without a question it asks that task's EmoBench question. ``--prompts`` puts an EmoPrompt
chain-of-thought exemplar of the task first. ``--json`` prints one JSON object at the end:
answer, label, timings (seconds) and what ran. A media file that is missing or does not decode
is refused in one line with exit code 2, before the model loads.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from types import SimpleNamespace

__all__ = ["add_commands", "cmd_ask"]

DTYPES = ("auto", "float32", "bfloat16", "float16")
DEFAULT_NEW_TOKENS, COT_NEW_TOKENS = 64, 200  # reasoning before the answer needs room
MAX_NEW_TOKENS = 8192  # as `emollm eval`: a model that never stops would otherwise run for hours
MIN_TEMPERATURE = 1e-3  # logits divided by a smaller one overflow float32 (sampling fails on inf/NaN)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Adds ``emollm ask`` to the ``emollm`` parser."""
    p = sub.add_parser("ask", help="ask a model one question about an image, a video or an audio clip",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("question", nargs="?", help="the question (optional with --task: its EmoBench question)")
    p.add_argument("--model", required=True, metavar="DIR_OR_NAME",
                   help="a folder from `emollm train`, a peft adapter folder, or a named set-up (emollm-tiny)")
    p.add_argument("--image", metavar="FILE")
    p.add_argument("--video", metavar="FILE", help="sampled at 1 frame per second, at most --max-frames")
    p.add_argument("--audio", metavar="FILE", help="wav, or any format PyAV decodes (the audio of an mp4)")
    p.add_argument("--task", choices=("emo-c", "emo-o", "intent", "humor", "hate", "sarcasm"),
                   help="also print the label the answer names")
    p.add_argument("--labels", help="comma-separated label set for --task (default: the task's usual set)")
    p.add_argument("--prompts", metavar="STORE.jsonl", help="EmoPrompt store: put an exemplar of --task first")
    p.add_argument("--prompt-seed", type=int, default=0, help="seed of the exemplar choice (default: 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object (answer, label, timings) at the end")
    p.add_argument("--max-new-tokens", type=int, help=f"answer length limit (default: {DEFAULT_NEW_TOKENS}, "
                   f"{COT_NEW_TOKENS} with --prompts)")
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default); above 0: sampling")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling with --temperature (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--max-frames", type=int, default=64, help="video frame cap (default: 64)")
    p.add_argument("--device", help="default: cuda if available, else cpu")
    p.add_argument("--dtype", choices=DTYPES, default="auto", help="auto: bfloat16 on CUDA, float32 on CPU")
    p.add_argument("--base-model", metavar="DIR_OR_NAME", help="base model of a peft adapter --model")
    p.set_defaults(func=cmd_ask, extra="model,data")


def _check(args: argparse.Namespace) -> str | None:
    """The first thing wrong with the arguments, or None."""
    if not args.question and not args.task:
        return "give a question (or --task to ask that task's EmoBench question)"
    if args.labels is not None and not args.task:
        return "--labels goes with --task"
    if args.prompts is not None and not args.task:
        return "--prompts needs --task: exemplars are chosen per task"
    if args.max_new_tokens is not None and not 1 <= args.max_new_tokens <= MAX_NEW_TOKENS:
        return f"--max-new-tokens must be from 1 to {MAX_NEW_TOKENS}, got {args.max_new_tokens}"
    if not (math.isfinite(args.temperature) and (args.temperature == 0 or args.temperature >= MIN_TEMPERATURE)):
        return (f"--temperature must be 0 (greedy) or a finite number >= {MIN_TEMPERATURE} (smaller ones overflow "
                f"the logits), got {args.temperature}")
    if not 0 < args.top_p <= 1:  # NaN too
        return f"--top-p must lie in (0, 1], got {args.top_p}"
    if not 0 <= args.seed < 2**63:
        return f"--seed must lie in [0, 2**63), got {args.seed}"
    if args.max_frames < 1:
        return f"--max-frames must be at least 1, got {args.max_frames}"
    if args.device and args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return "--device cuda: no CUDA device here (see `emollm env`)"
    return None


def _labels(args: argparse.Namespace) -> list[str] | None:
    """The --labels as a list, checked as the answer's parser needs them (before the model loads)."""
    if args.labels is None:
        return None
    from emollm.evaluation.parse import check_label_set

    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    if not labels:
        raise ValueError("--labels holds no label")
    try:
        check_label_set(args.task, labels)
    except ValueError as e:
        raise ValueError(f"--labels {args.labels!r}: {str(e).removeprefix('label_set ')}") from None
    return labels


def _question(args: argparse.Namespace, kinds: list[str], labels: list[str] | None) -> str:
    if args.question:
        return args.question
    from emollm.data.templates import render_question
    from emollm.inference.tasks import default_labels

    return render_question(args.task, "emollm-ask", media=kinds, label_set=labels or default_labels(args.task))


def _exemplar(args: argparse.Namespace) -> str | None:
    if args.prompts is None:
        return None
    from emollm.prompting import ExemplarSelector, load_store

    selector = ExemplarSelector(load_store(args.prompts), "random", seed=args.prompt_seed)
    text = selector.exemplar_text(SimpleNamespace(task=args.task, id="emollm-ask"))
    if text is None:
        raise ValueError(f"--prompts {args.prompts}: no exemplar of task {args.task}")
    return text


def cmd_ask(args: argparse.Namespace) -> int:
    from emollm.inference.media import MediaError, load_media_files
    from emollm.inference.session import Session

    problem = _check(args)
    if problem:
        print(f"emollm ask: {problem}", file=sys.stderr)
        return 2
    try:
        start = time.perf_counter()
        media = load_media_files(args.image, args.video, args.audio, max_frames=args.max_frames)
        media_s = time.perf_counter() - start
        labels = _labels(args)
        question = _question(args, media.kinds, labels)
        exemplar = _exemplar(args)  # a bad store fails here, before the model loads
        session = Session.load(args.model, device=args.device, dtype=args.dtype, base_model=args.base_model)
    except (MediaError, ValueError, OSError) as e:  # bad input, said in one line
        print(f"emollm ask: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    max_new = args.max_new_tokens or (COT_NEW_TOKENS if exemplar else DEFAULT_NEW_TOKENS)
    reply = session.ask(question, media, exemplar=exemplar, task=args.task, labels=labels, max_new_tokens=max_new,
                        temperature=args.temperature, top_p=args.top_p, seed=args.seed)
    if args.json:
        reply.wait()
        print(json.dumps({
            "question": question, "answer": reply.answer, "task": args.task, "label": reply.label,
            "labels": list(reply.labels) if reply.labels is not None else None,
            "timings": {"load": session.load_s, "media": media_s, **reply.timings},
            "model": args.model, "device": str(session.device), "dtype": str(session.dtype).removeprefix("torch."),
            "media": media.paths, "exemplar": exemplar is not None,
        }, ensure_ascii=False))
        return 0
    for piece in reply:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    if args.task:
        print(f"label: {reply.label if reply.label is not None else '(none: the answer names no label)'}")
    t = reply.timings
    print(f"[{t['new_tokens']} tokens; first after {t['first_token']:.2f} s, {t['tokens_per_s']:.1f} tokens/s; "
          f"model loaded in {session.load_s:.1f} s on {session.device}, {session.dtype}]".replace("torch.", ""),
          file=sys.stderr)
    return 0

"""``emollm serve``: a web page to try a model on one's own image, video or audio clip.

    emollm serve --model DIR_OR_NAME [--host 127.0.0.1] [--port 7860] [--max-upload-mb 50]
                 [--max-new-tokens 64] [--view-tau T] [--device cpu|cuda] [--dtype auto]

The model loads once; the page (Gradio, ``pip install 'emollm[serve]'``) streams each answer and
shows what the MVP saw. It binds 127.0.0.1 unless ``--host`` says otherwise. ``--model
emollm-tiny`` starts offline in seconds (random weights: the answers are noise).
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_commands", "cmd_serve"]

DTYPES = ("auto", "float32", "bfloat16", "float16")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Adds ``emollm serve`` to the ``emollm`` parser."""
    p = sub.add_parser("serve", help="a web page (Gradio) to ask a model about an uploaded file",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, metavar="DIR_OR_NAME",
                   help="a folder from `emollm train`, a peft adapter folder, or a named set-up (emollm-tiny)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=7860, help="default: 7860")
    p.add_argument("--max-upload-mb", type=float, default=50, help="largest accepted upload (default: 50 MB)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="answer length limit (default: 64)")
    p.add_argument("--view-tau", type=float, help="τ of the drawn graphs (default: the MVP's own)")
    p.add_argument("--device", help="default: cuda if available, else cpu")
    p.add_argument("--dtype", choices=DTYPES, default="auto", help="auto: bfloat16 on CUDA, float32 on CPU")
    p.add_argument("--base-model", metavar="DIR_OR_NAME", help="base model of a peft adapter --model")
    p.set_defaults(func=cmd_serve, extra="serve")


def _check(args: argparse.Namespace) -> str | None:
    if not 0 < args.port < 65536:
        return f"--port must be in 1..65535, got {args.port}"
    if not args.max_upload_mb > 0:
        return f"--max-upload-mb must be > 0, got {args.max_upload_mb}"
    if args.max_new_tokens < 1:
        return f"--max-new-tokens must be at least 1, got {args.max_new_tokens}"
    if args.view_tau is not None and not 0 <= args.view_tau <= 1:
        return f"--view-tau must lie in [0, 1], got {args.view_tau}"
    return None


def cmd_serve(args: argparse.Namespace) -> int:
    import gradio  # noqa: F401  (first: a missing extra is named before the model loads)

    from emollm.inference.session import Session
    from emollm.serve.app import build_app

    problem = _check(args)
    if problem:
        print(f"emollm serve: {problem}", file=sys.stderr)
        return 2
    try:
        session = Session.load(args.model, device=args.device, dtype=args.dtype, base_model=args.base_model)
    except (ValueError, OSError) as e:
        print(f"emollm serve: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    limit = int(args.max_upload_mb * 1024 * 1024)  # bytes: Gradio's size strings take whole numbers only
    app = build_app(session, max_new_tokens=args.max_new_tokens, view_tau=args.view_tau,
                    max_upload=f"{args.max_upload_mb:g} MB")
    print(f"emollm serve: model {args.model} loaded in {session.load_s:.1f} s on {session.device}; "
          f"http://{args.host}:{args.port}", flush=True)
    app.launch(server_name=args.host, server_port=args.port, max_file_size=limit, share=False, ssr_mode=False,
               inbrowser=False, show_error=True, quiet=True)
    return 0

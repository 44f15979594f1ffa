"""Command line: ``emollm env`` (what is installed, which backends run) and ``emollm demo``.

    python -m emollm env
    python -m emollm demo [--out demo-out] [--images astronaut,coffee,photo.jpg] [--vision CLIP_DIR]
                          [--tau 0.1] [--repeat 5] [--small] [--device cpu|cuda]

The demo clusters real photos with the MVP projector's three stages and draws them, one PNG per
image (:mod:`emollm.demo`), then runs the op pipeline (docs/design.md#architecture-and-data-flow)
on the same tokens on every backend that runs on the device, prints a timing table and checks
that every backend clusters exactly as ``reference``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import emollm
from emollm import _extension, ops
from emollm._io import OutputPathError, check_output_dir, write_text_atomic
from emollm._system import cpu_name
from emollm.ops import _backend

STAGES = ((64, 5), (32, 3), (16, 3))  # (num_clusters, k) per stage, the paper's settings
TAU = 0.1
CLIP_WIDTH = 1024  # CLIP ViT-L/14's token width: the timing table runs at this size
# `emollm data|prompts|train|eval ...`: modules with an ``add_commands(subparsers)`` function.
COMMAND_MODULES = ("emollm.data.cli", "emollm.prompting.cli", "emollm.training.cli", "emollm.evaluation.cli",
                   "emollm.inference.cli", "emollm.serve.cli")


# The optional packages `emollm env` reports, each with the distributions that provide it.
OPTIONAL_PACKAGES = {"transformers": ("transformers",), "peft": ("peft",), "accelerate": ("accelerate",),
                     "triton": ("triton",), "faiss": ("faiss-cpu", "faiss-gpu"), "nvtx": ("nvtx",)}


def installed_version(*distributions: str) -> str | None:
    """The version of the first of ``distributions`` that is installed, else None."""
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def cmd_env(args: argparse.Namespace) -> int:
    print(f"emollm       {emollm.__version__} ({Path(emollm.__file__).parent})")
    print(f"torch        {torch.__version__}")
    for package, distributions in OPTIONAL_PACKAGES.items():
        print(f"{package:<12} {installed_version(*distributions) or 'not installed'}")
    print(f"python       {platform.python_version()} ({sys.executable})")
    print(f"CPU          {cpu_name()}: {os.cpu_count()} logical cores, torch uses {torch.get_num_threads()} threads")
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        print(f"CUDA         available (CUDA {torch.version.cuda}): {names}")
    else:
        built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        print(f"CUDA         not available (this torch is {built})")
    if _extension.C is not None:
        print(f"emollm._C compiled extension: loaded ({_extension.C.__file__})")
    else:
        print(f"emollm._C compiled extension: NOT loaded ({_extension.import_error}); ops use the other backends")
    print("backends:")
    for name, (ok, detail) in ops.backend_status().items():
        print(f"  {name:<10} {'available' if ok else 'missing':<10} {detail}")
    return 0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_pipeline(x: torch.Tensor, tau: float) -> tuple[list[float], list[torch.Tensor]]:
    """The three stages as :class:`~emollm.projector.MVPProjector` runs them, on the current backend:
    per stage the fused ``dpc_cluster_merge``, then the τ-graph and one propagation over its merged
    tokens. Returns per-stage ms and the cluster assignments."""
    times, assigns = [], []
    z = x
    for num_clusters, k in STAGES:
        start = time.perf_counter()
        _, assign, z = ops.dpc_cluster_merge(z, num_clusters, k)
        ops.gcn_propagate(ops.gcn_adjacency(z, tau), z)
        _sync(x.device)
        times.append((time.perf_counter() - start) * 1e3)
        assigns.append(assign)
    return times, assigns


def time_backend(name: str, x: torch.Tensor, repeat: int, tau: float = TAU) -> dict:
    """Median per-stage and total ms over ``repeat`` runs after one warm-up run."""
    with ops.use_backend(name):
        _, assigns = run_pipeline(x, tau)  # warm-up: thread pools, allocator, lazy inits
        runs = [run_pipeline(x, tau)[0] for _ in range(repeat)]
    return {
        "total": statistics.median(sum(r) for r in runs),
        "stages": [statistics.median(r[s] for r in runs) for s in range(len(STAGES))],
        "assigns": assigns,
    }


def _agreement(assigns: list[torch.Tensor], oracle: list[torch.Tensor]) -> str:
    for stage, (a, b) in enumerate(zip(assigns, oracle, strict=True), 1):
        if not torch.equal(a.cpu(), b.cpu()):
            # Later stages run on this stage's output, so only the first difference is telling.
            return f"DIFFER: stage {stage}, {(a.cpu() != b.cpu()).sum().item()} of {a.numel()} tokens"
    return "agree"


# The ops of one MVP stage (MVPProjector.cluster, then the relation perspective's graph).
PIPELINE_OPS = ("dpc_cluster_merge", "gcn_adjacency", "gcn_propagate")


def _runnable(device: torch.device) -> list[str]:
    return [name for name, b in ops.backends().items() if b.runs_on(device) and b.available()]


def _demo_backends(device: torch.device) -> list[str]:
    """The backends timed on ``device``: those that implement every op of a stage themselves (a
    backend lacking one would have its row run that op on another backend) and run compiled code
    (Triton's CPU interpreter, under ``TRITON_INTERPRET=1``, takes seconds where a GPU takes
    microseconds: its row would mean nothing)."""
    return [name for name in _runnable(device) if not ops.backends()[name].interpreted
            and all(_backend.implements(name, op) for op in PIPELINE_OPS)]


def _untimed_notes(device: torch.device) -> list[str]:
    """One line per runnable backend that is not timed, saying what it does implement."""
    notes = []
    for name in _runnable(device):
        if name in _demo_backends(device):
            continue
        if ops.backends()[name].interpreted:
            notes.append(f"note: {name} not timed: it runs in an interpreter here (TRITON_INTERPRET=1), "
                         "so its timings would mean nothing")
            continue
        own = [op for op in _backend._contracts if _backend.implements(name, op)]
        stage_ops = [op for op in PIPELINE_OPS if op in own]
        lacks = ", ".join(op for op in PIPELINE_OPS if op not in own)
        has = f"implements {', '.join(own)}" if own else "implements no op"
        part = f" ({', '.join(stage_ops)} of a stage)" if stage_ops else ", none of a stage's ops"
        notes.append(f"note: {name} not timed: it {has}{part}; lacks {lacks}")
    return notes


def cmd_demo(args: argparse.Namespace) -> int:
    from emollm import demo
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    specs = [s.strip() for s in args.images.split(",") if s.strip()] if args.images else list(demo.SAMPLES)
    if args.small:
        specs = specs[:1]
    out = check_output_dir(args.out)
    try:
        x = demo.pictures(specs, out, tau=args.tau, device=device, vision=args.vision)
    except ValueError as e:  # an unknown image or a --vision folder that is not a checkpoint
        print(f"emollm demo: {e}", file=sys.stderr)
        return 2
    what = "tokens of the images above"
    if args.vision is None and x.shape[-1] < CLIP_WIDTH:
        x, what = lift(x, CLIP_WIDTH), f"tokens of the images above, lifted to CLIP's width {CLIP_WIDTH} by an isometry"
    table, all_agree = timing_table(x, args.repeat, args.tau, what)
    write_text_atomic(out / "timings.txt", table + "\n")
    print(f"wrote {out / 'timings.txt'}")
    return 0 if all_agree else 1


def lift(x: torch.Tensor, width: int) -> torch.Tensor:
    """``[B,N,d] -> [B,N,width]`` through fixed orthonormal columns: every distance is kept, so
    the clusters are the images' own, at the cost of CLIP-width tokens."""
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(width, x.shape[-1], generator=g, dtype=torch.float64))
    return x @ q.T.to(x)


def timing_table(x: torch.Tensor, repeat: int, tau: float, what: str = "tokens") -> tuple[str, bool]:
    """Time the three stages on ``x`` ``[B,N,D]`` on every backend of its device, printing progress;
    returns the table (header included) and whether every backend clustered as ``reference``."""
    b, n, d = x.shape
    stages = " ".join(f"({c},{k})" for c, k in STAGES)
    header = (f"emollm demo: B={b} N={n} D={d} {str(x.dtype).removeprefix('torch.')} {what} "
              f"on {x.device} ({torch.get_num_threads()} threads); stages (C,k) = {stages}, gcn tau {tau}; "
              f"each stage runs {' -> '.join(PIPELINE_OPS)} as MVPProjector does; "
              f"median of {repeat} runs after a warm-up")
    print("\n" + header)

    results = {}
    for name in _demo_backends(x.device):
        print(f"  timing {name} ...", end="", flush=True)
        results[name] = time_backend(name, x, repeat, tau)
        print(f" {results[name]['total']:.1f} ms")

    ref = results["reference"]
    stage_cols = "".join(f"{f'stage {s} ms':>12}" for s in range(1, len(STAGES) + 1))
    lines = [header, "", f"{'backend':<10}{'total ms':>10}{stage_cols}{'speed-up':>10}  assignments vs reference"]
    all_agree = True
    for name, r in results.items():
        agree = "(is the reference)" if name == "reference" else _agreement(r["assigns"], ref["assigns"])
        all_agree &= not agree.startswith("DIFFER")
        stage_ms = "".join(f"{t:>12.2f}" for t in r["stages"])
        lines.append(f"{name:<10}{r['total']:>10.2f}{stage_ms}{ref['total'] / r['total']:>9.2f}×  {agree}")
    lines += _untimed_notes(x.device)
    lines.append("all backends agree with reference" if all_agree else "SOME BACKENDS DISAGREE WITH REFERENCE")
    print("\n" + "\n".join(lines[2:]))
    return "\n".join(lines), all_agree


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emollm", description="emollm: DPC-KNN clustering and GCN ops, MVP, EmoLLM")
    sub = parser.add_subparsers(dest="command", required=True)

    env = sub.add_parser("env", help="versions, CPU/CUDA, the compiled extension and the backends")
    env.set_defaults(func=cmd_env, extra=None)

    demo = sub.add_parser("demo", help="cluster real photos in MVP's three stages, draw them, time every backend")
    demo.add_argument("--out", default="demo-out",
                      help="folder for one PNG per image and timings.txt (default: demo-out)")
    demo.add_argument("--images", help="comma-separated scikit-image sample names or image files "
                      "(default: the six bundled samples astronaut, chelsea, coffee, rocket, camera, motorcycle)")
    demo.add_argument("--vision", metavar="CLIP_DIR", help="cluster the CLIP patch tokens (layer -2) of this local "
                      "checkpoint folder instead of patch colour statistics (needs transformers)")
    demo.add_argument("--tau", type=float, default=TAU, help=f"threshold of the GCN's τ-graph (default: {TAU})")
    demo.add_argument("--repeat", type=int, default=5, help="timed runs per backend (default: 5)")
    demo.add_argument("--small", action="store_true", help="the first image only: seconds, for tests")
    demo.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda if available, else cpu")
    demo.set_defaults(func=cmd_demo, extra="demo")

    # The workflow commands live next to their code; each module adds its own subcommands and
    # keeps heavy imports (transformers, the model) inside the command functions.
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "repeat", 1) < 1:
        parser.error("--repeat must be at least 1")
    if not 0.0 <= getattr(args, "tau", 0.0) <= 1.0:
        parser.error("--tau must lie in [0, 1]")
    if getattr(args, "device", None) == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here (see `python -m emollm env`)")
    return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    """``args.func(args)``; a missing optional package ends in one line naming the extra that
    brings it (exit code 2), since each command imports its dependencies only when it runs, and so
    does an output path that cannot be written (every command checks its outputs before working).
    Ctrl-C ends any command in one line and exit code 130 (the commands that can resume say how)."""
    command = " ".join(filter(None, (args.command, getattr(args, f"{args.command}_command", None))))
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if os.environ.get("RANK", "0") == "0":  # under torchrun, process 0 speaks for all
            print(f"\nemollm {command}: interrupted", file=sys.stderr)
        return 130
    except OutputPathError as e:
        print(f"emollm {command}: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a path the system refuses (too long, a loop of links), a full disk: it says which
        print(f"emollm {command}: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        missing = next((err.name for err in (e, e.__cause__) if isinstance(err, ModuleNotFoundError) and err.name),
                       None)
        extra = getattr(args, "extra", None)
        if missing is None or missing.split(".")[0] == "emollm" or extra is None:
            raise
        print(f"emollm {command}: needs {missing.split('.')[0]}, which is not installed: "
              f"pip install 'emollm[{extra}]'", file=sys.stderr)
        return 2

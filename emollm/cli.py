"""Command line: ``emollm env`` (what is installed, which backends run) and ``emollm demo``.

    python -m emollm env
    python -m emollm demo [--out demo-out] [--repeat 5] [--small] [--device cpu|cuda]

The demo runs the MVP projector's op pipeline (DESIGN.md §1) on every backend that runs on the
device, prints a timing table and checks that every backend clusters exactly as ``reference``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import emollm
from emollm import _extension, ops
from emollm.ops import _backend

STAGES = ((64, 5), (32, 3), (16, 3))  # (num_clusters, k) per stage, the paper's settings
TAU = 0.1
DEFAULT_SHAPE = (8, 256, 1024)  # B, N, D: 256 tokens of CLIP ViT-L/14's width
SMALL_SHAPE = (2, 256, 256)  # --small: seconds, for tests
_DEVICE_ONLY = {"cpu": "cpu", "triton": "cuda", "cuda": "cuda"}  # backends tied to one device type


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cmd_env(args: argparse.Namespace) -> int:
    print(f"emollm   {emollm.__version__} ({Path(emollm.__file__).parent})")
    print(f"torch    {torch.__version__}")
    print(f"python   {platform.python_version()} ({sys.executable})")
    print(f"CPU      {_cpu_name()}: {os.cpu_count()} logical cores, torch uses {torch.get_num_threads()} threads")
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        print(f"CUDA     available (CUDA {torch.version.cuda}): {names}")
    else:
        built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        print(f"CUDA     not available (this torch is {built})")
    if _extension.C is not None:
        print(f"emollm._C compiled extension: loaded ({_extension.C.__file__})")
    else:
        print(f"emollm._C compiled extension: NOT loaded ({_extension.import_error}); ops use the other backends")
    print("backends:")
    for name, (ok, detail) in ops.backend_status().items():
        print(f"  {name:<10} {'available' if ok else 'missing':<10} {detail}")
    return 0


def demo_tokens(batch: int, n: int, dim: int, seed: int = 0) -> torch.Tensor:
    """Stand-in for CLIP patch tokens: each image shows 24 "objects", each token is one of them
    plus noise, so the clusters mean something and densities have no ties (float32 ``[B,N,D]``)."""
    g = torch.Generator().manual_seed(seed)
    objects = torch.randn(batch, 24, dim, generator=g)
    which = torch.randint(0, 24, (batch, n), generator=g)
    return objects[torch.arange(batch)[:, None], which] + 0.5 * torch.randn(batch, n, dim, generator=g)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_pipeline(x: torch.Tensor) -> tuple[list[float], list[torch.Tensor]]:
    """The three stages on the current backend: per-stage ms and cluster assignments."""
    times, assigns = [], []
    z = x
    for num_clusters, k in STAGES:
        start = time.perf_counter()
        _, assign = ops.dpc_cluster(z, num_clusters, k)
        z = ops.cluster_merge(z, assign, num_clusters)
        ops.gcn_propagate(ops.gcn_adjacency(z, TAU), z)
        _sync(x.device)
        times.append((time.perf_counter() - start) * 1e3)
        assigns.append(assign)
    return times, assigns


def time_backend(name: str, x: torch.Tensor, repeat: int) -> dict:
    """Median per-stage and total ms over ``repeat`` runs after one warm-up run."""
    with ops.use_backend(name):
        _, assigns = run_pipeline(x)  # warm-up: thread pools, allocator, lazy inits
        runs = [run_pipeline(x)[0] for _ in range(repeat)]
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


def _demo_backends(device: torch.device) -> list[str]:
    return [b for b in ops.available_backends() if _DEVICE_ONLY.get(b, device.type) == device.type]


def _fallbacks(name: str, device: torch.device) -> list[str]:
    """Pipeline ops that ``name`` lacks; those run on the automatic choice under its row."""
    with ops.use_backend(name):
        return [op for op in ("dpc_cluster", "cluster_merge", "gcn_adjacency", "gcn_propagate")
                if _backend.selected(op, device) != name]


def cmd_demo(args: argparse.Namespace) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    b, n, d = SMALL_SHAPE if args.small else DEFAULT_SHAPE
    x = demo_tokens(b, n, d).to(device)
    stages = " ".join(f"({c},{k})" for c, k in STAGES)
    header = (f"emollm demo: B={b} N={n} D={d} float32 tokens on {device} ({torch.get_num_threads()} threads); "
              f"stages (C,k) = {stages}, gcn tau {TAU}; median of {args.repeat} runs after a warm-up")
    print(header)

    results = {}
    for name in _demo_backends(device):
        print(f"  timing {name} ...", end="", flush=True)
        results[name] = time_backend(name, x, args.repeat)
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
    for name in results:
        if name != "reference" and (missing := _fallbacks(name, device)):
            lines.append(f"note: {name} has no {', '.join(missing)}; its row runs those on the automatic choice")
    lines.append("all backends agree with reference" if all_agree else "SOME BACKENDS DISAGREE WITH REFERENCE")
    table = "\n".join(lines)
    print("\n" + "\n".join(lines[2:]))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "timings.txt").write_text(table + "\n")
    print(f"wrote {out / 'timings.txt'}")
    return 0 if all_agree else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emollm", description="emollm: DPC-KNN clustering and GCN ops, MVP, EmoLLM")
    sub = parser.add_subparsers(dest="command", required=True)

    env = sub.add_parser("env", help="versions, CPU/CUDA, the compiled extension and the backends")
    env.set_defaults(func=cmd_env)

    demo = sub.add_parser("demo", help="time the clustering pipeline on every backend, check it agrees")
    demo.add_argument("--out", default="demo-out", help="folder for timings.txt (default: demo-out)")
    demo.add_argument("--repeat", type=int, default=5, help="timed runs per backend (default: 5)")
    demo.add_argument("--small", action="store_true", help=f"B,N,D = {SMALL_SHAPE} instead of {DEFAULT_SHAPE}")
    demo.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda if available, else cpu")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "repeat", 1) < 1:
        parser.error("--repeat must be at least 1")
    if getattr(args, "device", None) == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here (see `python -m emollm env`)")
    return args.func(args)

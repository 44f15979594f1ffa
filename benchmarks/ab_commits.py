"""Before/after in one run: the same op calls timed on two commits, in alternating processes.

    python benchmarks/ab_commits.py OLD NEW [--rounds 4] [--threads 1] [--cases ops|stage] [--out FILE]

Each commit is checked out into ``build/ab/<sha>`` (a git worktree) and its C++ extension built
in place with this interpreter; then rounds alternate the two trees (old, new; new, old; ...), each
a fresh process that imports that tree's ``emollm`` and times every case (best of a few calls) and,
for the distance-bound ops, one ``torch.bmm(x, xᵀ)`` of the same shape in the same process. The
table gives medians over rounds: each tree's time, new/old, and each one's time over its bmm (the
ratio that survives a noisy machine best). ``NEW`` may be ``WORKTREE``: the current checkout as
it is, built in place already.

Case sets: ``ops`` (each op on ``cpu`` at the benchmark shapes, plus one tiny call for the
per-call overhead of the Python prologue) and ``stage`` (one MVP stage and one video event of
4096/8192 tokens on ``cpu`` beside Chat-UniVi's arithmetic, ``benchmarks/chat_univi.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _worktree(rev: str) -> Path:
    if rev == "WORKTREE":
        return ROOT
    sha = subprocess.run(["git", "rev-parse", rev], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    tree = ROOT / "build" / "ab" / sha[:12]
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), sha], cwd=ROOT, check=True)
    if not list((tree / "emollm").glob("_C*.so")):
        print(f"building {rev} ({sha[:12]}) in {tree}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=tree, check=True,
                       stdout=subprocess.DEVNULL)
    return tree


# ----- the worker: runs inside one tree ---------------------------------------------------------

def _import_tree(tree: str) -> None:
    """``emollm`` (and ``emollm.kernels``, which an editable install maps elsewhere) from ``tree``."""

    class Kernels:
        @classmethod
        def find_spec(cls, name, path=None, target=None):
            if name == "emollm.kernels":
                return importlib.util.spec_from_file_location(
                    name, f"{tree}/kernels/__init__.py", submodule_search_locations=[f"{tree}/kernels"])
            return None

    sys.meta_path.insert(0, Kernels)
    sys.path[:0] = [tree, f"{tree}/benchmarks"]


def _best_ms(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def _cases(kind: str):
    import torch

    from emollm import ops

    def tok(shape, seed=0):
        return torch.randn(shape, generator=torch.Generator().manual_seed(seed))

    if kind == "ops":
        x, z, h = tok((64, 256, 1024)), tok((64, 64, 1024), 1), tok((64, 64, 1024), 2)
        with ops.use_backend("cpu"):
            rho = ops.knn_density(x, 5)
            _, assign = ops.dpc_cluster(x, 64, 5)
            adj = ops.gcn_adjacency(z, 0.5)
        small = tok((1, 64, 64), 3)
        yield "knn_density B=64 N=256 D=1024", "cpu", lambda: ops.knn_density(x, 5), x
        yield "dpc_delta B=64 N=256 D=1024", "cpu", lambda: ops.dpc_delta(x, rho), x
        yield "dpc_cluster B=64 N=256 D=1024", "cpu", lambda: ops.dpc_cluster(x, 64, 5), x
        yield "cluster_merge B=64 N=256 D=1024", "cpu", lambda: ops.cluster_merge(x, assign, 64), None
        yield "dpc_cluster_merge B=64 N=256 D=1024", "cpu", lambda: ops.dpc_cluster_merge(x, 64, 5), x
        yield "gcn_adjacency B=64 C=64 D=1024", "cpu", lambda: ops.gcn_adjacency(z, 0.5), z
        yield "gcn_propagate B=64 C=64 D=1024", "cpu", lambda: ops.gcn_propagate(adj, h), None
        yield ("dpc_cluster_merge B=1 N=64 D=64 (per-call overhead)", "cpu",
               lambda: ops.dpc_cluster_merge(small, 8, 5), small)
    else:
        import chat_univi  # declares the chat-univi backend

        for shape in [(64, 256, 1024), (1, 4096, 1024), (1, 8192, 1024)]:
            x = tok(shape)
            for backend in ("cpu", chat_univi.NAME):
                yield (f"dpc_cluster_merge B={shape[0]} N={shape[1]} D={shape[2]}", backend,
                       lambda x=x: ops.dpc_cluster_merge(x, 64, 5), x)


def worker(tree: str, kind: str, threads: int, reps: int) -> None:
    _import_tree(tree)
    import torch

    import emollm
    from emollm import ops

    assert emollm.__file__.startswith(tree), emollm.__file__
    torch.set_num_threads(threads)
    out = {}
    with torch.no_grad():
        for name, backend, fn, x in _cases(kind):
            with ops.use_backend(backend):
                ms = _best_ms(fn, reps * 20 if "overhead" in name else reps)
            bmm = _best_ms(lambda x=x: torch.bmm(x, x.transpose(1, 2)), reps) if x is not None else None
            out[f"{name} [{backend}]"] = {"ms": ms, "bmm_ms": bmm}
    print(json.dumps(out))


# ----- the driver ---------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=5, help="calls per case per round (the best counts)")
    parser.add_argument("--cases", choices=["ops", "stage"], default="ops")
    parser.add_argument("--out", help="write the rounds and the summary here as JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.cases, args.threads, args.reps)
        return 0
    trees = {"old": _worktree(args.old), "new": _worktree(args.new)}
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    for r in range(args.rounds):
        for side in ("old", "new") if r % 2 == 0 else ("new", "old"):
            cmd = [sys.executable, __file__, args.old, args.new, "--worker", str(trees[side]), "--cases", args.cases,
                   "--threads", str(args.threads), "--reps", str(args.reps)]
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EMOLLM_BACKEND")}
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd="/", timeout=3600)
            if done.returncode:
                sys.stderr.write(done.stderr[-3000:])
                return 1
            runs[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1}/{args.rounds}: {side} done", file=sys.stderr, flush=True)
    summary = {}
    print(f"{'case':60s} {'old ms':>9s} {'new ms':>9s} {'new/old':>8s} {'old/bmm':>8s} {'new/bmm':>8s}")
    for case in runs["old"][0]:
        row = {}
        for side in ("old", "new"):
            row[f"{side}_ms"] = statistics.median(run[case]["ms"] for run in runs[side])
            if runs[side][0][case]["bmm_ms"]:
                row[f"{side}_over_bmm"] = statistics.median(run[case]["ms"] / run[case]["bmm_ms"] for run in runs[side])
        summary[case] = row
        ratios = [f"{row[key]:8.2f}" if key in row else "       -" for key in ("old_over_bmm", "new_over_bmm")]
        print(f"{case:60s} {row['old_ms']:9.2f} {row['new_ms']:9.2f} {row['new_ms'] / row['old_ms']:8.2f} "
              f"{' '.join(ratios)}")
    if args.out:
        sys.path.insert(0, str(ROOT))
        from _machine import describe

        from emollm._io import write_json_atomic

        write_json_atomic(args.out, {"old": args.old, "new": args.new, "threads": args.threads, "rounds": args.rounds,
                                     "cases": args.cases, "machine": describe("cpu"), "summary": summary, "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())

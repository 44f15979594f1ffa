"""Where one MVP stage's time goes on CPU: the phases of the fused ``dpc_cluster_merge`` kernel.

    EMOLLM_CPU_PROFILE=1 python benchmarks/cpu_profile.py [--threads 1] [--repeats 5]

Runs the ``cpu`` kernel (``torch.ops.emollm_C.dpc_cluster_merge``, no Python prologue) at the two
shapes of docs/cpu-profile.md and prints, per shape, the thread CPU time of each phase (summed
over threads, the median over repeats) beside the wall time of the whole call and of one
``torch.bmm(x, xᵀ)`` of the same shape, measured in the same run. With one thread the phases add
up to the call; with more they show the work, and wall/CPU the parallel efficiency.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

SHAPES = {"one MVP stage": (64, 256, 1024), "one video event": (1, 4096, 1024)}
NUM_CLUSTERS, K = 64, 5


def _wall(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if os.environ.get("EMOLLM_CPU_PROFILE") != "1":
        print("set EMOLLM_CPU_PROFILE=1: the phase timers are off otherwise", file=sys.stderr)
        return 2
    import emollm._C as C
    from emollm import ops  # noqa: F401  (loads the kernels)

    torch.set_num_threads(args.threads)
    kernel = torch.ops.emollm_C.dpc_cluster_merge
    for name, (b, n, d) in SHAPES.items():
        x = torch.randn((b, n, d), generator=torch.Generator().manual_seed(0))
        kernel(x, NUM_CLUSTERS, K, None, True, None)
        phases: dict[str, list[float]] = {}
        for _ in range(args.repeats):
            C.profile(True)
            kernel(x, NUM_CLUSTERS, K, None, True, None)
            for phase, seconds in C.profile(True).items():
                phases.setdefault(phase, []).append(seconds * 1e3)
        call = _wall(lambda x=x: kernel(x, NUM_CLUSTERS, K, None, True, None), args.repeats) * 1e3
        bmm = _wall(lambda x=x: torch.bmm(x, x.transpose(1, 2)), args.repeats) * 1e3
        medians = {p: statistics.median(v) for p, v in phases.items()}
        total = sum(medians.values())
        print(f"\n{name}: B={b} N={n} D={d}, {NUM_CLUSTERS} clusters, k={K}, {args.threads} thread(s)")
        print(f"  call (wall) {call:8.1f} ms   one bmm (wall) {bmm:8.1f} ms   call/bmm {call / bmm:5.2f}")
        print(f"  {'phase':10s} {'CPU ms':>8s} {'share':>6s}")
        for phase, ms in medians.items():
            print(f"  {phase:10s} {ms:8.1f} {ms / total:6.1%}")
        print(f"  {'sum':10s} {total:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

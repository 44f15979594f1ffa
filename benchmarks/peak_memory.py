"""Extra peak memory of one ``dpc_cluster`` call (or the ``bmm`` floor), in a fresh process.

    python benchmarks/peak_memory.py PROVIDER B N D [--num-clusters 64] [--k 5]

Prints one number: MB by which the process's peak resident memory grew during the call. It
has to be a fresh process because the peak only ever grows: in the pytest process an earlier,
bigger call (reference builds N×N matrices: 1 GiB each at N=16384) would hide the one measured.
x is created and a tiny call of the same provider runs first, so that neither the input nor
one-time allocations (thread pools, the allocator's first arenas) count.

The peak is ``VmHWM`` of /proc/self/status where there is one, ``ru_maxrss`` elsewhere: on Linux
``ru_maxrss`` survives exec, and a child that Python's subprocess starts with vfork begins with
its parent's peak (measured: 1513 MB in a child of a process that had touched 1.5 GB, VmHWM
13 MB), so from inside pytest every call here grew it by 0. VmHWM belongs to the new address
space. On CUDA it reports the growth of ``torch.cuda.max_memory_allocated`` instead.
"""

from __future__ import annotations

import argparse
import resource
from pathlib import Path

import torch

from emollm import ops


def _call(provider: str, x: torch.Tensor, num_clusters: int, k: int) -> None:
    if provider == "bmm":
        torch.bmm(x, x.transpose(1, 2))
        return
    if provider == "chat-univi":  # the peer baseline is a benchmark row, not a backend
        import chat_univi

        chat_univi.dpc_cluster(x, num_clusters, k, None, True)
        return
    with ops.use_backend(provider):
        ops.dpc_cluster(x, num_clusters, k)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux (bytes on macOS)


def extra_peak_mb(provider: str, shape: tuple[int, int, int], num_clusters: int, k: int,
                  device: str = "cpu", seed: int = 0) -> float:
    dev = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g).to(dev)
    tiny = x[:1, : max(num_clusters, 2 * k)]
    _call(provider, tiny, min(num_clusters, tiny.shape[1]), k)
    before = _peak_mb(dev)
    _call(provider, x, num_clusters, k)
    return _peak_mb(dev) - before


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("provider", help="a backend name, 'chat-univi' or 'bmm'")
    p.add_argument("shape", nargs=3, type=int, metavar=("B", "N", "D"))
    p.add_argument("--num-clusters", type=int, default=64)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    print(f"{extra_peak_mb(a.provider, tuple(a.shape), a.num_clusters, a.k, a.device):.1f}")


if __name__ == "__main__":
    main()

"""Large N without N x N memory: the compiled kernels stream tiles (DESIGN.md §8)."""

import subprocess
import sys
import textwrap

import pytest

from emollm import ops

SCRIPT = textwrap.dedent("""
    import resource, torch
    from emollm import ops
    torch.manual_seed(0)
    x = torch.randn(1, {n}, {d})
    with ops.use_backend("{backend}"):
        ops.dpc_cluster(x[:, :300], 16, 5)  # warm-up: thread pools, BLAS buffers
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        centers, assign = ops.dpc_cluster(x, 64, 5)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert centers.shape == (1, 64) and int(assign.min()) == 0
    print((after - before) / 1024)
""")


def extra_peak_mb(backend: str, n: int, d: int) -> float:
    code = SCRIPT.format(n=n, d=d, backend=backend)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif("cpu" not in ops.available_backends(), reason="needs emollm._C")
def test_cpu_dpc_cluster_stays_small_at_large_n():
    # N = 16384: one float32 N x N matrix is 1 GiB; the tiles and k-lists need a few MiB.
    assert extra_peak_mb("cpu", 16384, 64) <= 64


def test_reference_needs_n_squared():
    """The check above can fail: the reference materializes N x N (here 4096² floats = 64 MiB each)."""
    assert extra_peak_mb("reference", 4096, 16) > 64

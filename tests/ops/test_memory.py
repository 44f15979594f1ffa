"""Large N without N x N memory: the compiled kernels stream tiles (docs/design.md#performance-targets)."""

import subprocess
import sys
import textwrap

import pytest

from emollm import ops

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")

# The child's own peak RSS is VmHWM: ru_maxrss would start at the parent's peak (Linux carries it
# over a fork), which can hide any growth.
SCRIPT = textwrap.dedent("""
    import torch
    from emollm import ops

    def peak_kb():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))

    torch.manual_seed(0)
    x = torch.randn(1, {n}, {d})
    with ops.use_backend("{backend}"):
        ops.dpc_cluster(x[:, :300], 16, 5)  # warm-up: thread pools, BLAS buffers
        before = peak_kb()
        centers, assign = ops.dpc_cluster(x, 64, 5)
        after = peak_kb()
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
    extra = extra_peak_mb("cpu", 16384, 64)
    assert extra <= 64, f"dpc_cluster at N=16384 grew the peak RSS by {extra:.0f} MB"


def test_reference_needs_n_squared():
    """The check above can fail: the reference materializes N x N (8192² floats = 256 MiB each)."""
    extra = extra_peak_mb("reference", 8192, 16)
    assert extra > 256, f"reference grew the peak RSS by only {extra:.0f} MB"


@pytest.mark.skipif("cpu" not in ops.available_backends(), reason="needs emollm._C")
def test_cpu_dpc_cluster_at_n_32768_within_n_times_k_plus_tile():
    # The large-N target (one video event) at a size CI can run: O(N·(k + tile)) extra memory, with k = 5 and
    # tile = 256 rows: N·(k + tile) float32 is 33 MiB; one N x N float32 matrix would be 4 GiB.
    n, k, tile = 32768, 5, 256
    extra = extra_peak_mb("cpu", n, 64)
    assert extra <= n * (k + tile) * 4 / 2**20, f"dpc_cluster at N={n} grew the peak RSS by {extra:.0f} MB"

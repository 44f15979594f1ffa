"""The triton backend on CUDA at moderate sizes, against the reference run in float64 on CPU
(the float64 oracle is O(N²·D) Python and too slow here), and the large-N memory bound.

float32 runs in both dot modes: ``ieee`` (CUDA cores, the default) and ``bf16x3`` (the split onto
tensor cores, docs/kernels.md#float32-on-tensor-cores), which only a GPU runs on tensor cores."""

import pytest
import torch

from emollm import ops
from emollm.kernels import _launch
from emollm.ops.reference import unpack_bits
from tests.kernels.helpers import on, triton
from tests.ops.helpers import close, close_dist, random_mask, tokens

pytestmark = [pytest.mark.gpu, pytest.mark.triton]

SHAPES = [(4, 576, 256), (1, 3000, 128)]
DTYPES = [pytest.param((torch.float32, "ieee"), id="f32-ieee"),
          pytest.param((torch.float32, "bf16x3"), id="f32-bf16x3"),
          pytest.param((torch.bfloat16, "ieee"), id="bf16")]


@pytest.fixture
def dtype(request):
    """The token dtype, inside the float32 dot mode of the parameter."""
    dtype, mode = request.param
    with _launch.f32_dot_mode(mode):
        yield dtype


def _pair(shape, dtype):
    x = tokens(*shape, dtype=dtype)  # rounded to dtype on CPU, so both sides see the same values
    return x.cuda(), x.double()


def _f64(fn, *args, **kwargs):
    return on("reference", fn, *args, **kwargs)


@pytest.mark.parametrize("dtype", DTYPES, indirect=True)
@pytest.mark.parametrize("shape", SHAPES)
def test_knn_density(shape, dtype):
    xg, x64 = _pair(shape, dtype)
    mask = random_mask(shape[0], shape[1], shape[1] - 7)
    for include_self in (True, False):
        rho = triton(ops.knn_density, xg, 5, mask=mask.cuda(), include_self=include_self)
        close(rho.cpu(), _f64(ops.knn_density, x64, 5, mask=mask, include_self=include_self))


@pytest.mark.parametrize("dtype", DTYPES, indirect=True)
@pytest.mark.parametrize("shape", SHAPES)
def test_dpc_delta(shape, dtype):
    xg, x64 = _pair(shape, dtype)
    rho = _f64(ops.knn_density, x64, 5).float()
    delta, parent = triton(ops.dpc_delta, xg, rho.cuda())
    want_delta, want_parent = _f64(ops.dpc_delta, x64, rho)
    assert torch.equal(parent.cpu(), want_parent)
    close_dist(delta.cpu(), want_delta, "triton")


@pytest.mark.parametrize("dtype", DTYPES, indirect=True)
@pytest.mark.parametrize("shape", SHAPES)
def test_dpc_cluster_and_merge(shape, dtype):
    xg, x64 = _pair(shape, dtype)
    centers, assign, merged = triton(ops.dpc_cluster_merge, xg, 64, 5)
    want_c, want_a = _f64(ops.dpc_cluster, x64, 64, 5)
    assert torch.equal(centers.cpu(), want_c) and torch.equal(assign.cpu(), want_a)
    want = _f64(ops.cluster_merge, x64, want_a, 64)
    torch.testing.assert_close(merged.cpu().double(), want, rtol=1e-2 if dtype == torch.bfloat16 else 1e-5,
                               atol=1e-2 if dtype == torch.bfloat16 else 1e-5)


def test_twins_on_gpu():
    half = tokens(1, 700, 64, seed=5)
    x = torch.cat([half, half], 1)
    centers, assign = triton(ops.dpc_cluster, x.cuda(), 32, 3)
    want_c, want_a = on("cpu" if "cpu" in ops.available_backends() else "reference", ops.dpc_cluster, x, 32, 3)
    assert torch.equal(centers.cpu(), want_c) and torch.equal(assign.cpu(), want_a)


@pytest.mark.parametrize("dtype", DTYPES, indirect=True)
def test_gcn(dtype):
    z = tokens(64, 64, 1024, dtype=dtype)
    for tau in (0.1, 0.9, 0.95):
        adj = triton(ops.gcn_adjacency, z.cuda(), tau)
        want = _f64(ops.gcn_adjacency, z.double(), tau)
        assert torch.equal(adj.bits.cpu(), want.bits)
        h = tokens(64, 64, 256, dtype=dtype, seed=1)
        out = triton(ops.gcn_propagate, adj, h.cuda())
        dense = unpack_bits(want.bits, 64).double()
        dinv = dense.sum(-1).rsqrt()
        ref = dinv[..., None] * (dense @ (dinv[..., None] * h.double()))
        tol = 2e-2 if dtype == torch.bfloat16 else 1e-5
        torch.testing.assert_close(out.cpu().double(), ref, rtol=tol, atol=tol)


def test_dpc_cluster_memory_at_131072_tokens():
    """The video-event target (docs/design.md#performance-targets): N = 131072, D = 1024 within
    O(N·(k + tile)) extra memory (the reference would need a 68 GB N×N matrix)."""
    n, d, k = 131072, 1024, 5
    x = torch.randn(1, n, d, device="cuda", dtype=torch.bfloat16)
    triton(ops.dpc_cluster, x[:, :512], 16, k)  # warm-up: compile the kernels
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.max_memory_allocated()
    centers, assign = triton(ops.dpc_cluster, x, 64, k)
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - before
    assert centers.shape == (1, 64) and int(assign.min()) == 0
    budget = n * (k + 64) * 16  # bytes: the k-lists, per-token vectors and sort buffers
    assert extra <= budget, f"dpc_cluster grew GPU memory by {extra / 2**20:.0f} MiB (budget {budget / 2**20:.0f})"

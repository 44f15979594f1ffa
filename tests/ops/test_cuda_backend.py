"""The ``cuda`` backend on CUDA tensors against the float64 oracle (needs a GPU and emollm._C
built with CUDA; skipped elsewhere, where test_cuda_emulator.py checks the same kernels)."""

from __future__ import annotations

import pytest
import torch

from emollm import ops
from tests import oracle
from tests.ops.helpers import close, close_dist, random_mask, tokens, with_duplicates

pytestmark = pytest.mark.gpu

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# (B, N, D, masked, duplicates): one tile and many; the image shape's N=576; a lone token.
SHAPES = [(1, 1, 8, False, False), (2, 150, 40, True, False), (3, 577, 64, True, True), (4, 96, 1024, False, True)]


@pytest.fixture(autouse=True)
def cuda_backend():
    ok, detail = ops.backend_status()["cuda"]
    if not ok:
        pytest.skip(f"cuda backend not available: {detail}")
    with ops.use_backend("cuda"):
        yield


def inputs(shape, dtype, seed=0):
    b, n, d, masked, dup = shape
    x = tokens(b, n, d, seed=seed)
    x = with_duplicates(x, seed=seed) if dup else x
    x = x.to(dtype)
    mask = random_mask(b, n, max(n * 3 // 4, 1), seed=seed) if masked else None
    return x, mask


def on_gpu(t):
    return None if t is None else t.cuda()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}-N{}-D{}-mask{}-dup{}".format(*s))
@pytest.mark.parametrize("k,include_self", [(1, True), (5, True), (3, False), (32, True)])
def test_knn_density(shape, dtype, k, include_self):
    x, mask = inputs(shape, dtype)
    valid = x.shape[1] if mask is None else int(mask.sum(1).min())
    if k > (valid if include_self else valid - 1):
        pytest.skip("k exceeds the valid tokens of this shape")
    rho = ops.knn_density(x.cuda(), k, mask=on_gpu(mask), include_self=include_self)
    assert rho.is_cuda and rho.dtype == torch.float32
    close(rho.cpu(), oracle.knn_density(x, k, mask, include_self))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}-N{}-D{}-mask{}-dup{}".format(*s))
def test_dpc_delta(shape, dtype):
    x, mask = inputs(shape, dtype, seed=1)
    rho = oracle.knn_density(x, 1 if x.shape[1] < 3 else 3, mask).float()
    delta, parent = ops.dpc_delta(x.cuda(), rho.cuda(), mask=on_gpu(mask))
    want_delta, want_parent = oracle.dpc_delta(x, rho, mask)
    close_dist(delta.cpu(), want_delta, "cuda")
    assert torch.equal(parent.cpu(), want_parent)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES[1:], ids=lambda s: "B{}-N{}-D{}-mask{}-dup{}".format(*s))
def test_dpc_cluster(shape, dtype):
    """Tie-free densities (k >= 3, docs/design.md#ties): indices compared exactly."""
    x, mask = inputs((*shape[:4], False), dtype, seed=2)
    centers, assign = ops.dpc_cluster(x.cuda(), 16, 3, mask=on_gpu(mask))
    want_centers, want_assign = oracle.dpc_cluster(x, 16, 3, mask)
    assert torch.equal(centers.cpu(), want_centers)
    assert torch.equal(assign.cpu(), want_assign)


def test_dpc_cluster_agrees_with_cpu_backend_on_duplicates():
    x = with_duplicates(tokens(2, 300, 64, seed=3), seed=3)
    centers, assign = ops.dpc_cluster(x.cuda(), 32, 5)
    with ops.use_backend("cpu"):
        want_centers, want_assign = ops.dpc_cluster(x, 32, 5)
    assert torch.equal(centers.cpu(), want_centers)
    assert torch.equal(assign.cpu(), want_assign)


def test_large_k_runs_on_another_backend():
    x = tokens(1, 100, 16)
    rho = ops.knn_density(x.cuda(), 40)
    close(rho.cpu(), oracle.knn_density(x, 40), scale=10)


def test_non_default_stream_and_device_guard():
    x = tokens(2, 200, 32)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        rho = ops.knn_density(x.cuda(), 5)
    stream.synchronize()
    close(rho.cpu(), oracle.knn_density(x, 5))


def test_opcheck():
    x = tokens(2, 70, 16).cuda()
    mask = random_mask(2, 70, 60).cuda()
    torch.library.opcheck(torch.ops.emollm.knn_density.default, (x, 5, mask, True))
    torch.library.opcheck(torch.ops.emollm.dpc_delta.default, (x, torch.rand(2, 70, device="cuda"), mask))
    torch.library.opcheck(torch.ops.emollm.dpc_cluster.default, (x, 8, 3, mask, True))


def test_compiles_fullgraph():
    x = tokens(2, 70, 16).cuda()
    fn = torch.compile(lambda t: ops.dpc_cluster(t, 8, 3), fullgraph=True)
    centers, assign = fn(x)
    want_centers, want_assign = oracle.dpc_cluster(x.cpu(), 8, 3)
    assert torch.equal(centers.cpu(), want_centers) and torch.equal(assign.cpu(), want_assign)


def test_large_n_memory_is_linear():
    """N = 32768, D = 64: the kernels hold no N x N matrix (that would be 4 GiB in float32)."""
    x = tokens(1, 32768, 64).cuda()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    centers, assign = ops.dpc_cluster(x, 64, 5)
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - before
    assert extra < 64 * 2**20, f"{extra / 2**20:.0f} MiB"
    assert centers.shape == (1, 64) and int(assign.min()) == 0 and int(assign.max()) == 63

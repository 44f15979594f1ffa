"""Every backend that runs on CUDA tensors here (reference, triton, cuda, faiss with faiss-gpu),
every op it implements, against the float64 oracle: one masked shape with duplicates, float32 and
bf16. The deep per-backend GPU tests are test_cuda_backend.py and tests/kernels/test_triton_gpu.py;
this one makes sure no backend reaches a GPU untested."""

from __future__ import annotations

import pytest
import torch

from emollm import ops
from tests import oracle
from tests.ops.helpers import close, close_dist, random_mask, tokens, with_duplicates

pytestmark = pytest.mark.gpu


def _cuda_backends() -> list[str]:
    if not torch.cuda.is_available():
        return ["(none)"]  # the gpu marker skips it without CUDA
    return [name for name, b in ops.backends().items() if b.runs_on("cuda") and b.available()]


@pytest.fixture(params=_cuda_backends())
def gpu_backend(request):
    with ops.use_backend(request.param):
        yield request.param


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def test_every_op_against_the_oracle(gpu_backend, dtype):
    from emollm.ops import _backend
    from emollm.ops.reference import unpack_bits

    x = with_duplicates(tokens(2, 300, 96, seed=11), seed=11).to(dtype)
    mask = random_mask(2, 300, 280, seed=11)
    xg, mg = x.cuda(), mask.cuda()
    ran = []
    if _backend.implements(gpu_backend, "knn_density"):
        close(ops.knn_density(xg, 5, mask=mg).cpu(), oracle.knn_density(x, 5, mask))
        ran.append("knn_density")
    rho = oracle.knn_density(x, 3, mask).float()
    if _backend.implements(gpu_backend, "dpc_delta"):
        delta, parent = ops.dpc_delta(xg, rho.cuda(), mask=mg)
        want_delta, want_parent = oracle.dpc_delta(x, rho, mask)
        assert torch.equal(parent.cpu(), want_parent)
        close_dist(delta.cpu(), want_delta, gpu_backend)
        ran.append("dpc_delta")
    clean = tokens(2, 300, 96, seed=12).to(dtype)  # tie-free for exact indices (docs/design.md#ties)
    want_c, want_a = oracle.dpc_cluster(clean, 32, 5, mask)
    if _backend.implements(gpu_backend, "dpc_cluster"):
        centers, assign = ops.dpc_cluster(clean.cuda(), 32, 5, mask=mg)
        assert torch.equal(centers.cpu(), want_c) and torch.equal(assign.cpu(), want_a)
        ran.append("dpc_cluster")
    tol = 1e-2 if dtype == torch.bfloat16 else 1e-5
    if _backend.implements(gpu_backend, "cluster_merge"):
        merged = ops.cluster_merge(clean.cuda(), want_a.cuda(), 32)
        torch.testing.assert_close(merged.cpu().double(), oracle.cluster_merge(clean, want_a, 32), rtol=tol, atol=tol)
        ran.append("cluster_merge")
    if _backend.implements(gpu_backend, "gcn_adjacency"):
        z = with_duplicates(tokens(2, 64, 96, seed=13), seed=13).to(dtype)
        adj = ops.gcn_adjacency(z.cuda(), 0.9)
        a_hat, d_norm = oracle.gcn_dense(z, 0.9)
        got = unpack_bits(adj.bits.cpu(), 64)
        clear = (d_norm - 0.9).abs() > 1e-9
        assert torch.equal(got[clear], a_hat[clear])
        ran.append("gcn_adjacency")
        if _backend.implements(gpu_backend, "gcn_propagate"):
            out = ops.gcn_propagate(adj, z.cuda())
            want = oracle.gcn_propagate_dense(got, z)
            torch.testing.assert_close(out.cpu().double(), want, rtol=tol, atol=tol)
            ran.append("gcn_propagate")
    assert ran, f"{gpu_backend} implements none of the ops"

"""dpc_cluster and dpc_cluster_merge on the triton backend against the float64 oracle."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emollm import ops
from emollm.kernels import dpc_cluster as kernel
from tests import oracle
from tests.kernels.helpers import largest_tensor, needs_triton, on, triton
from tests.ops.helpers import close, random_mask, tokens, with_duplicates

pytestmark = [pytest.mark.triton, needs_triton]


def _expect_equal(x, c, k, mask=None, include_self=True):
    centers, assign = triton(ops.dpc_cluster, x, c, k, mask=mask, include_self=include_self)
    want_c, want_a = oracle.dpc_cluster(x, c, k, mask, include_self)
    assert torch.equal(centers, want_c)
    assert torch.equal(assign, want_a)
    return centers, assign


@settings(max_examples=10, deadline=None)
@given(b=st.integers(1, 3), n=st.integers(3, 64), d=st.integers(2, 32), k=st.integers(3, 5), c=st.integers(1, 12),
       keep=st.floats(0.3, 1.0), include_self=st.booleans(), seed=st.integers(0, 2**16))
def test_property_matches_oracle(b, n, d, k, c, keep, include_self, seed):
    """Tie-free inputs (k >= 3, Gaussian tokens): indices must match the oracle exactly."""
    valid = max(int(keep * n), c, k + 1)
    if valid > n:
        return
    mask = random_mask(b, n, valid, seed) if valid < n else None
    _expect_equal(tokens(b, n, d, seed=seed), c, k, mask, include_self)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_dtypes(dtype):
    _expect_equal(tokens(2, 30, 8, dtype=dtype), 6, 4)


def test_k1_with_self_goes_through_the_full_scan():
    """k=1 with include_self: every kNN list is the token itself, so no row has a listed parent."""
    _expect_equal(tokens(2, 40, 5), 5, 1)


def test_many_centers_stream_in_tiles():
    _expect_equal(tokens(1, 150, 6, seed=2), 100, 3)  # 100 centers: two 64-wide center tiles


def test_duplicates_keep_the_structure():
    """Exact duplicates: equal densities, twin distances 0; each token still joins a nearest
    center (lowest id on ties), centers are distinct and join themselves."""
    x = with_duplicates(tokens(2, 48, 4))
    centers, assign = triton(ops.dpc_cluster, x, 8, 3)
    for s in range(2):
        cs = centers[s].tolist()
        assert len(set(cs)) == len(cs) and assign[s, cs].tolist() == list(range(8))
        d2 = oracle.sqdist(x[s])[:, cs]
        best = d2.min(-1, keepdim=True).values
        first = (d2 <= best + 1e-7).int().argmax(-1)  # the lowest id among the nearest
        others = torch.ones(48, dtype=torch.bool)
        others[cs] = False
        assert torch.equal(assign[s][others], first[others])


def test_merge_matches_separate_ops_and_gradients():
    x = tokens(2, 24, 5, dtype=torch.float64).requires_grad_()
    w = (torch.rand(2, 24, dtype=torch.float64) + 0.1).requires_grad_()
    mask = random_mask(2, 24, 20)
    centers, assign, merged = triton(ops.dpc_cluster_merge, x, 5, 3, mask=mask, weight=w)
    want_c, want_a = oracle.dpc_cluster(x.detach(), 5, 3, mask)
    assert torch.equal(centers, want_c) and torch.equal(assign, want_a)
    close(merged, oracle.cluster_merge(x.detach(), want_a, 5, w.detach()), dtype=torch.float64)
    g = torch.randn(2, 5, 5, dtype=torch.float64)
    gx, gw = torch.autograd.grad((merged * g).sum(), (x, w))
    gx2, gw2 = torch.autograd.grad((on("reference", ops.cluster_merge, x, want_a, 5, weight=w) * g).sum(), (x, w))
    close(gx, gx2, dtype=torch.float64)
    close(gw, gw2, dtype=torch.float64)


def test_never_allocates_n_by_n_or_n_by_c():
    n, c = 512, 128
    x = tokens(1, n, 4)
    with largest_tensor() as probe:
        kernel.dpc_cluster(x, c, 5, None, True)
    # the interpreter copies each argument as bytes: the [N,k] int64 lists show up as N*k*8
    assert probe.numel < n * c // 2, probe.numel


def test_inference_mode_gives_the_same_result():
    x = tokens(2, 40, 8)
    mask = random_mask(2, 40, 35)
    want = triton(ops.dpc_cluster_merge, x, 6, 3, mask=mask)
    with torch.inference_mode():
        got = triton(ops.dpc_cluster_merge, x, 6, 3, mask=mask)
        graph = triton(ops.gcn_adjacency, got[2], 0.5)
        out = triton(ops.gcn_propagate, graph, got[2])
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))
    assert torch.equal(out, triton(ops.gcn_propagate, triton(ops.gcn_adjacency, want[2], 0.5), want[2]))

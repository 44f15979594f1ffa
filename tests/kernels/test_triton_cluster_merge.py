"""cluster_merge on the triton backend against the float64 oracle."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emollm import ops
from emollm.kernels import cluster_merge as kernel
from tests import oracle
from tests.kernels.helpers import needs_triton, triton, within_twice_reference
from tests.ops.helpers import close, tokens

pytestmark = [pytest.mark.triton, needs_triton]


def _assign(b, n, c, seed=0, drop=0.2):
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, c, (b, n), generator=g)
    return a.masked_fill(torch.rand(b, n, generator=g) < drop, -1)


@settings(max_examples=12, deadline=None)
@given(b=st.integers(1, 3), n=st.integers(1, 64), d=st.integers(1, 80), c=st.integers(1, 9), weighted=st.booleans(),
       seed=st.integers(0, 2**16))
def test_property_matches_oracle(b, n, d, c, weighted, seed):
    x = tokens(b, n, d, seed=seed)
    assign = _assign(b, n, c, seed)
    weight = torch.rand(b, n, generator=torch.Generator().manual_seed(seed)) if weighted else None
    close(triton(ops.cluster_merge, x, assign, c, weight=weight), oracle.cluster_merge(x, assign, c, weight))


def test_segments():
    assign = torch.tensor([[2, -1, 0, 2, 0, 2]])
    order, start, count = kernel.segments(assign, 4)
    assert order.tolist() == [[2, 4, 0, 3, 5, 1]]  # cluster 0, then 2 (stable), ignored last
    assert start.tolist() == [[0, 2, 2, 5]] and count.tolist() == [[2, 0, 3, 0]]


def test_cluster_larger_than_a_step():
    """One cluster of 100 members (four 32-token steps), one empty, one of zero weight."""
    x = tokens(1, 110, 70)
    assign = torch.cat([torch.zeros(100, dtype=torch.long), torch.full((10,), 2)])[None]
    weight = torch.cat([torch.rand(100), torch.zeros(10)])[None]
    out = triton(ops.cluster_merge, x, assign, 3, weight=weight)
    close(out, oracle.cluster_merge(x, assign, 3, weight))
    assert (out[0, 1:] == 0).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision(dtype):
    x = tokens(2, 50, 32, dtype=dtype)
    assign = _assign(2, 50, 6)
    out = triton(ops.cluster_merge, x, assign, 6)
    assert out.dtype == dtype
    within_twice_reference(lambda: ops.cluster_merge(x, assign, 6), oracle.cluster_merge(x, assign, 6), 1e-6)


def test_gradcheck():
    x = tokens(1, 7, 3, dtype=torch.float64).requires_grad_()
    w = (torch.rand(1, 7, dtype=torch.float64) + 0.1).requires_grad_()
    assign = _assign(1, 7, 3)
    assert torch.autograd.gradcheck(lambda x, w: triton(ops.cluster_merge, x, assign, 3, weight=w), (x, w))

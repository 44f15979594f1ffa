"""dpc_delta on the triton backend against the float64 oracle."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emollm import ops
from emollm.kernels import dpc_delta as kernel
from emollm.kernels._common import sqnorm
from tests import oracle
from tests.kernels.helpers import largest_tensor, needs_triton, triton
from tests.ops.helpers import close_dist, random_mask, tokens, with_duplicates

pytestmark = [pytest.mark.triton, needs_triton]


@settings(max_examples=12, deadline=None)
@given(b=st.integers(1, 3), n=st.integers(1, 64), d=st.integers(1, 32), keep=st.floats(0.05, 1.0),
       dup=st.booleans(), tied=st.booleans(), seed=st.integers(0, 2**16))
def test_property_matches_oracle(b, n, d, keep, dup, tied, seed):
    x = tokens(b, n, d, seed=seed)
    if dup:
        x = with_duplicates(x, seed)
    valid = max(1, int(keep * n))
    mask = random_mask(b, n, valid, seed) if valid < n else None
    # tied: equal densities everywhere, so "denser" is decided by index alone
    rho = torch.ones(b, n) if tied else torch.rand(b, n, generator=torch.Generator().manual_seed(seed))
    delta, parent = triton(ops.dpc_delta, x, rho, mask=mask)
    want_delta, want_parent = oracle.dpc_delta(x, rho.double(), mask)
    close_dist(delta, want_delta, "triton", scale=10)
    assert torch.equal(parent, want_parent)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_dtypes(dtype):
    x = tokens(2, 40, 16, dtype=dtype)
    rho = oracle.knn_density(x, 3).float()
    delta, parent = triton(ops.dpc_delta, x, rho)
    want_delta, want_parent = oracle.dpc_delta(x, rho.double())
    assert torch.equal(parent, want_parent)
    torch.testing.assert_close(delta.double(), want_delta, rtol=1e-5, atol=1e-6)


def test_duplicates_tie_to_the_lowest_index_across_tiles():
    """Three copies of 50 tokens, 50 apart (different 64-column tiles): equidistant denser copies
    go to the lowest index, which the Gram distances alone cannot tell apart."""
    x = tokens(1, 50, 7, seed=3).repeat(1, 3, 1)
    rho = oracle.knn_density(x, 4).float()
    delta, parent = triton(ops.dpc_delta, x, rho)
    want_delta, want_parent = oracle.dpc_delta(x, rho.double())
    assert torch.equal(parent, want_parent)
    close_dist(delta, want_delta, "triton")


def test_row_subset_scan():
    """The scan dpc_cluster runs on the rows its kNN shortcut cannot settle."""
    x = tokens(2, 70, 6)
    rho = oracle.knn_density(x, 3).float()
    _, want_parent = oracle.dpc_delta(x, rho.double())
    rows = torch.tensor([[3, 69, 10, -1], [0, 1, 65, 64]])
    valid = torch.ones(2, 70, dtype=torch.int8)
    (found,) = kernel.nearest_denser(x, sqnorm(x, valid), valid, rho, rows)
    want = torch.where(rows >= 0, want_parent.gather(1, rows.clamp_min(0)), -1)
    peak = want == torch.where(rows >= 0, rows, -2)  # the densest token is its own parent: none found
    assert torch.equal(torch.where(peak, -1, want), found)


def test_never_allocates_n_by_n():
    n = 512
    x = tokens(1, n, 4)
    rho = torch.rand(1, n)
    with largest_tensor() as probe:
        kernel.dpc_delta(x, rho, None)
    assert probe.numel < n * n // 8, probe.numel

"""knn_density on the triton backend against the float64 oracle (tiny shapes: the interpreter)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emollm import ops
from emollm.kernels import knn_density as kernel
from emollm.ops import reference
from tests import oracle
from tests.kernels.helpers import largest_tensor, needs_triton, triton, within_twice_reference
from tests.ops.helpers import close, random_mask, tokens, with_duplicates

pytestmark = [pytest.mark.triton, needs_triton]


@settings(max_examples=12, deadline=None)
@given(b=st.integers(1, 3), n=st.integers(2, 64), d=st.integers(1, 32), k=st.integers(1, 6),
       keep=st.floats(0.3, 1.0), dup=st.booleans(), include_self=st.booleans(), seed=st.integers(0, 2**16))
def test_property_matches_oracle(b, n, d, k, keep, dup, include_self, seed):
    x = tokens(b, n, d, seed=seed)
    if dup:
        x = with_duplicates(x, seed)
    valid = max(int(keep * n), k + (0 if include_self else 1))
    if valid > n:
        return
    mask = random_mask(b, n, valid, seed) if valid < n else None
    rho = triton(ops.knn_density, x, k, mask=mask, include_self=include_self)
    close(rho, oracle.knn_density(x, k, mask, include_self), scale=10)
    if mask is not None:
        assert (rho[~mask] == 0).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision(dtype):
    x = tokens(2, 40, 16, dtype=dtype)
    within_twice_reference(lambda: ops.knn_density(x, 4), oracle.knn_density(x, 4), 1e-5)


def test_k_padded_to_a_power_of_two():
    """k=5 and k=7 use 8 register slots; the spare ones must never hold a neighbour."""
    x = tokens(2, 70, 9)
    for k in (5, 7, 8):
        close(triton(ops.knn_density, x, k), oracle.knn_density(x, k))


def test_lists_hold_the_k_nearest():
    x = tokens(2, 90, 5)
    lists = kernel.knn_lists(x, 4, None, False)
    d2 = torch.stack([oracle.sqdist(x[s]) for s in range(2)]) * 5
    d2.diagonal(dim1=1, dim2=2).fill_(float("inf"))
    want = d2.topk(4, largest=False).indices.sort(-1).values
    assert torch.equal(lists.idx.sort(-1).values, want)
    torch.testing.assert_close(lists.exact.double(), d2.gather(2, lists.idx), rtol=1e-5, atol=1e-6)
    # The farthest token of each row, used for the peak's delta.
    d2.diagonal(dim1=1, dim2=2).fill_(-1)
    torch.testing.assert_close(lists.far.double(), d2.amax(-1), rtol=1e-4, atol=1e-4)


def test_never_allocates_n_by_n():
    n = 512
    x = tokens(1, n, 4)
    with largest_tensor() as probe:
        kernel.knn_density(x, 5, None, True)
    assert probe.numel < n * n // 8, probe.numel
    with largest_tensor() as probe:  # the probe can fail: the reference builds N x N
        reference.knn_density(x, 5, None, True)
    assert probe.numel >= n * n

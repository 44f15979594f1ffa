"""gcn_adjacency and gcn_propagate on the triton backend against the float64 oracle."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emollm import ops
from emollm.ops.reference import unpack_bits
from tests import oracle
from tests.kernels.helpers import needs_triton, on, triton, within_twice_reference
from tests.ops.helpers import close, random_mask, tokens, with_duplicates

pytestmark = [pytest.mark.triton, needs_triton]


def _check(z, tau, mask=None):
    adj = triton(ops.gcn_adjacency, z, tau, mask=mask)
    c = z.shape[1]
    a_hat, d_norm = oracle.gcn_dense(z, tau, mask)
    got = unpack_bits(adj.bits, c)
    clear = (d_norm - tau).abs() > 1e-9
    assert torch.equal(got[clear], a_hat[clear])
    assert torch.equal(got, got.transpose(1, 2))
    deg = got.sum(-1).double()
    close(adj.dinv, torch.where(deg > 0, deg.clamp_min(1).rsqrt(), 0))
    return adj


@settings(max_examples=12, deadline=None)
@given(b=st.integers(1, 3), c=st.integers(1, 64), f=st.integers(1, 32), tau=st.floats(0, 1), keep=st.floats(0.1, 1),
       dup=st.booleans(), seed=st.integers(0, 2**16))
def test_property_matches_oracle(b, c, f, tau, keep, dup, seed):
    z = tokens(b, c, f, seed=seed)
    if dup:
        z = with_duplicates(z, seed)
    valid = max(1, int(keep * c))
    mask = random_mask(b, c, valid, seed) if valid < c else None
    adj = _check(z, tau, mask)
    h = tokens(b, c, 3, seed=seed + 1)
    close(triton(ops.gcn_propagate, adj, h), oracle.gcn_propagate_dense(unpack_bits(adj.bits, c), h))


def test_bits_match_the_cpu_layout():
    """Same graph, bit for bit, as the reference and cpu backends: 130 nodes, 3 words, bit 63
    (the sign bit) in use."""
    z = tokens(2, 130, 6)
    mask = random_mask(2, 130, 120)
    for tau in (0.3, 1.0):
        got = triton(ops.gcn_adjacency, z, tau, mask=mask)
        want = on("reference", ops.gcn_adjacency, z, tau, mask=mask)
        assert torch.equal(got.bits, want.bits)
        close(got.dinv, want.dinv)  # the reference takes rsqrt in float32, cpu and triton in float64
        if "cpu" in ops.available_backends():
            assert torch.equal(got.dinv, on("cpu", ops.gcn_adjacency, z, tau, mask=mask).dinv)


def test_pairs_exactly_at_tau_are_edges():
    for i in (7, 30, 70, 99):
        tau = i / 100
        z = torch.tensor([[[0.0], [100 * tau], [100.0]]])
        a_hat, _ = oracle.gcn_dense(z, tau)
        assert torch.equal(unpack_bits(triton(ops.gcn_adjacency, z, tau).bits, 3), a_hat), tau


def test_all_equal_nodes_are_all_linked():
    adj = triton(ops.gcn_adjacency, torch.ones(1, 7, 3), 0.0)
    assert unpack_bits(adj.bits, 7).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_propagate_dtypes(dtype):
    adj = _check(tokens(2, 24, 16), 0.5)
    h = tokens(2, 24, 70, dtype=dtype, seed=2)
    want = oracle.gcn_propagate_dense(unpack_bits(adj.bits, 24), h)
    assert triton(ops.gcn_propagate, adj, h).dtype == dtype
    within_twice_reference(lambda: ops.gcn_propagate(adj, h), want, 1e-6 if dtype != torch.float64 else 1e-12)


def test_gradcheck():
    adj = triton(ops.gcn_adjacency, tokens(1, 5, 4), 0.6)
    h = tokens(1, 5, 2, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda h: triton(ops.gcn_propagate, adj, h), (h,))

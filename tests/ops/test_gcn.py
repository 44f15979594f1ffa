import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from emollm import ops
from emollm.ops.reference import unpack_bits
from tests import oracle
from tests.ops.helpers import close, random_mask, tokens, with_duplicates

# Both backends decide pairs near tau exactly (float64 from differences); this only absorbs the
# float64 rounding of the oracle itself.
MARGIN = 1e-9


def _check_adjacency(z, tau, mask=None):
    adj = ops.gcn_adjacency(z, tau, mask=mask)
    b, c = z.shape[:2]
    assert adj.bits.shape == (b, c, (c + 63) // 64) and adj.bits.dtype == torch.int64
    assert adj.dinv.shape == (b, c) and adj.dinv.dtype == torch.float32
    a_hat, d_norm = oracle.gcn_dense(z, tau, mask)
    got = unpack_bits(adj.bits, c)
    clear = (d_norm - tau).abs() > MARGIN
    assert torch.equal(got[clear], a_hat[clear])
    assert torch.equal(got, got.transpose(1, 2))  # the graph is undirected
    deg = got.sum(-1).double()
    close(adj.dinv, torch.where(deg > 0, deg.clamp_min(1).rsqrt(), 0))
    return adj, a_hat


@pytest.mark.parametrize("tau", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("shape", [(1, 5, 3), (3, 16, 17), (2, 64, 40), (1, 130, 9)])
def test_adjacency_matches_oracle(backend, shape, tau):
    _check_adjacency(tokens(*shape), tau)


def test_adjacency_extremes(backend):
    z = tokens(2, 20, 4)
    adj, _ = _check_adjacency(z, 0.0)
    assert torch.equal(unpack_bits(adj.bits, 20), torch.eye(20, dtype=torch.bool).expand(2, -1, -1))
    adj, _ = _check_adjacency(z, 1.0)
    assert unpack_bits(adj.bits, 20).all()
    # All-equal nodes: every normalized distance is 0, so every pair is an edge.
    adj = ops.gcn_adjacency(torch.ones(1, 7, 3), 0.0)
    assert unpack_bits(adj.bits, 7).all()


def test_adjacency_mask(backend):
    z = tokens(2, 70, 6)
    mask = random_mask(2, 70, 50)
    adj, _ = _check_adjacency(z, 0.3, mask)
    dense = unpack_bits(adj.bits, 70)
    assert not dense[~mask].any() and not dense.transpose(1, 2)[~mask].any()
    assert (adj.dinv[~mask] == 0).all()


@pytest.mark.parametrize("shape", [(1, 5, 3), (3, 16, 17), (2, 70, 33)])
def test_propagate_matches_oracle(backend, shape):
    z = tokens(*shape)
    adj, _ = _check_adjacency(z, 0.3)
    h = tokens(*shape, seed=1)
    out = ops.gcn_propagate(adj, h)
    a_hat = unpack_bits(adj.bits, shape[1])  # the graph actually built, near-tau pairs included
    close(out, oracle.gcn_propagate_dense(a_hat, h))
    close(adj.dense(), oracle.gcn_propagate_dense(a_hat, torch.eye(shape[1]).expand(shape[0], -1, -1)))


def test_unbatched_float64_and_mask(backend):
    z = tokens(1, 12, 5, dtype=torch.float64)
    mask = random_mask(1, 12, 9)
    adj = ops.gcn_adjacency(z[0], 0.4, mask=mask[0])
    assert adj.bits.shape == (12, 1) and adj.dinv.shape == (12,)
    out = ops.gcn_propagate(adj, z[0])
    a_hat, _ = oracle.gcn_dense(z, 0.4, mask)
    # dinv is float32 by contract, so float64 features get float32-level normalization.
    close(out, oracle.gcn_propagate_dense(a_hat, z)[0])
    assert (out[~mask[0]] == 0).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_propagate_low_precision(backend, dtype):
    z = tokens(2, 24, 16)
    adj = ops.gcn_adjacency(z, 0.5)
    h = tokens(2, 24, 32, dtype=dtype, seed=2)
    want = oracle.gcn_propagate_dense(unpack_bits(adj.bits, 24), h)
    out = ops.gcn_propagate(adj, h)
    assert out.dtype == dtype
    with ops.use_backend("reference"):
        ref_err = (ops.gcn_propagate(adj, h).double() - want).abs().max()
    assert (out.double() - want).abs().max() <= 2 * ref_err + 1e-6


def test_duplicates(backend):
    _check_adjacency(with_duplicates(tokens(2, 30, 4)), 0.2)


@pytest.mark.not_interpreted
def test_gradcheck(backend):
    z = tokens(2, 10, 4)
    adj = ops.gcn_adjacency(z, 0.4)
    h = tokens(2, 10, 3, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda h: ops.gcn_propagate(adj, h), (h,))


@given(b=st.integers(1, 3), c=st.integers(1, 70), f=st.integers(1, 8), tau=st.floats(0, 1), keep=st.floats(0.1, 1),
       dup=st.booleans(), seed=st.integers(0, 2**16))
def test_property_matches_oracle(b, c, f, tau, keep, dup, seed):
    z = tokens(b, c, f, seed=seed)
    if dup:
        z = with_duplicates(z, seed)
    valid = max(1, int(keep * c))
    mask = random_mask(b, c, valid, seed) if valid < c else None
    h = tokens(b, c, 3, seed=seed + 1)
    for name in ("reference", "cpu"):
        if name in ops.available_backends():
            with ops.use_backend(name):
                adj, _ = _check_adjacency(z, tau, mask)
                out = ops.gcn_propagate(adj, h)
            close(out, oracle.gcn_propagate_dense(unpack_bits(adj.bits, c), h))


def test_opcheck(backend):
    z = tokens(2, 9, 5)
    torch.library.opcheck(torch.ops.emollm.gcn_adjacency.default, (z, 0.3, None))
    torch.library.opcheck(torch.ops.emollm.gcn_adjacency.default, (z, 0.3, random_mask(2, 9, 6)))
    bits, dinv = torch.ops.emollm.gcn_adjacency(z, 0.3, None)
    h = tokens(2, 9, 4).requires_grad_()
    torch.library.opcheck(torch.ops.emollm.gcn_propagate.default, (bits, dinv, h))


def test_pairs_exactly_at_tau_are_edges(backend):
    # 0, 7, 10 on a line: d(0,7) / max d = 0.7 exactly, so tau = 0.7 links them (d̃ <= tau).
    z = torch.tensor([[[0.0], [7.0], [10.0]]])
    dense = unpack_bits(ops.gcn_adjacency(z, 0.7).bits, 3)[0]
    assert dense[0, 1] and dense[1, 0]
    for i in range(1, 100):
        tau = i / 100
        z = torch.tensor([[[0.0], [100 * tau], [100.0]]])
        a_hat, _ = oracle.gcn_dense(z, tau)
        assert torch.equal(unpack_bits(ops.gcn_adjacency(z, tau).bits, 3), a_hat), tau


def test_propagate_ignores_bits_past_the_last_node(backend):
    bits = torch.full((1, 10, 1), -1, dtype=torch.long)  # every bit set, also for nodes 10..63
    h = torch.ones(1, 10, 4)
    out = ops.gcn_propagate(ops.GCNGraph(bits, torch.full((1, 10), 10 ** -0.5)), h)
    close(out, torch.ones(1, 10, 4))


def test_tau_one_links_every_pair(backend):
    """``d / max d <= 1`` for every pair by definition, also for pairs whose distance equals the
    maximum in exact arithmetic but rounds above it in another summation order: mirrored pairs
    (v, -v) and (w, -w) with w a permutation of v, and random pairs over many features."""
    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(8):
        v = torch.randn(64, generator=g)
        w = v[torch.randperm(64, generator=g)]
        samples.append(torch.stack([v, -v, w, -w, 0.1 * torch.randn(64, generator=g)]))
    mirrored = torch.stack(samples)
    for z in (mirrored, tokens(6, 9, 300)):
        dense = unpack_bits(ops.gcn_adjacency(z, 1.0).bits, z.shape[1])
        assert dense.all(), dense.logical_not().nonzero().tolist()

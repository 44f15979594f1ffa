"""Numerics at the edges, on every backend: half-precision offsets, values whose squares overflow,
subnormal nodes, tiny weights, NaN features, exact duplicates. Each ends in the oracle's answer
or in a clear error, never in a silent NaN or a different decision on one backend."""

import pytest
import torch

from emollm import ops
from tests import oracle
from tests.ops.helpers import close

pytestmark = pytest.mark.ops("knn_density", "dpc_delta", "dpc_cluster", "dpc_cluster_merge", "cluster_merge",
                             "gcn_adjacency", "gcn_propagate")


def test_half_tokens_with_a_large_common_offset(backend):
    # CLIP-like float16 features plus a constant: the centring decision must not sum in float16
    # (576 tokens × 300 overflow its 65504).
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(2, 576, 32, generator=g) + 300.0).half()
    mask = torch.ones(2, 576, dtype=torch.bool)
    mask[1, 500:] = False
    rho = ops.knn_density(x, 5, mask=mask)
    close(rho, oracle.knn_density(x.double(), 5, mask))
    centers, assign = ops.dpc_cluster(x, 16, 5, mask=mask)
    want_centers, want_assign = oracle.dpc_cluster(x.double(), 16, 5, mask)
    assert torch.equal(centers, want_centers) and torch.equal(assign, want_assign)


@pytest.mark.parametrize("op", ["knn_density", "dpc_delta", "dpc_cluster", "dpc_cluster_merge"])
def test_values_whose_squares_overflow_are_refused(backend, op):
    x = torch.randn(2, 20, 8)
    x[1, 3, 2] = 1e20  # finite, but its square is not (float32 ends at 3.4e38)
    call = {
        "knn_density": lambda: ops.knn_density(x, 3),
        "dpc_delta": lambda: ops.dpc_delta(x, torch.rand(2, 20)),
        "dpc_cluster": lambda: ops.dpc_cluster(x, 4, 3),
        "dpc_cluster_merge": lambda: ops.dpc_cluster_merge(x, 4, 3),
    }[op]
    if backend == "faiss" and op != "knn_density":
        pytest.skip("faiss implements knn_density only")
    with pytest.raises(ValueError, match=r"values up to 1e\+20.*overflow"):
        call()


def test_nan_is_still_called_nan(backend):
    x = torch.randn(2, 20, 8)
    x[0, 5, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        ops.knn_density(x, 3)


# Inside and just outside the window that is computed unscaled (emollm/ops/_checks.py SAFE_EXPONENT).
@pytest.mark.parametrize("magnitude", [1e-40, 2.0 ** -21, 2.0 ** -19, 1.0, 2.0 ** 19, 2.0 ** 21, 1e30],
                         ids=["subnormal", "below-window", "window-low", "one", "window-high", "above-window", "huge"])
def test_gcn_graph_is_scale_free(backend, magnitude):
    # d / max d does not change with the scale of the nodes: subnormal nodes must not collapse to
    # one point (the complete graph), huge ones must not overflow.
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 12, 16, generator=g, dtype=torch.float64)
    want_a, _ = oracle.gcn_dense(z, 0.4)
    graph = ops.gcn_adjacency((z * magnitude).float(), 0.4)
    got = graph.dense() > 0
    assert torch.equal(got, want_a > 0)
    if magnitude != 1.0:  # and the same graph as at scale 1, bit for bit
        assert torch.equal(graph.bits, ops.gcn_adjacency(z.float(), 0.4).bits)


def test_tiny_weights_give_the_same_mean(backend):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 30, 8, generator=g)
    assign = torch.randint(0, 4, (2, 30), generator=g)
    w = torch.rand(2, 30, generator=g) + 0.5
    for scale in (1e-30, 1e-42):  # the second is subnormal in float32 (and rounded to a few bits)
        tiny = w * scale
        close(ops.cluster_merge(x, assign, 4, weight=tiny), oracle.cluster_merge(x.double(), assign, 4, tiny.double()))
    merged = ops.dpc_cluster_merge(x, 4, 3, weight=w * 1e-42)[2]
    assert torch.isfinite(merged).all()


def test_tiny_weights_keep_finite_gradients():
    x = torch.randn(1, 10, 4, dtype=torch.float64, requires_grad=True)
    assign = torch.tensor([[0, 0, 1, 1, 1, 2, 2, 0, 1, 2]])
    w = torch.full((1, 10), 1e-310, dtype=torch.float64)  # subnormal in float64
    ops.cluster_merge(x, assign, 3, weight=w).sum().backward()
    assert torch.isfinite(x.grad).all()
    torch.testing.assert_close(x.grad, torch.tensor([1 / 3, 1 / 3, 1 / 4, 1 / 4, 1 / 4, 1 / 3, 1 / 3, 1 / 3, 1 / 4,
                                                     1 / 3], dtype=torch.float64)[None, :, None].expand(1, 10, 4))


def test_gcn_propagate_refuses_nan_features(backend):
    z = torch.randn(1, 8, 4)
    graph = ops.gcn_adjacency(z, 0.5)
    h = torch.randn(1, 8, 4)
    h[0, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="h contains NaN or Inf"):
        ops.gcn_propagate(graph, h)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exact_duplicates_follow_the_lower_index_rule(backend, dtype):
    # Every token appears three times: densities tie exactly, and the contract's lower-index rules
    # decide centers, parents and assignments; the oracle computes them in exact arithmetic.
    g = torch.Generator().manual_seed(3)
    base = torch.randn(1, 10, 6, generator=g, dtype=torch.float64) * 3
    x = base.repeat(1, 3, 1)[:, torch.randperm(30, generator=g)].to(dtype)
    rho = ops.knn_density(x, 4)
    close(rho, oracle.knn_density(x.double(), 4))
    centers, assign = ops.dpc_cluster(x, 5, 4)
    want_centers, want_assign = oracle.dpc_cluster(x.double(), 5, 4)
    assert torch.equal(centers, want_centers) and torch.equal(assign, want_assign)


@pytest.mark.parametrize("call", [
    lambda x: ops.knn_density(x, 3, include_self="no"),
    lambda x: ops.dpc_cluster(x, 4, 3, include_self=0),
    lambda x: ops.dpc_cluster_merge(x, 4, 3, include_self=None),
], ids=["knn_density", "dpc_cluster", "dpc_cluster_merge"])
def test_include_self_must_be_a_bool(call):
    # A string such as "no" is truthy: it used to reach the dispatcher's multi-line cast error.
    with pytest.raises(TypeError, match="include_self must be True or False"):
        call(torch.randn(2, 20, 8))


def _graph():
    g = torch.Generator().manual_seed(3)
    return ops.gcn_adjacency(torch.randn(2, 10, 8, generator=g), 0.5), torch.randn(2, 10, 4, generator=g)


def test_gcn_propagate_refuses_a_non_finite_or_negative_dinv(backend):
    graph, h = _graph()
    for bad in (float("nan"), float("inf"), -0.5):
        dinv = graph.dinv.clone()
        dinv[1, 3] = bad
        with pytest.raises(ValueError, match=r"adj\.dinv must be finite and >= 0"):
            ops.gcn_propagate((graph.bits, dinv), h)


def test_gcn_propagate_refuses_an_asymmetric_graph(backend):
    # The backward multiplies by the same matrix as its transpose: a one-way edge would give a
    # wrong gradient silently.
    graph, h = _graph()
    dense = graph.dense() > 0
    i, j = next((i, j) for i in range(10) for j in range(10) if not dense[0, i, j])
    bits = graph.bits.clone()
    bits[0, i, j // 64] |= 1 << (j % 64)
    with pytest.raises(ValueError, match="not symmetric"):
        ops.gcn_propagate((bits, graph.dinv), h)
    with pytest.raises(TypeError, match="two tensors"):
        ops.gcn_propagate((graph.bits, [1.0] * 10), h)


def test_gcn_propagate_checks_the_graph_on_every_call(backend):
    # A write through .numpy() does not bump the tensor's version: no check may be skipped on the
    # strength of an earlier call with the same tensor.
    graph, h = _graph()
    bits = graph.bits.clone()
    ops.gcn_propagate((bits, graph.dinv), h)
    dense = graph.dense() > 0
    i, j = next((i, j) for i in range(10) for j in range(10) if not dense[0, i, j])
    bits.numpy()[0, i, j // 64] |= 1 << (j % 64)
    with pytest.raises(ValueError, match="not symmetric"):
        ops.gcn_propagate((bits, graph.dinv), h)

"""Property-based bad input for the ops: whatever hypothesis throws at them (odd shapes, dtypes,
masks, k, tau, assignments, weights, NaN/Inf/huge/subnormal values), each call either returns an
output that honours the contract (shapes, dtypes, finite values, ids in range) or raises a
ValueError/TypeError that names the argument. Never another exception, never a silent NaN."""

import math
import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emollm import ops

pytestmark = [pytest.mark.ops("knn_density", "dpc_delta", "dpc_cluster", "dpc_cluster_merge", "cluster_merge",
                              "gcn_adjacency", "gcn_propagate"),
              pytest.mark.not_interpreted]

ARGUMENT_NAMES = ("x", "z", "h", "k", "num_clusters", "mask", "tau", "assign", "weight", "rho", "adj", "float64")
SPECIAL = [0.0, -0.0, 1e-40, 1e-310, 1e20, 1e200, float("nan"), float("inf"), -float("inf")]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.bool]


@st.composite
def tokens(draw):
    """A tensor that is usually, but not always, a valid ``[B,N,D]`` float input."""
    rank = draw(st.sampled_from([3, 3, 3, 2, 1, 4]))
    shape = [draw(st.integers(0 if rank != 3 else 1, 3)) for _ in range(rank - 2)] if rank > 2 else []
    shape += [draw(st.integers(0, 12)) for _ in range(min(rank, 2))]
    dtype = draw(st.sampled_from(DTYPES))
    seed = torch.Generator().manual_seed(draw(st.integers(0, 1000)))
    x = torch.randn(shape, generator=seed, dtype=torch.float64) * draw(st.sampled_from([1.0, 1e3, 1e-3]))
    if x.numel() and draw(st.booleans()):
        flat = x.view(-1)
        for _ in range(draw(st.integers(1, 3))):
            flat[draw(st.integers(0, flat.numel() - 1))] = draw(st.sampled_from(SPECIAL))
    if draw(st.booleans()) and x.dim() >= 2 and x.shape[-2] > 1:  # exact duplicates
        x[..., 1, :] = x[..., 0, :]
    return x.to(dtype) if dtype != torch.bool else x > 0


@st.composite
def masks(draw, like):
    choice = draw(st.sampled_from(["none", "none", "ok", "ok", "wrong-shape", "wrong-dtype", "empty-sample"]))
    if choice == "none" or like.dim() < 2:
        return None
    lead = like.shape[:-1]
    if choice == "wrong-shape":
        return torch.ones(*lead, 2, dtype=torch.bool)
    if choice == "wrong-dtype":
        return torch.ones(lead, dtype=torch.int64)
    mask = torch.rand(lead, generator=torch.Generator().manual_seed(draw(st.integers(0, 99)))) > 0.3
    if choice == "empty-sample" and mask.numel():
        mask.view(-1, lead[-1])[0] = False
    return mask


def _assert_good(out) -> None:
    for t in out if isinstance(out, tuple) else (out,):
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            assert torch.isfinite(t).all(), "a silent NaN/Inf in the output"


def _run(call):
    try:
        out = call()
    except (ValueError, TypeError) as e:
        message = str(e)
        assert any(re.search(rf"\b{name}\b", message) for name in ARGUMENT_NAMES), f"an error naming nothing: {e}"
        return None
    _assert_good(out)
    return out


# The backend fixture (a use_backend block) is meant to hold for every example.
PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


@PROPERTY
@given(data=st.data())
def test_clustering_ops(backend, data):
    x = data.draw(tokens())
    mask = data.draw(masks(x))
    k = data.draw(st.sampled_from([0, 1, 2, 3, 5, 13, -1, 2.0, True]))
    c = data.draw(st.sampled_from([0, 1, 2, 4, 20, -3, 1.5]))
    include_self = data.draw(st.booleans())
    out = _run(lambda: ops.knn_density(x, k, mask=mask, include_self=include_self))
    if out is not None:
        assert out.dtype == torch.float32 and out.shape == x.shape[:-1]
        assert ((out >= 0) & (out <= 1)).all()
    rho = data.draw(st.sampled_from([None, "ok", "nan", "wrong-shape"]))
    if x.dim() >= 2 and rho is not None:
        r = torch.rand(x.shape[:-1])
        if rho == "nan" and r.numel():
            r.view(-1)[0] = float("nan")
        if rho == "wrong-shape":
            r = torch.rand(3)
        _run(lambda: ops.dpc_delta(x, r, mask=mask))
    out = _run(lambda: ops.dpc_cluster(x, c, k, mask=mask, include_self=include_self))
    if out is not None:
        centers, assign = out
        assert centers.dtype == assign.dtype == torch.int64
        assert ((assign >= -1) & (assign < c)).all() and ((centers >= 0) & (centers < x.shape[-2])).all()
    _run(lambda: ops.dpc_cluster_merge(x, c, k, mask=mask, include_self=include_self))


@PROPERTY
@given(data=st.data())
def test_merge_and_gcn_ops(backend, data):
    x = data.draw(tokens())
    c = data.draw(st.sampled_from([1, 3, 7, 0]))
    n = x.shape[-2] if x.dim() >= 2 else 1
    lead = x.shape[:-1] if x.dim() >= 2 else (n,)
    assign = torch.randint(-1, max(c, 1) + data.draw(st.sampled_from([0, 0, 1])), lead)
    weight = data.draw(st.sampled_from([None, "ok", "tiny", "negative", "nan"]))
    w = None
    if weight is not None:
        w = torch.rand(lead) * {"ok": 1.0, "tiny": 1e-42, "negative": -1.0, "nan": float("nan")}[weight]
    out = _run(lambda: ops.cluster_merge(x, assign, c, weight=w))
    if out is not None:
        assert out.dtype == x.dtype and out.shape[-2] == c
    tau = data.draw(st.sampled_from([0.0, 0.1, 0.5, 1.0, -0.1, 1.5, math.nan, "0.1"]))
    mask = data.draw(masks(x))
    graph = _run(lambda: ops.gcn_adjacency(x, tau, mask=mask))
    if graph is not None:
        h = x.to(torch.float32) if x.is_floating_point() else torch.randn(x.shape)
        _run(lambda: ops.gcn_propagate(graph, h))
        _run(lambda: ops.gcn_propagate(graph, torch.randn(2, 3)))

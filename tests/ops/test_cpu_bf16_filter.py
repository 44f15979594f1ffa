"""The bfloat16 filter of the CPU k-nearest scan (csrc/cpu/knn_filter.cpp).

The filter picks candidates from bfloat16 Gram tiles within a proven error bound and chooses the k
nearest among them from differences, so it must give the contract's answer: the float64 oracle's on
tie-free inputs, and the same as the float32 path. EMOLLM_CPU_BF16=1 forces it on whatever the CPU
has (without AVX512-BF16 the bfloat16 GEMM is slow, never wrong); every op test also runs with it
on as the "cpu-bf16" backend (tests/conftest.py). These cases aim at its own failure modes: the
largest rounding, crowds of near-duplicates that overflow the candidate slots, extreme scales,
and samples that stream their tiles.
"""

import pytest
import torch

from emollm import ops
from tests import oracle
from tests.ops.helpers import close, random_mask, tokens

pytestmark = pytest.mark.skipif("cpu" not in ops.available_backends(), reason="needs emollm._C")


def _both(monkeypatch, fn):
    """fn() with the filter off, then forced on."""
    out = []
    for mode in ("0", "1"):
        monkeypatch.setenv("EMOLLM_CPU_BF16", mode)
        with ops.use_backend("cpu"):
            out.append(fn())
    return out


def _check_against_oracle(x, k, c, include_self=True, mask=None, outs=None):
    rho, (centers, assign) = outs
    close(rho, oracle.knn_density(x, k, mask, include_self=include_self))
    want_c, want_a = oracle.dpc_cluster(x, c, k, mask, include_self=include_self)
    assert torch.equal(centers, want_c)
    assert torch.equal(assign, want_a)


def _run(x, k, c, include_self=True, mask=None):
    return (ops.knn_density(x, k, mask=mask, include_self=include_self),
            ops.dpc_cluster(x, c, k, mask=mask, include_self=include_self))


@pytest.mark.parametrize("shape,k,c", [((3, 256, 64), 5, 16), ((2, 200, 48), 3, 8), ((1, 1300, 24), 5, 32)])
@pytest.mark.parametrize("include_self", [True, False])
def test_same_answer_as_float32_path(monkeypatch, shape, k, c, include_self):
    x = tokens(*shape)
    off, on = _both(monkeypatch, lambda: _run(x, k, c, include_self))
    assert torch.equal(off[1][0], on[1][0]) and torch.equal(off[1][1], on[1][1])
    close(on[0], off[0])
    _check_against_oracle(x, k, c, include_self, outs=on)


def test_worst_case_rounding(monkeypatch):
    # Every value sits just under a bfloat16 rounding midpoint: the largest input error everywhere.
    g = torch.Generator().manual_seed(1)
    sign = torch.randint(0, 2, (2, 300, 64), generator=g) * 2 - 1
    exponent = torch.randint(-3, 3, (2, 300, 64), generator=g)
    mantissa = torch.randint(0, 128, (2, 300, 64), generator=g)
    x = (sign * 2.0 ** exponent * (1 + (mantissa + 0.5 - 2.0 ** -10) * 2.0 ** -7)).float()
    assert ((x - x.bfloat16().float()).abs() / x.abs()).min() > 2.0 ** -9 * 0.99
    _, on = _both(monkeypatch, lambda: _run(x, 5, 16))
    _check_against_oracle(x, 5, 16, outs=on)


@pytest.mark.parametrize("n,distinct", [(300, 6), (1500, 30)])
def test_crowds_of_duplicates_overflow_the_candidates(monkeypatch, n, distinct):
    # 50 copies of each token (more than the candidate slots) and a little noise on a few.
    g = torch.Generator().manual_seed(2)
    x = torch.randn(distinct, 32, generator=g).repeat_interleave(n // distinct, 0)[None].clone()
    x[0, ::7] += 1e-3 * torch.randn(x[0, ::7].shape, generator=g)
    x = x[:, torch.randperm(n, generator=g)]
    for include_self in (True, False):
        off, on = _both(monkeypatch, lambda inc=include_self: _run(x, 5, 8, inc))
        _check_against_oracle(x, 5, 8, include_self, outs=on)
        assert torch.equal(off[1][1], on[1][1])


@pytest.mark.parametrize("scale", [1e15, 1e-18])
def test_extreme_scales(monkeypatch, scale):
    x = tokens(2, 256, 32) * scale
    _, on = _both(monkeypatch, lambda: _run(x, 4, 12))
    _check_against_oracle(x, 4, 12, outs=on)


def test_mask_and_merge(monkeypatch):
    x = tokens(4, 256, 40)
    mask = random_mask(4, 256, 190)
    weight = torch.rand(4, 256)
    off, on = _both(monkeypatch, lambda: ops.dpc_cluster_merge(x, 20, 5, mask=mask, weight=weight))
    assert torch.equal(off[0], on[0]) and torch.equal(off[1], on[1])
    close(on[2], off[2])
    want_c, want_a = oracle.dpc_cluster(x, 20, 5, mask)
    assert torch.equal(on[0], want_c) and torch.equal(on[1], want_a)


def test_independent_of_threads(monkeypatch):
    # One sample's tile pairs split between threads, their candidates merged after.
    x = tokens(1, 1100, 16)
    monkeypatch.setenv("EMOLLM_CPU_BF16", "1")
    threads = torch.get_num_threads()
    try:
        with ops.use_backend("cpu"):
            torch.set_num_threads(1)
            one = _run(x, 5, 24)
            torch.set_num_threads(2)
            two = _run(x, 5, 24)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], two[0])
    assert torch.equal(one[1][0], two[1][0]) and torch.equal(one[1][1], two[1][1])


def test_antipodal_tokens_at_the_largest_allowed_norm(monkeypatch):
    # ||x||^2 just under float32's largest / 4 (what the kernels accept) and every component rounding
    # up in bfloat16: ||x_i||^2 + ||x_j||^2 - 2 g overflowed float32 before the sum was halved.
    f = 1 + 2.0 ** -8 + 2.0 ** -20
    v = torch.tensor([2.0 ** e * f for e in [62] * 3 + [61] * 3 + [60] * 3 + [59] * 2])
    assert float((v * v).sum()) <= torch.finfo(torch.float32).max / 4
    x = (-v).repeat(6, 1)
    x[0] = v
    x = x[None].contiguous()
    for include_self in (True, False):
        off, on = _both(monkeypatch, lambda inc=include_self: (
            ops.knn_density(x, 2, include_self=inc), ops.dpc_cluster(x, 2, 2, include_self=inc)))
        assert torch.equal(on[0], off[0])
        assert torch.equal(on[1][0], off[1][0]) and torch.equal(on[1][1], off[1][1])
        torch.testing.assert_close(on[0].double(), oracle.knn_density(x, 2, include_self=include_self))
        assert torch.equal(on[1][0], oracle.dpc_cluster(x, 2, 2, include_self=include_self)[0])


def test_rows_rounded_tile_by_tile(monkeypatch):
    # Past 2^23 values the bfloat16 copy of x is not kept whole: each tile's rows are rounded when
    # its GEMM needs them. EMOLLM_CPU_BF16_STREAM=1 forces that at a size a test can afford.
    x = tokens(1, 1300, 24)
    whole = _both(monkeypatch, lambda: _run(x, 5, 32))[1]
    monkeypatch.setenv("EMOLLM_CPU_BF16_STREAM", "1")
    tiled = _both(monkeypatch, lambda: _run(x, 5, 32))[1]
    assert torch.equal(whole[0], tiled[0])
    assert torch.equal(whole[1][0], tiled[1][0]) and torch.equal(whole[1][1], tiled[1][1])
    _check_against_oracle(x, 5, 32, outs=tiled)

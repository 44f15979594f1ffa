"""float32 tokens on tensor cores: the ``bf16x3`` dot mode (kernels/_common.py ``split_dot``).

In the interpreter the split runs bit for bit as on a GPU (the same bf16 parts, rounded on their
bits; the three products are exact in float32 either way): only the order of the float32 sums
differs. So these tests check the split, its error bound and the ops against the oracle; the GPU
check (tests/kernels/test_triton_gpu.py) runs the same ops on the tensor cores.
"""

import pytest
import torch
import triton
import triton.language as tl

from emollm import ops
from emollm.kernels import _common, _launch
from tests import oracle
from tests.kernels.helpers import needs_triton
from tests.kernels.helpers import triton as on_triton
from tests.ops.helpers import close, close_dist, tokens, with_duplicates

pytestmark = [pytest.mark.triton, needs_triton]


@pytest.fixture(autouse=True)
def split_mode():
    with _launch.f32_dot_mode("bf16x3"):
        yield


@triton.jit
def _split_kernel(x_ptr, hi_ptr, lo_ptr, N: tl.constexpr):
    offs = tl.arange(0, N)
    a = tl.load(x_ptr + offs)
    hi = _common.round_bf16(a)
    tl.store(hi_ptr + offs, hi)
    tl.store(lo_ptr + offs, _common.round_bf16(a - hi))


@triton.jit
def _gram_kernel(x_ptr, out_ptr, D, M: tl.constexpr, BLOCK_D: tl.constexpr, DOT: tl.constexpr):
    rows = tl.arange(0, M)
    ok = rows < M
    acc = _common.gram_tile(tl.zeros((M, M), tl.float32), x_ptr, rows * D, ok, rows * D, ok, D, BLOCK_D, DOT)
    tl.store(out_ptr + rows[:, None] * M + rows[None, :], acc)


def _parts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    hi = x.to(torch.bfloat16).float()
    return hi, (x - hi).to(torch.bfloat16).float()


def test_the_split_rounds_to_nearest_even_like_torch():
    """Halfway cases, tiny and huge magnitudes, both signs."""
    x = torch.randn(1024, dtype=torch.float64) * torch.logspace(-30, 30, 1024, dtype=torch.float64)
    x = x.float()
    halfway = (torch.randn(1024).to(torch.bfloat16).float().view(torch.int32) + 0x8000).view(torch.float32)
    x = torch.cat([x[:512], halfway, -x[512:]])  # 2048 values
    assert x.numel() == 2048
    hi, lo = torch.empty_like(x), torch.empty_like(x)
    _split_kernel[(1,)](x, hi, lo, 2048)
    want_hi, want_lo = _parts(x)
    assert torch.equal(hi, want_hi) and torch.equal(lo, want_lo)


def test_the_split_dot_is_within_its_bound():
    """The emulated tile equals lo·hi' + hi·lo' + hi·hi' of torch's own bf16 parts (up to float32
    summation order), and its error against the exact Gram stays within SPLIT_ERROR per product."""
    m, d = 32, 203
    x = (torch.randn(m, d) * torch.logspace(-2, 2, d)).float()
    out = torch.empty(m, m)
    _gram_kernel[(1,)](x, out, d, m, 64, _common.DOT_BF16X3_EMULATED)
    hi, lo = (p.double() for p in _parts(x))
    parts = lo @ hi.T + hi @ lo.T + hi @ hi.T
    exact = x.double() @ x.double().T
    absolute = x.double().abs() @ x.double().abs().T  # sum of |x_k y_k|
    f32_sums = 2 * d * torch.finfo(torch.float32).eps * absolute
    assert ((out.double() - parts).abs() <= f32_sums).all()
    error = (out.double() - exact).abs()
    assert (error <= (_common.SPLIT_ERROR[_common.DOT_BF16X3] * absolute + f32_sums)).all()
    # ... and the split matters: it is far more accurate than one bf16 product, far less than ieee.
    one_part = (hi @ hi.T - exact).abs().max()
    assert error.max() < one_part / 100


def test_the_bound_grows_by_the_split_error():
    ieee = _common.gram_rounding(1024, torch.float32, _common.DOT_IEEE)
    split = _common.gram_rounding(1024, torch.float32, _common.DOT_BF16X3)
    assert split == pytest.approx(ieee + 4 * 2.0**-16)
    x = torch.zeros(1, 2, 4)
    assert _common.dot_mode(x) == _common.DOT_BF16X3_EMULATED
    with _launch.f32_dot_mode("ieee"):
        assert _common.dot_mode(x) == _common.DOT_IEEE
    assert _common.dot_mode(x.to(torch.bfloat16)) == _common.DOT_IEEE  # interpreter: upcast bf16
    assert _common.dot_mode(x.double()) == _common.DOT_IEEE


@pytest.mark.parametrize("k", [1, 5])
def test_knn_density_matches_the_oracle(k):
    x = with_duplicates(tokens(2, 90, 40, seed=k), seed=k)
    close(on_triton(ops.knn_density, x, k), oracle.knn_density(x, k))


def test_clip_like_offsets_and_duplicates():
    """A large common offset (centred by the prologue) and exact duplicates: near-ties everywhere,
    each re-decided from differences within the split's wider bound."""
    x = with_duplicates(tokens(1, 120, 48, seed=7), seed=7)
    x = x + 30 * torch.randn(1, 1, 48, generator=torch.Generator().manual_seed(0))
    rho = oracle.knn_density(x, 3).float()
    delta, parent = on_triton(ops.dpc_delta, x, rho)
    want_delta, want_parent = oracle.dpc_delta(x, rho)
    assert torch.equal(parent, want_parent)
    close_dist(delta, want_delta, "triton")
    centers, assign = on_triton(ops.dpc_cluster, x, 12, 3)
    want_c, want_a = oracle.dpc_cluster(x, 12, 3)
    assert torch.equal(centers, want_c) and torch.equal(assign, want_a)


def test_env_switch(monkeypatch):
    monkeypatch.setenv("EMOLLM_TRITON_F32_DOT", "bf16x3")
    with _launch.f32_dot_mode("ieee"):  # the context wins over the environment
        assert _launch.f32_dot() == "ieee"
    token = _launch._f32_dot.set(None)
    try:
        assert _launch.f32_dot() == "bf16x3"
        monkeypatch.setenv("EMOLLM_TRITON_F32_DOT", "tf32")
        with pytest.raises(ValueError, match="EMOLLM_TRITON_F32_DOT"):
            _launch.f32_dot()
    finally:
        _launch._f32_dot.reset(token)

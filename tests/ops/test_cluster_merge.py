import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from emollm import ops
from tests import oracle
from tests.ops.helpers import close, tokens


def _assign(b, n, c, seed=0, drop=0.2):
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, c, (b, n), generator=g)
    return a.masked_fill(torch.rand(b, n, generator=g) < drop, -1)


@pytest.mark.parametrize("shape,c", [((1, 7, 3), 3), ((3, 33, 17), 5), ((2, 64, 300), 16)])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_oracle(backend, shape, c, weighted):
    x = tokens(*shape)
    assign = _assign(shape[0], shape[1], c)
    weight = torch.rand(shape[:2]) if weighted else None
    out = ops.cluster_merge(x, assign, c, weight=weight)
    assert out.shape == (shape[0], c, shape[2]) and out.dtype == x.dtype
    close(out, oracle.cluster_merge(x, assign, c, weight))


def test_empty_and_zero_weight_clusters_are_zero(backend):
    x = tokens(1, 6, 4)
    assign = torch.tensor([[0, 0, 2, 2, -1, 2]])
    weight = torch.tensor([[1.0, 2.0, 0.0, 0.0, 5.0, 0.0]])
    out = ops.cluster_merge(x, assign, 4, weight=weight)
    assert (out[0, 1] == 0).all() and (out[0, 2] == 0).all() and (out[0, 3] == 0).all()
    close(out, oracle.cluster_merge(x, assign, 4, weight))


def test_unbatched_and_float64(backend):
    x = tokens(1, 20, 5, dtype=torch.float64)
    assign = _assign(1, 20, 4)
    out = ops.cluster_merge(x[0], assign[0], 4)
    close(out, oracle.cluster_merge(x, assign, 4)[0], dtype=torch.float64)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision(backend, dtype):
    x = tokens(2, 50, 32, dtype=dtype)
    assign = _assign(2, 50, 6)
    want = oracle.cluster_merge(x, assign, 6)
    with ops.use_backend("reference"):
        ref_err = (ops.cluster_merge(x, assign, 6).double() - want).abs().max()
    err = (ops.cluster_merge(x, assign, 6).double() - want).abs().max()
    assert err <= 2 * ref_err + 1e-6


def test_gradcheck(backend):
    x = tokens(2, 9, 4, dtype=torch.float64).requires_grad_()
    w = (torch.rand(2, 9, dtype=torch.float64) + 0.1).requires_grad_()
    assign = _assign(2, 9, 3, drop=0.2)
    assert torch.autograd.gradcheck(lambda x, w: ops.cluster_merge(x, assign, 3, weight=w), (x, w))
    assert torch.autograd.gradcheck(lambda x: ops.cluster_merge(x, assign, 3), (x,))


def test_gradient_matches_oracle_autograd(backend):
    """The registered backward against autograd through a plain differentiable formula."""
    x = tokens(2, 15, 6).requires_grad_()
    w = torch.rand(2, 15).requires_grad_()
    assign = _assign(2, 15, 4)
    g = torch.randn(2, 4, 6)
    (ops.cluster_merge(x, assign, 4, weight=w) * g).sum().backward()
    onehot = torch.nn.functional.one_hot(assign.clamp_min(0), 4).float() * (assign >= 0)[..., None]
    x2, w2 = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    ww = onehot * w2[..., None]  # [B,N,C]
    mean = (ww.transpose(1, 2) @ x2) / ww.sum(1)[..., None].clamp_min(1e-30)
    (mean * g).sum().backward()
    close(x.grad, x2.grad)
    close(w.grad, w2.grad)


@given(b=st.integers(1, 3), n=st.integers(1, 20), d=st.integers(1, 9), c=st.integers(1, 6), weighted=st.booleans(),
       seed=st.integers(0, 2**16))
def test_property_matches_oracle(b, n, d, c, weighted, seed):
    x = tokens(b, n, d, seed=seed)
    assign = _assign(b, n, c, seed)
    weight = torch.rand(b, n, generator=torch.Generator().manual_seed(seed)) if weighted else None
    want = oracle.cluster_merge(x, assign, c, weight)
    for name in ("reference", "cpu"):
        if name in ops.available_backends():
            with ops.use_backend(name):
                close(ops.cluster_merge(x, assign, c, weight=weight), want)


def test_opcheck(backend):
    x = tokens(2, 12, 5)
    assign = _assign(2, 12, 3)
    torch.library.opcheck(torch.ops.emollm.cluster_merge.default, (x, assign, 3, None))
    torch.library.opcheck(torch.ops.emollm.cluster_merge.default, (x.requires_grad_(), assign, 3, torch.rand(2, 12)))


def test_ignored_and_padded_tokens_may_hold_nan(backend):
    x = tokens(1, 4, 3).requires_grad_(False)
    x[0, 3] = float("nan")
    assign = torch.tensor([[0, 0, 1, -1]])
    w = torch.rand(1, 4, requires_grad=True)
    xg = x.clone().requires_grad_()
    out = ops.cluster_merge(xg, assign, 2, weight=w)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(xg.grad).all() and torch.isfinite(w.grad).all()
    # A NaN inside a cluster is bad input.
    with pytest.raises(ValueError, match="NaN or Inf in a token that is merged"):
        ops.cluster_merge(x, torch.tensor([[0, 0, 1, 1]]), 2)


def test_strided_assign_and_weight(backend):
    """Transposed views of assign and weight (and x) read as their logical values."""
    x = tokens(3, 6, 10).transpose(1, 2)  # [3,10,6]
    assign = _assign(10, 3, 4).t()  # [3,10], column-major
    weight = torch.rand(10, 3, generator=torch.Generator().manual_seed(1)).t()
    assert not (x.is_contiguous() or assign.is_contiguous() or weight.is_contiguous())
    close(ops.cluster_merge(x, assign, 4, weight=weight), oracle.cluster_merge(x, assign, 4, weight))

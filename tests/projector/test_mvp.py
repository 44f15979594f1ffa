import pytest
import torch

from emollm import ops
from emollm.projector import MVPProjector, stage_k
from tests.ops.helpers import random_mask, tokens


def _model(**kw):
    torch.manual_seed(0)
    return MVPProjector(24, 16, **kw)


@pytest.mark.parametrize("combine,count", [("sum", 112), ("concat", 224)])
def test_output_shape(backend, combine, count):
    m = _model(combine=combine)
    assert m.num_tokens == count
    out = m(tokens(2, 256, 24))
    assert out.shape == (2, count, 16) and torch.isfinite(out).all()


def test_backends_agree():
    m = _model()
    x = tokens(3, 200, 24)
    outs = {}
    for name in ops.available_backends():
        if name in ("reference", "cpu"):
            with ops.use_backend(name):
                outs[name] = m(x)
    assert len(outs) == 2
    torch.testing.assert_close(outs["cpu"], outs["reference"], rtol=1e-4, atol=1e-5)


def test_padded_tokens_change_nothing(backend):
    m = _model()
    x = tokens(2, 150, 24)
    mask = random_mask(2, 150, 100)
    out = m(x, mask)
    garbage = torch.where(mask[..., None], x, 50 * torch.randn_like(x))
    torch.testing.assert_close(m(garbage, mask), out)
    # And equals running on the real tokens alone, sample by sample.
    for s in range(2):
        torch.testing.assert_close(m(x[s : s + 1, mask[s]]), out[s : s + 1], rtol=1e-5, atol=1e-6)


@pytest.mark.not_interpreted
def test_gradients_reach_parameters_and_tokens(backend):
    m = _model()
    x = tokens(2, 128, 24).requires_grad_()
    m(x).square().sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


@pytest.mark.not_interpreted
def test_gradcheck_through_projector(backend):
    m = _model(stages=((8, 3), (4, 3))).double()
    x = tokens(1, 20, 24, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(m, (x,))


@pytest.mark.not_interpreted
def test_follows_input_dtype(backend):
    m = _model()
    x = tokens(2, 128, 24)
    assert m(x.bfloat16()).dtype == torch.bfloat16
    mb = _model().to(torch.bfloat16)
    out = mb(x.bfloat16())
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    # Later stages cluster bf16-rounded means, so only the first stage must match float32 exactly.
    xb = x.bfloat16()
    assert torch.equal(mb.cluster(xb)[0][1], m.cluster(xb.float())[0][1])


@pytest.mark.not_interpreted
def test_compile_fullgraph(backend):
    torch._dynamo.reset()
    m = _model()
    x = tokens(2, 128, 24).requires_grad_()
    mask = random_mask(2, 128, 100)
    compiled = torch.compile(m, fullgraph=True, dynamic=False)
    out = compiled(x, mask)
    torch.testing.assert_close(out, m(x, mask), rtol=1e-4, atol=1e-5)
    out.sum().backward()
    assert x.grad is not None


def test_small_stage_k_rule():
    assert stage_k(64, 5) == 5
    assert stage_k(4, 5) == 2  # k > C: min(3, max(C // 2, 1))
    assert stage_k(1, 3) == 1
    assert _model(stages=((8, 3), (2, 5))).stages == ((8, 3), (2, 1))


@pytest.mark.not_interpreted
def test_alpha_scales_content(backend):
    m0, m2 = _model(alpha=0.0), _model(alpha=2.0)
    x = tokens(1, 100, 24)
    rel = m0(x)
    content = (m2(x) - rel) / 2
    m1 = _model(alpha=1.0)
    torch.testing.assert_close(m1(x), rel + content, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs,match", [
    (dict(combine="mean"), "combine must be"),
    (dict(tau=1.5), "tau must lie"),
    (dict(stages=()), "at least one"),
    (dict(stages=((0, 3),)), "num_clusters >= 1"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MVPProjector(8, 8, **kwargs)


def test_bad_input():
    m = _model()
    with pytest.raises(ValueError, match=r"x must be \[B,N,24\]"):
        m(tokens(2, 100, 12))
    with pytest.raises(ValueError, match="num_clusters=64 exceeds"):
        m(tokens(2, 50, 24))
    with pytest.raises(ValueError, match="num_clusters=64 needs 64 valid tokens"):
        m(tokens(2, 100, 24), random_mask(2, 100, 40))


@pytest.mark.parametrize("dims,error", [((-3, 6), ValueError), ((8, 0), ValueError), ((8.0, 6), TypeError),
                                        ((True, 6), TypeError)])
def test_dimensions_are_checked_by_name(dims, error):
    with pytest.raises(error, match=r"in_dim|out_dim"):
        MVPProjector(*dims)

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from emollm import ops
from tests import oracle
from tests.ops.helpers import close, random_mask, tokens, with_duplicates

pytestmark = pytest.mark.ops("knn_density")


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("shape", [(1, 7, 3), (3, 33, 17), (2, 64, 1), (1, 300, 9)])
@pytest.mark.parametrize("k", [3, 5])
def test_matches_oracle(backend, shape, k, include_self):
    x = tokens(*shape)
    rho = ops.knn_density(x, k, include_self=include_self)
    assert rho.dtype == torch.float32 and rho.shape == shape[:2]
    close(rho, oracle.knn_density(x, k, include_self=include_self))


@pytest.mark.parametrize("include_self", [True, False])
def test_mask(backend, include_self):
    x = tokens(3, 29, 6)
    mask = random_mask(3, 29, keep=17)
    rho = ops.knn_density(x, 4, mask=mask, include_self=include_self)
    close(rho, oracle.knn_density(x, 4, mask, include_self))
    assert (rho[~mask] == 0).all()
    # Padded tokens change nothing: overwrite them and get the same densities.
    garbage = torch.where(mask[..., None], x, 1e3 * torch.randn_like(x))
    assert torch.equal(ops.knn_density(garbage, 4, mask=mask, include_self=include_self), rho)


def test_unbatched(backend):
    x = tokens(1, 21, 5)
    rho = ops.knn_density(x[0], 3)
    assert rho.shape == (21,)
    close(rho, oracle.knn_density(x, 3)[0])


def test_float64(backend):
    x = tokens(2, 19, 7, dtype=torch.float64)
    rho = ops.knn_density(x, 3)  # computed in float64, returned as float32 (the contract)
    torch.testing.assert_close(rho.double(), oracle.knn_density(x, 3), rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision(backend, dtype):
    """flash-attention's rule: error <= 2x the reference's own error in that dtype (+ a floor)."""
    x = tokens(2, 40, 16, dtype=dtype)
    want = oracle.knn_density(x, 4)
    with ops.use_backend("reference"):
        ref_err = (ops.knn_density(x, 4).double() - want).abs().max()
    err = (ops.knn_density(x, 4).double() - want).abs().max()
    assert err <= 2 * ref_err + 1e-5


def test_duplicates(backend):
    x = with_duplicates(tokens(2, 30, 4))
    for include_self in (True, False):
        close(ops.knn_density(x, 3, include_self=include_self), oracle.knn_density(x, 3, include_self=include_self),
              scale=10)


def test_k_equals_valid_tokens(backend):
    x = tokens(2, 6, 3)
    close(ops.knn_density(x, 6), oracle.knn_density(x, 6))
    close(ops.knn_density(x, 5, include_self=False), oracle.knn_density(x, 5, include_self=False))


@given(b=st.integers(1, 3), n=st.integers(2, 24), d=st.integers(1, 9), k=st.integers(1, 6),
       keep=st.floats(0.3, 1.0), dup=st.booleans(), include_self=st.booleans(), seed=st.integers(0, 2**16))
def test_property_matches_oracle(b, n, d, k, keep, dup, include_self, seed):
    x = tokens(b, n, d, seed=seed)
    if dup:
        x = with_duplicates(x, seed)
    valid = max(int(keep * n), k + (0 if include_self else 1))
    if valid > n:
        return
    mask = random_mask(b, n, valid, seed) if valid < n else None
    want = oracle.knn_density(x, k, mask, include_self)
    for name in ops.available_backends():
        if name in ("reference", "cpu"):
            with ops.use_backend(name):
                close(ops.knn_density(x, k, mask=mask, include_self=include_self), want, scale=10)


def test_opcheck(backend):
    x = tokens(2, 12, 5)
    mask = random_mask(2, 12, 9)
    for args in [(x, 3, None, True), (x, 2, mask, False)]:
        torch.library.opcheck(torch.ops.emollm.knn_density.default, args)


def test_padded_tokens_may_hold_nan(backend):
    x = tokens(2, 12, 4)
    mask = random_mask(2, 12, 8)
    bad = x.masked_fill(~mask[..., None], float("nan"))
    assert torch.equal(ops.knn_density(bad, 3, mask=mask), ops.knn_density(x, 3, mask=mask))
    _, assign = ops.dpc_cluster(bad, 3, 3, mask=mask)
    assert torch.equal(assign, ops.dpc_cluster(x, 3, 3, mask=mask)[1])
    assert torch.equal(ops.gcn_adjacency(bad, 0.5, mask=mask).bits, ops.gcn_adjacency(x, 0.5, mask=mask).bits)

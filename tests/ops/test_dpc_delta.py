import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from emollm import ops
from tests import oracle
from tests.ops.helpers import close_dist, random_mask, tokens, with_duplicates


def _check(x, rho, backend, mask=None):
    delta, parent = ops.dpc_delta(x, rho, mask=mask)
    want_delta, want_parent = oracle.dpc_delta(x, rho.double(), mask)
    assert delta.dtype == torch.float32 and parent.dtype == torch.int64
    close_dist(delta, want_delta, backend)
    return parent, want_parent


@pytest.mark.parametrize("shape", [(1, 5, 3), (3, 33, 17), (2, 64, 1), (1, 300, 9)])
def test_matches_oracle(backend, shape):
    x = tokens(*shape)
    rho = oracle.knn_density(x, 4).float()
    parent, want = _check(x, rho, backend)
    assert torch.equal(parent, want)


def test_mask(backend):
    x = tokens(3, 31, 6)
    mask = random_mask(3, 31, keep=20)
    rho = oracle.knn_density(x, 3, mask).float()
    parent, want = _check(x, rho, backend, mask)
    assert torch.equal(parent, want)
    delta, parent = ops.dpc_delta(x, rho, mask=mask)
    assert (delta[~mask] == 0).all()
    assert torch.equal(parent[~mask], torch.arange(31).expand(3, -1)[~mask])


def test_unbatched(backend):
    x = tokens(1, 21, 5)
    rho = oracle.knn_density(x, 3).float()
    delta, parent = ops.dpc_delta(x[0], rho[0])
    want_delta, want_parent = oracle.dpc_delta(x, rho.double())
    close_dist(delta, want_delta[0], backend)
    assert torch.equal(parent, want_parent[0])


def test_peak_gets_largest_distance(backend):
    x = tokens(2, 17, 4)
    rho = oracle.knn_density(x, 3).float()
    delta, parent = ops.dpc_delta(x, rho)
    peak = rho.argmax(-1)
    d_max = torch.stack([oracle.sqdist(x[s]).sqrt().max() for s in range(2)])
    close_dist(delta.gather(1, peak[:, None])[:, 0], d_max, backend)
    assert torch.equal(parent.gather(1, peak[:, None])[:, 0], peak)


def test_equal_density_ties_go_to_lower_index(backend):
    """With all densities equal, token i's denser set is every j < i."""
    x = tokens(1, 12, 3)
    rho = torch.ones(1, 12)
    parent, want = _check(x, rho, backend)
    assert torch.equal(parent, want)
    assert parent[0, 0] == 0  # token 0 is the peak


def test_duplicates(backend):
    """Exact duplicates with exactly tied densities: distances within the Gram tolerance."""
    x = with_duplicates(tokens(2, 30, 4))
    rho = oracle.knn_density(x, 3).float()
    # A duplicate's distance to its twin is 0 in exact arithmetic but sqrt(rounding) from a Gram.
    delta, _ = ops.dpc_delta(x, rho)
    want_delta, _ = oracle.dpc_delta(x, rho.double())
    torch.testing.assert_close(delta.double(), want_delta, atol=2e-3, rtol=1e-4)


def test_float64(backend):
    x = tokens(2, 19, 7, dtype=torch.float64)
    rho = oracle.knn_density(x, 3).float()
    delta, parent = ops.dpc_delta(x, rho)
    want_delta, want_parent = oracle.dpc_delta(x, rho.double())
    torch.testing.assert_close(delta.double(), want_delta, rtol=1e-7, atol=1e-12)
    assert torch.equal(parent, want_parent)


@given(b=st.integers(1, 3), n=st.integers(1, 24), d=st.integers(1, 9), keep=st.floats(0.05, 1.0),
       seed=st.integers(0, 2**16))
def test_property_matches_oracle(b, n, d, keep, seed):
    x = tokens(b, n, d, seed=seed)
    valid = max(1, int(keep * n))
    mask = random_mask(b, n, valid, seed) if valid < n else None
    rho = torch.rand(b, n, generator=torch.Generator().manual_seed(seed))
    want_delta, want_parent = oracle.dpc_delta(x, rho.double(), mask)
    for name in ("reference", "cpu"):
        if name in ops.available_backends():
            with ops.use_backend(name):
                delta, parent = ops.dpc_delta(x, rho, mask=mask)
            close_dist(delta, want_delta, name, scale=10)
            assert torch.equal(parent, want_parent)


def test_opcheck(backend):
    x = tokens(2, 12, 5)
    rho = oracle.knn_density(x, 3).float()
    torch.library.opcheck(torch.ops.emollm.dpc_delta.default, (x, rho, None))
    torch.library.opcheck(torch.ops.emollm.dpc_delta.default, (x, rho, random_mask(2, 12, 7)))


def test_twins_in_different_tiles_tie_to_the_lower_index(backend):
    """Every token twice, 300 apart, so the copies sit in different Gram tiles (different BLAS
    calls, different rounding): equidistant denser candidates must still go to the lower index."""
    half = tokens(1, 300, 41, seed=5)
    x = torch.cat([half, half], 1)
    rho = oracle.knn_density(x, 3).float()
    delta, parent = ops.dpc_delta(x, rho)
    want_delta, want_parent = oracle.dpc_delta(x, rho.double())
    close_dist(delta, want_delta, backend)
    if backend != "reference":  # the reference's twin distances carry Gram rounding (~1e-3)
        assert torch.equal(parent, want_parent)

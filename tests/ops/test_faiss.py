"""The faiss backend (exact kNN through FAISS) beyond the shared cross-backend tests."""

import pytest
import torch

from emollm import ops
from emollm.ops import _backend, _faiss
from tests import oracle
from tests.ops.helpers import close, random_mask, tokens, with_duplicates

needs_faiss = pytest.mark.skipif(not _faiss.AVAILABLE, reason="faiss is not installed (pip install emollm[faiss])")


@needs_faiss
@pytest.mark.parametrize("include_self", [True, False])
def test_duplicates(include_self):
    # Exact duplicates tie at distance 0, so FAISS may list a twin before the token itself.
    x = with_duplicates(tokens(2, 40, 8))
    mask = random_mask(2, 40, keep=31)
    with ops.use_backend("faiss"):
        rho = ops.knn_density(x, 4, mask=mask, include_self=include_self)
    close(rho, oracle.knn_density(x, 4, mask, include_self))


@needs_faiss
def test_many_copies_without_self():
    # Every token has 5 exact copies: without self, the 3 nearest are all at distance 0.
    base = tokens(1, 6, 4)
    x = base.repeat_interleave(6, dim=1)
    with ops.use_backend("faiss"):
        rho = ops.knn_density(x, 3, include_self=False)
    assert torch.equal(rho, torch.ones_like(rho))
    close(rho, oracle.knn_density(x, 3, include_self=False))


@needs_faiss
def test_close_tokens_far_from_the_origin():
    # Tiny distances next to large norms: a Gram-formula distance in float32 would lose them.
    x = tokens(1, 50, 16) * 1e-3 + 100.0
    with ops.use_backend("faiss"):
        rho = ops.knn_density(x, 3)
    expected = oracle.knn_density(x.double(), 3)
    torch.testing.assert_close(rho.double(), expected, rtol=1e-6, atol=1e-9)


@needs_faiss
def test_other_ops_fall_through():
    x = tokens(1, 30, 5)
    with ops.use_backend("faiss"):
        assert _backend.selected("knn_density", x.device) == "faiss"
        assert _backend.selected("dpc_delta", x.device) != "faiss"
        centers, assign = ops.dpc_cluster(x, 4, 3)
    ref_centers, ref_assign = oracle.dpc_cluster(x, 4, 3)
    assert torch.equal(centers, ref_centers) and torch.equal(assign, ref_assign)


def test_missing_faiss_says_how_to_install(monkeypatch):
    monkeypatch.setattr(_faiss, "AVAILABLE", False)
    ok, detail = ops.backend_status()["faiss"]
    assert not ok and "pip install emollm[faiss]" in detail
    with pytest.raises(RuntimeError, match=r"backend 'faiss' is not available: .*emollm\[faiss\]"):
        with ops.use_backend("faiss"):
            pass
    # The default path never needs FAISS.
    x = tokens(1, 12, 3)
    close(ops.knn_density(x, 3), oracle.knn_density(x, 3))

"""Tokens that share a large common offset (CLIP features have a few large, nearly constant
channels): the Gram formula's float32 cancellation would pick the wrong neighbours; the fused
backends center such samples first (``_checks.center_for_gram``) and must match the oracle."""

import pytest
import torch

from emollm import ops
from tests import oracle
from tests.ops.helpers import close

pytestmark = pytest.mark.ops("knn_density", "dpc_delta", "dpc_cluster", "dpc_cluster_merge")


def _offset_tokens(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 60, 64, generator=g)
    if kind == "uniform":
        x = x + 1000.0
    else:  # CLIP-like: three channels far larger than the rest, nearly constant across tokens
        x[..., :3] += torch.tensor([3000.0, -2000.0, 1500.0])
    mask = torch.ones(2, 60, dtype=torch.bool)
    mask[1, :7] = False
    return x, mask


@pytest.mark.parametrize("kind", ["uniform", "few-channels"])
def test_large_common_offset(backend, kind):
    x, mask = _offset_tokens(kind)
    padded = torch.where(mask[..., None], x, float("nan"))  # padding may hold anything
    rho = ops.knn_density(padded, 5, mask=mask)
    close(rho, oracle.knn_density(x, 5, mask))
    delta, parent = ops.dpc_delta(padded, rho, mask=mask)
    want_delta, want_parent = oracle.dpc_delta(x, rho, mask)
    assert torch.equal(parent, want_parent)
    close(delta, want_delta)
    centers, assign = ops.dpc_cluster(padded, 8, 5, mask=mask)
    want_centers, want_assign = oracle.dpc_cluster(x, 8, 5, mask)
    assert torch.equal(centers, want_centers) and torch.equal(assign, want_assign)
    centers, assign, merged = ops.dpc_cluster_merge(padded, 8, 5, mask=mask)
    assert torch.equal(centers, want_centers) and torch.equal(assign, want_assign)
    torch.testing.assert_close(merged.double(), oracle.cluster_merge(x, want_assign, 8), rtol=0, atol=2e-4)

import pytest
import torch

from emollm import ops
from tests import oracle
from tests.ops.helpers import close, random_mask, tokens


@pytest.mark.parametrize("shape,c", [((1, 9, 3), 3), ((3, 33, 17), 8), ((1, 300, 9), 64), ((1, 1100, 6), 16)])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_oracle(backend, shape, c, weighted):
    x = tokens(*shape)
    weight = torch.rand(shape[:2]) if weighted else None
    centers, assign, merged = ops.dpc_cluster_merge(x, c, 3, weight=weight)
    want_c, want_a = oracle.dpc_cluster(x, c, 3)
    assert torch.equal(centers, want_c) and torch.equal(assign, want_a)
    assert merged.dtype == x.dtype and merged.shape == (shape[0], c, shape[2])
    close(merged, oracle.cluster_merge(x, want_a, c, weight))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_mask_and_dtypes(backend, dtype):
    x = tokens(2, 40, 8, dtype=dtype)
    mask = random_mask(2, 40, 29)
    centers, assign, merged = ops.dpc_cluster_merge(x, 6, 3, mask=mask, include_self=False)
    want_c, want_a = oracle.dpc_cluster(x, 6, 3, mask, include_self=False)
    assert torch.equal(centers, want_c) and torch.equal(assign, want_a)
    want = oracle.cluster_merge(x, want_a, 6)
    with ops.use_backend("reference"):
        ref_err = (ops.cluster_merge(x, want_a, 6).double() - want).abs().max()
    assert (merged.double() - want).abs().max() <= 2 * ref_err + 1e-6


def test_unbatched(backend):
    x = tokens(1, 30, 5)
    centers, assign, merged = ops.dpc_cluster_merge(x[0], 4, 3)
    assert centers.shape == (4,) and assign.shape == (30,) and merged.shape == (4, 5)


@pytest.mark.not_interpreted
def test_gradients_match_separate_ops(backend):
    x = tokens(2, 20, 4, dtype=torch.float64).requires_grad_()
    w = (torch.rand(2, 20, dtype=torch.float64) + 0.1).requires_grad_()
    _, assign, _ = ops.dpc_cluster_merge(x, 5, 3)
    assert torch.autograd.gradcheck(lambda x, w: ops.dpc_cluster_merge(x, 5, 3, weight=w)[2], (x, w))
    g = torch.randn(2, 5, 4, dtype=torch.float64)
    gx, gw = torch.autograd.grad((ops.dpc_cluster_merge(x, 5, 3, weight=w)[2] * g).sum(), (x, w))
    gx2, gw2 = torch.autograd.grad((ops.cluster_merge(x, assign, 5, weight=w) * g).sum(), (x, w))
    close(gx, gx2, dtype=torch.float64)
    close(gw, gw2, dtype=torch.float64)


def test_opcheck(backend):
    x = tokens(2, 14, 5)
    torch.library.opcheck(torch.ops.emollm.dpc_cluster_merge.default, (x, 4, 3, None, True, None))
    torch.library.opcheck(torch.ops.emollm.dpc_cluster_merge.default,
                          (x.requires_grad_(), 3, 2, random_mask(2, 14, 9), False, torch.rand(2, 14)))

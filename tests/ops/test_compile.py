"""The op pipeline under torch.compile(fullgraph=True): no graph breaks, same results as eager."""

import pytest
import torch

from emollm import ops
from tests.ops.helpers import close, random_mask, tokens


def _pipeline(x, mask, weight):
    centers, assign = ops.dpc_cluster(x, 8, 3, mask=mask)
    z = ops.cluster_merge(x, assign, 8, weight=weight)
    adj = ops.gcn_adjacency(z, 0.3)
    return torch.nn.functional.gelu(ops.gcn_propagate(adj, z)), centers


def _fused_pipeline(x, mask, weight):
    centers, _, z = ops.dpc_cluster_merge(x, 8, 3, mask=mask, weight=weight)
    adj = ops.gcn_adjacency(z, 0.3)
    return torch.nn.functional.gelu(ops.gcn_propagate(adj, z)), centers


@pytest.mark.parametrize("pipeline", [_pipeline, _fused_pipeline], ids=["separate", "fused"])
def test_pipeline_fullgraph(backend, pipeline):
    torch._dynamo.reset()
    x = tokens(2, 40, 16).requires_grad_()
    mask = random_mask(2, 40, 33)
    weight = torch.rand(2, 40)
    compiled = torch.compile(pipeline, fullgraph=True, dynamic=False)
    out, centers = compiled(x, mask, weight)
    want, want_centers = pipeline(x, mask, weight)
    assert torch.equal(centers, want_centers)
    close(out, want)
    # Gradients flow through the compiled merge and propagation back to the tokens.
    (g,) = torch.autograd.grad(out.sum(), x)
    (g_eager,) = torch.autograd.grad(want.sum(), x)
    close(g, g_eager)

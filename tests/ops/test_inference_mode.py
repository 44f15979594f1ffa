"""Every op runs under torch.inference_mode() (generation loops use it) and gives the same result."""

import pytest
import torch

from emollm import ops
from tests.ops.helpers import random_mask, tokens

pytestmark = pytest.mark.ops("knn_density", "dpc_delta", "dpc_cluster", "dpc_cluster_merge", "cluster_merge",
                             "gcn_adjacency", "gcn_propagate")


def _pipeline(x, mask):
    # B=1 and B=3: the kernels parallelize inside a sample or across samples.
    centers, assign = ops.dpc_cluster(x, 6, 3, mask=mask)
    merged = ops.cluster_merge(x, assign, 6)
    c2, a2, m2 = ops.dpc_cluster_merge(x, 6, 3, mask=mask)
    graph = ops.gcn_adjacency(merged, 0.5)
    return [ops.knn_density(x, 3, mask=mask), *ops.dpc_delta(x, ops.knn_density(x, 3, mask=mask), mask=mask),
            centers, assign, merged, c2, a2, m2, graph.bits, graph.dinv, ops.gcn_propagate(graph, merged)]


@pytest.mark.not_interpreted
def test_inference_mode(backend):
    for b, n in ((1, 700), (3, 40)):
        x = tokens(b, n, 8)
        mask = random_mask(b, n, keep=n - 5)
        expected = _pipeline(x, mask)
        with torch.inference_mode():
            got = _pipeline(x, mask)
        for e, g in zip(expected, got, strict=True):
            assert torch.equal(e, g)

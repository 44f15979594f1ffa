"""Every bad input of docs/design.md#argument-checks raises a ValueError/TypeError that names the argument."""

import pytest
import torch

from emollm import ops

pytestmark = pytest.mark.ops("knn_density", "dpc_delta", "dpc_cluster", "dpc_cluster_merge", "cluster_merge",
                             "gcn_adjacency", "gcn_propagate")

X = torch.randn(2, 10, 4)
MASK = torch.ones(2, 10, dtype=torch.bool)
ASSIGN = torch.zeros(2, 10, dtype=torch.int64)
FEW = torch.zeros(2, 10, dtype=torch.bool)
FEW[:, :3] = True
NAN = X.clone()
NAN[1, 3, 2] = float("nan")
INF = X.clone()
INF[0, 0, 0] = float("inf")

CASES = {
    # knn_density
    "knn: not a tensor": (lambda: ops.knn_density([[1.0]], 1), TypeError, "x must be a torch.Tensor"),
    "knn: integer x": (lambda: ops.knn_density(torch.ones(2, 5, 3, dtype=torch.int64), 1), TypeError, "x must be a floating"),
    "knn: rank 1": (lambda: ops.knn_density(torch.randn(5), 1), ValueError, r"x must be \[N,D\] or \[B,N,D\]"),
    "knn: rank 4": (lambda: ops.knn_density(torch.randn(1, 2, 5, 3), 1), ValueError, r"x must be \[N,D\]"),
    "knn: empty N": (lambda: ops.knn_density(torch.randn(2, 0, 3), 1), ValueError, "at least one token"),
    "knn: empty D": (lambda: ops.knn_density(torch.randn(2, 5, 0), 1), ValueError, "one feature"),
    "knn: k = 0": (lambda: ops.knn_density(X, 0), ValueError, "k must be >= 1"),
    "knn: k float": (lambda: ops.knn_density(X, 2.0), TypeError, "k must be an int"),
    "knn: k > N": (lambda: ops.knn_density(X, 11), ValueError, "k=11 exceeds"),
    "knn: k = N without self": (lambda: ops.knn_density(X, 10, include_self=False), ValueError, "k=10 exceeds"),
    "knn: k > valid under mask": (lambda: ops.knn_density(X, 4, mask=FEW), ValueError, "k=4 needs 4 valid tokens"),
    "knn: mask dtype": (lambda: ops.knn_density(X, 2, mask=MASK.float()), TypeError, "mask must be a bool"),
    "knn: mask shape": (lambda: ops.knn_density(X, 2, mask=MASK[:, :5]), ValueError, "mask must have shape"),
    "knn: mask batch": (lambda: ops.knn_density(X, 2, mask=MASK[:1]), ValueError, "mask must have shape"),
    "knn: NaN": (lambda: ops.knn_density(NAN, 2), ValueError, "x contains NaN or Inf"),
    "knn: Inf": (lambda: ops.knn_density(INF, 2), ValueError, "x contains NaN or Inf"),
    # dpc_delta
    "delta: rho shape": (lambda: ops.dpc_delta(X, torch.rand(2, 9)), ValueError, "rho must have shape"),
    "delta: rho batch": (lambda: ops.dpc_delta(X, torch.rand(3, 10)), ValueError, "rho must have shape"),
    "delta: rho int": (lambda: ops.dpc_delta(X, torch.ones(2, 10, dtype=torch.int64)), TypeError, "rho must be a floating"),
    "delta: rho NaN": (lambda: ops.dpc_delta(X, torch.full((2, 10), float("nan"))), ValueError, "rho contains NaN"),
    "delta: x NaN": (lambda: ops.dpc_delta(NAN, torch.rand(2, 10)), ValueError, "x contains NaN"),
    "delta: integer x": (lambda: ops.dpc_delta(X.long(), torch.rand(2, 10)), TypeError, "x must be a floating"),
    # dpc_cluster
    "cluster: C = 0": (lambda: ops.dpc_cluster(X, 0, 3), ValueError, "num_clusters must be >= 1"),
    "cluster: C > N": (lambda: ops.dpc_cluster(X, 11, 3), ValueError, "num_clusters=11 exceeds"),
    "cluster: C > valid": (lambda: ops.dpc_cluster(X, 4, 2, mask=FEW), ValueError, "num_clusters=4 needs 4 valid"),
    "cluster: k > N": (lambda: ops.dpc_cluster(X, 3, 12), ValueError, "k=12 exceeds"),
    "cluster: k < 1": (lambda: ops.dpc_cluster(X, 3, 0), ValueError, "k must be >= 1"),
    "cluster: NaN": (lambda: ops.dpc_cluster(NAN, 3, 3), ValueError, "x contains NaN"),
    "cluster: mask shape": (lambda: ops.dpc_cluster(X, 3, 3, mask=MASK.T), ValueError, "mask must have shape"),
    # dpc_cluster_merge
    "fused: C > valid": (lambda: ops.dpc_cluster_merge(X, 4, 2, mask=FEW), ValueError, "num_clusters=4 needs 4 valid"),
    "fused: k > N": (lambda: ops.dpc_cluster_merge(X, 3, 12), ValueError, "k=12 exceeds"),
    "fused: weight shape": (lambda: ops.dpc_cluster_merge(X, 3, 3, weight=torch.rand(2, 4)), ValueError, "weight must have shape"),
    "fused: weight negative": (lambda: ops.dpc_cluster_merge(X, 3, 3, weight=-torch.rand(2, 10)), ValueError, "weight must be >= 0"),
    "fused: NaN": (lambda: ops.dpc_cluster_merge(NAN, 3, 3), ValueError, "x contains NaN"),
    # cluster_merge
    "merge: assign above C": (lambda: ops.cluster_merge(X, ASSIGN + 3, 3), ValueError, r"assign values must lie in \[-1, 2\]"),
    "merge: assign below -1": (lambda: ops.cluster_merge(X, ASSIGN - 2, 3), ValueError, "assign values must lie"),
    "merge: assign float": (lambda: ops.cluster_merge(X, ASSIGN.float(), 3), TypeError, "assign must be an int64"),
    "merge: assign shape": (lambda: ops.cluster_merge(X, ASSIGN[:, :4], 3), ValueError, "assign must have shape"),
    "merge: C = 0": (lambda: ops.cluster_merge(X, ASSIGN, 0), ValueError, "num_clusters must be >= 1"),
    "merge: weight shape": (lambda: ops.cluster_merge(X, ASSIGN, 2, weight=torch.rand(2, 3)), ValueError, "weight must have shape"),
    "merge: weight negative": (lambda: ops.cluster_merge(X, ASSIGN, 2, weight=-torch.rand(2, 10)), ValueError, "weight must be >= 0"),
    "merge: weight int": (lambda: ops.cluster_merge(X, ASSIGN, 2, weight=torch.ones(2, 10, dtype=torch.int64)), TypeError, "weight must be a floating"),
    "merge: integer x": (lambda: ops.cluster_merge(X.long(), ASSIGN, 2), TypeError, "x must be a floating"),
    # gcn
    "adj: tau > 1": (lambda: ops.gcn_adjacency(X, 1.5), ValueError, r"tau must lie in \[0, 1\]"),
    "adj: tau < 0": (lambda: ops.gcn_adjacency(X, -0.1), ValueError, r"tau must lie in \[0, 1\]"),
    "adj: tau tensor": (lambda: ops.gcn_adjacency(X, torch.tensor(0.1)), TypeError, "tau must be a float"),
    "adj: integer z": (lambda: ops.gcn_adjacency(X.long(), 0.1), TypeError, "z must be a floating"),
    "adj: NaN": (lambda: ops.gcn_adjacency(NAN, 0.1), ValueError, "z contains NaN"),
    "adj: mask shape": (lambda: ops.gcn_adjacency(X, 0.1, mask=MASK[:, :3]), ValueError, "mask must have shape"),
    "propagate: not a graph": (lambda: ops.gcn_propagate(X, X), TypeError, "adj must be the GCNGraph"),
    "propagate: node count": (lambda: ops.gcn_propagate(ops.gcn_adjacency(X, 0.1), X[:, :5]), ValueError, "adj.bits must be"),
    "propagate: batch": (lambda: ops.gcn_propagate(ops.gcn_adjacency(X, 0.1), X[:1]), ValueError, "adj.bits must be"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_raises(backend, case):
    fn, exc, match = CASES[case]
    with pytest.raises(exc, match=match):
        fn()


def test_device_mismatch():
    # A meta tensor stands in for another device: the check fires before any data is read.
    with pytest.raises(ValueError, match="mask is on cpu but the input is on meta"):
        ops.knn_density(X.to("meta"), 2, mask=MASK)
    with pytest.raises(ValueError, match="assign is on"):
        ops.cluster_merge(X, ASSIGN.to("meta"), 2)
    with pytest.raises(ValueError, match="rho is on"):
        ops.dpc_delta(X, torch.rand(2, 10, device="meta"))

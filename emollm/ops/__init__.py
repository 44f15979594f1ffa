"""The op API: DPC-KNN clustering and the sparse normalized GCN (DESIGN.md §3).

Each op is a ``torch.library`` custom op (``torch.ops.emollm.<op>``) with a fake kernel (and
autograd where differentiable), so it works under ``torch.compile(fullgraph=True)``. Which
implementation runs is chosen per call by :mod:`emollm.ops._backend`.
"""

# Optional backends register themselves when their dependency is installed.
from emollm import kernels as _kernels
from emollm.ops import _cuda, _faiss, reference  # noqa: F401  (register the reference, cuda and faiss backends)
from emollm.ops._backend import available_backends, backend_status, use_backend
from emollm.ops.cluster_merge import cluster_merge
from emollm.ops.dpc_cluster import dpc_cluster
from emollm.ops.dpc_cluster_merge import dpc_cluster_merge
from emollm.ops.dpc_delta import dpc_delta
from emollm.ops.gcn import GCNGraph, gcn_adjacency, gcn_propagate
from emollm.ops.knn_density import knn_density

_kernels.load()

__all__ = [
    "GCNGraph",
    "available_backends",
    "backend_status",
    "cluster_merge",
    "dpc_cluster",
    "dpc_cluster_merge",
    "dpc_delta",
    "gcn_adjacency",
    "gcn_propagate",
    "knn_density",
    "use_backend",
]

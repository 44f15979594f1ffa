"""The op API: DPC-KNN clustering and the sparse normalized GCN (docs/design.md#ops).

Each op is a ``torch.library`` custom op (``torch.ops.emollm.<op>``) with a fake kernel (and
autograd where differentiable), so it works under ``torch.compile(fullgraph=True)``. Which
implementation runs is chosen per call by :mod:`emollm.ops._backend`, among the backends that
declare themselves in the modules of ``BACKEND_MODULES``.
"""

import importlib

from emollm.ops._backend import Backend, available_backends, backend_status, backends, use_backend
from emollm.ops.cluster_merge import cluster_merge
from emollm.ops.dpc_cluster import dpc_cluster
from emollm.ops.dpc_cluster_merge import dpc_cluster_merge
from emollm.ops.dpc_delta import dpc_delta
from emollm.ops.gcn import GCNGraph, gcn_adjacency, gcn_propagate
from emollm.ops.knn_density import knn_density

# Each module declares one backend (a Backend record) and registers its implementations.
BACKEND_MODULES = ("emollm.ops.reference", "emollm.ops._cpu", "emollm.ops._triton", "emollm.ops._cuda",
                   "emollm.ops._faiss")
for _module in BACKEND_MODULES:
    importlib.import_module(_module)

__all__ = [
    "Backend",
    "GCNGraph",
    "available_backends",
    "backend_status",
    "backends",
    "cluster_merge",
    "dpc_cluster",
    "dpc_cluster_merge",
    "dpc_delta",
    "gcn_adjacency",
    "gcn_propagate",
    "knn_density",
    "use_backend",
]

"""The ``cuda`` backend: the CUDA kernels of ``emollm._C`` (csrc/cuda, built with CUDA).

``knn_density``, ``dpc_delta`` and ``dpc_cluster`` (knn_density, dpc_delta, a stable top-C of
``rho * delta`` and the nearest-center kernel); the other ops fall through to the automatic
choice. The kernels keep a row's k nearest one per lane of a warp, so they take ``k <= 32``;
a larger ``k`` runs on the next backend of the automatic order (``triton``, else
``reference``), since the paper's stages use k = 5 and 3.
"""

from __future__ import annotations

from emollm import _extension
from emollm.ops import _backend

MAX_K = 32


def _fallback(op: str):
    """The implementation of ``op`` that runs where the cuda kernels do not: triton, else reference."""
    impls = _backend._impls[op]
    if "triton" in impls and _backend._status["triton"]()[0]:
        return impls["triton"]
    return impls["reference"]


@_backend.register("knn_density", "cuda")
def knn_density(x, k, mask, include_self):
    if k > MAX_K:
        return _fallback("knn_density")(x, k, mask, include_self)
    return _extension.C.ops.knn_density(x, k, mask, include_self)


@_backend.register("dpc_delta", "cuda")
def dpc_delta(x, rho, mask):
    return tuple(_extension.C.ops.dpc_delta(x, rho, mask))


@_backend.register("dpc_cluster", "cuda")
def dpc_cluster(x, num_clusters, k, mask, include_self):
    if k > MAX_K:
        return _fallback("dpc_cluster")(x, num_clusters, k, mask, include_self)
    return tuple(_extension.C.ops.dpc_cluster(x, num_clusters, k, mask, include_self))

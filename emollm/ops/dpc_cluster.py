"""``dpc_cluster``: DPC-KNN clustering, density peaks as centers, tokens to the nearest center."""

from __future__ import annotations

import torch
from torch import Tensor

from emollm.ops import _backend, _checks

_backend.define(_backend.OpContract("dpc_cluster", tokens="x", mask="mask", centered=True))


@torch.library.custom_op("emollm::dpc_cluster", mutates_args=())
def _dpc_cluster(x: Tensor, num_clusters: int, k: int, mask: Tensor | None,
                 include_self: bool) -> tuple[Tensor, Tensor]:
    _checks.check_valid_count(mask, k, k if include_self else k + 1, "k")
    _checks.check_valid_count(mask, num_clusters, num_clusters, "num_clusters")
    return _backend.call("dpc_cluster", x=x, num_clusters=num_clusters, k=k, mask=mask, include_self=include_self)


@_dpc_cluster.register_fake
def _(x, num_clusters, k, mask, include_self):
    b, n = x.shape[:2]
    return x.new_empty((b, num_clusters), dtype=torch.int64), x.new_empty((b, n), dtype=torch.int64)


def dpc_cluster(x: Tensor, num_clusters: int, k: int, *, mask: Tensor | None = None,
                include_self: bool = True) -> tuple[Tensor, Tensor]:
    """Cluster tokens with DPC-KNN.

    ``score = rho * delta`` (:func:`knn_density`, :func:`dpc_delta`); the centers are the
    ``num_clusters`` highest scores in descending order (lower index on ties), and a center's
    cluster id is its rank. Every valid token joins its nearest center (lowest id on ties);
    each center joins its own cluster; padded tokens get -1.

    Args:
        x: ``[B,N,D]`` or ``[N,D]`` tokens.
        num_clusters: C, ``1 <= C <= valid tokens``.
        k: neighbours for the density (see :func:`knn_density`).
        mask: optional ``[B,N]`` bool, True = real token.
        include_self: see :func:`knn_density`.

    Returns:
        ``(centers [B,C] int64, assign [B,N] int64)``.
    """
    xb, squeeze = _checks.as_batched(x)
    mask = _checks.as_batched_mask(mask, xb, squeeze)
    _checks.cluster_sizes(num_clusters, k, xb.shape[1], include_self)
    centers, assign = torch.ops.emollm.dpc_cluster(xb, num_clusters, k, mask, include_self)
    return (centers.squeeze(0), assign.squeeze(0)) if squeeze else (centers, assign)

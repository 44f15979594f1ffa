"""The peer baseline: Chat-UniVi's clustering arithmetic, as a benchmark-only backend ``chat-univi``.

The numbers the CPU targets are stated against. Chat-UniVi (the clustering EmoLLM's MVP builds
on) clusters with dense ``[B,N,N]`` matrices: ``torch.cdist`` scaled by ``1/sqrt(D)``, masked
tokens pushed beyond the largest distance, ``topk`` of the k nearest, ``exp(-mean d²)`` plus
uniform noise of 1e-6 to break density ties, the parent from a dense "denser than" mask, the
centers as the top-C of ``rho * delta``, every token to its nearest center (``argmin``), and the
merge as ``index_add`` of weight-normalized tokens with 1e-6 added to each cluster's weight.
Written here from that description; the arithmetic, not the code, is Chat-UniVi's.

Declared through the same registry as the library's backends (docs/extending.md), so
``use_backend("chat-univi")`` runs it under every op that has a counterpart (the GCN ops have
none) and every benchmark group gets its row. It is not part of the library: only the benchmarks
import this module.
"""

from __future__ import annotations

import torch
from torch import Tensor

from emollm.ops._backend import ANY_DEVICE, Backend, declare, register

NAME = "chat-univi"


def _distances(x: Tensor, mask: Tensor | None) -> Tensor:
    """``[B,N,N]`` ``cdist / sqrt(D)``; columns of padded tokens beyond every real distance."""
    xf = x.float()
    dist = torch.cdist(xf, xf) / xf.shape[-1] ** 0.5
    if mask is not None:
        dist = dist * mask[:, None, :] + (dist.max() + 1) * (~mask[:, None, :])
    return dist


def _density(dist: Tensor, k: int, mask: Tensor | None, include_self: bool) -> Tensor:
    if not include_self:
        dist = dist + torch.diag_embed(torch.full(dist.shape[:2], float("inf"), device=dist.device))
    nearest = torch.topk(dist, k=k, dim=-1, largest=False).values
    rho = (-(nearest**2).mean(-1)).exp()
    rho = rho + torch.rand(rho.shape, device=rho.device, dtype=rho.dtype) * 1e-6
    return rho if mask is None else rho * mask


def _delta(dist: Tensor, rho: Tensor) -> tuple[Tensor, Tensor]:
    denser = (rho[:, None, :] > rho[:, :, None]).to(dist.dtype)
    dist_max = dist.flatten(1).max(-1).values[:, None, None]
    return (dist * denser + dist_max * (1 - denser)).min(-1)


def _cluster(dist: Tensor, rho: Tensor, num_clusters: int) -> tuple[Tensor, Tensor]:
    delta, _ = _delta(dist, rho)
    centers = torch.topk(delta * rho, k=num_clusters, dim=-1).indices
    to_centers = dist.gather(1, centers[:, :, None].expand(-1, -1, dist.shape[-1]))  # [B,C,N]
    assign = to_centers.argmin(1)
    rows = torch.arange(dist.shape[0], device=dist.device)[:, None].expand_as(centers)
    assign[rows.reshape(-1), centers.reshape(-1)] = torch.arange(num_clusters, device=dist.device).repeat(
        dist.shape[0])
    return centers, assign


def _merge(x: Tensor, assign: Tensor, num_clusters: int, weight: Tensor | None) -> Tensor:
    b, n, d = x.shape
    w = x.new_ones(b, n, 1) if weight is None else weight[..., None].to(x.dtype)
    w = w * (assign >= 0)[..., None]  # tokens outside every cluster (padding) weigh nothing
    index = (assign.clamp_min(0) + torch.arange(b, device=x.device)[:, None] * num_clusters).reshape(-1)
    total = w.new_zeros(b * num_clusters, 1).index_add_(0, index, w.reshape(-1, 1)) + 1e-6
    share = w / total[index].reshape(b, n, 1)
    merged = x.new_zeros(b * num_clusters, d).index_add_(0, index, (x * share).reshape(-1, d))
    return merged.reshape(b, num_clusters, d)


@register("knn_density", NAME)
def knn_density(x: Tensor, k: int, mask: Tensor | None, include_self: bool) -> Tensor:
    return _density(_distances(x, mask), k, mask, include_self)


@register("dpc_delta", NAME)
def dpc_delta(x: Tensor, rho: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    return _delta(_distances(x, mask), rho)


@register("dpc_cluster", NAME)
def dpc_cluster(x: Tensor, num_clusters: int, k: int, mask: Tensor | None,
                include_self: bool) -> tuple[Tensor, Tensor]:
    dist = _distances(x, mask)
    return _cluster(dist, _density(dist, k, mask, include_self), num_clusters)


@register("dpc_cluster_merge", NAME)
def dpc_cluster_merge(x: Tensor, num_clusters: int, k: int, mask: Tensor | None, include_self: bool,
                      weight: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    centers, assign = dpc_cluster(x, num_clusters, k, mask, include_self)
    return centers, assign, _merge(x, assign, num_clusters, weight)


@register("cluster_merge", NAME)
def cluster_merge(x: Tensor, assign: Tensor, num_clusters: int, weight: Tensor | None) -> Tensor:
    return _merge(x, assign, num_clusters, weight)


BACKEND = declare(Backend(
    NAME, devices=frozenset({ANY_DEVICE}), wants_centered=False,
    status=lambda: (True, "Chat-UniVi's dense arithmetic (benchmarks/chat_univi.py): the speed baseline"),
))

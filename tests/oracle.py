"""Independent float64 oracle for every op contract (docs/design.md#op-contracts).

Written from the contract, not from emollm/ops/reference.py: distances come from explicit
differences (no Gram-matrix shortcut), and selections are spelled out with Python sorting, so a
shared mistake in the library's formulas cannot hide here. Inputs are ``[B,N,D]`` tensors of any
float dtype (converted to float64), masks ``[B,N]`` bool or None; shapes must stay small.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _valid(x: Tensor, mask: Tensor | None) -> list[list[int]]:
    b, n = x.shape[:2]
    if mask is None:
        return [list(range(n)) for _ in range(b)]
    return [[i for i in range(n) if bool(mask[s, i])] for s in range(b)]


def sqdist(x: Tensor) -> Tensor:
    """``[N,D] -> [N,N]`` float64: ``||x_i - x_j||² / D`` from explicit differences."""
    x = x.double()
    diff = x[:, None, :] - x[None, :, :]
    return (diff * diff).sum(-1) / x.shape[-1]


def knn_density(x: Tensor, k: int, mask: Tensor | None = None, include_self: bool = True) -> Tensor:
    b, n = x.shape[:2]
    rho = torch.zeros(b, n, dtype=torch.float64)
    for s, valid in enumerate(_valid(x, mask)):
        d2 = sqdist(x[s])
        for i in valid:
            others = [j for j in valid if include_self or j != i]
            nearest = torch.sort(d2[i, others]).values[:k]
            rho[s, i] = math.exp(-float(nearest.sum()) / k)
    return rho


def dpc_delta(x: Tensor, rho: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    b, n = x.shape[:2]
    delta = torch.zeros(b, n, dtype=torch.float64)
    parent = torch.arange(n).repeat(b, 1)
    for s, valid in enumerate(_valid(x, mask)):
        v = torch.tensor(valid, dtype=torch.int64)
        d = sqdist(x[s]).sqrt()
        d_max = float(d[v][:, v].max()) if valid else 0.0
        r = rho[s].double()
        for i in valid:
            # j is denser than i: higher density, or equal density and lower index
            is_denser = (r[v] > r[i]) | ((r[v] == r[i]) & (v < i))
            cand = v[is_denser]
            if len(cand) == 0:
                delta[s, i] = d_max
                continue
            dist = d[i, cand]
            nearest = dist.min()
            delta[s, i] = nearest
            parent[s, i] = int(cand[dist == nearest].min())  # lowest j on equal distance
    return delta, parent


def dpc_cluster(x: Tensor, num_clusters: int, k: int, mask: Tensor | None = None,
                include_self: bool = True) -> tuple[Tensor, Tensor]:
    b, n = x.shape[:2]
    rho = knn_density(x, k, mask, include_self)
    delta, _ = dpc_delta(x, rho, mask)
    centers = torch.zeros(b, num_clusters, dtype=torch.int64)
    assign = torch.full((b, n), -1, dtype=torch.int64)
    for s, valid in enumerate(_valid(x, mask)):
        score = rho[s] * delta[s]
        ranked = sorted(valid, key=lambda i: (-float(score[i]), i))[:num_clusters]
        centers[s] = torch.tensor(ranked)
        d = sqdist(x[s])
        for i in valid:
            assign[s, i] = min(range(num_clusters), key=lambda c: (float(d[i, ranked[c]]), c))
        for c, i in enumerate(ranked):
            assign[s, i] = c
    return centers, assign


def cluster_merge(x: Tensor, assign: Tensor, num_clusters: int, weight: Tensor | None = None) -> Tensor:
    b, n, dim = x.shape
    out = torch.zeros(b, num_clusters, dim, dtype=torch.float64)
    for s in range(b):
        for c in range(num_clusters):
            members = [i for i in range(n) if int(assign[s, i]) == c]
            w = [1.0 if weight is None else float(weight[s, i]) for i in members]
            if members and sum(w) > 0:
                out[s, c] = sum(wi * x[s, i].double() for wi, i in zip(w, members, strict=True)) / sum(w)
    return out


def gcn_dense(z: Tensor, tau: float, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(Â [B,C,C] bool, normalized distance [B,C,C] float64)``."""
    b, c = z.shape[:2]
    a_hat = torch.zeros(b, c, c, dtype=torch.bool)
    d_norm = torch.zeros(b, c, c, dtype=torch.float64)
    for s, valid in enumerate(_valid(z, mask)):
        d = (sqdist(z[s]) * z.shape[-1]).sqrt()
        d_max = max((float(d[i, j]) for i in valid for j in valid), default=0.0)
        for i in valid:
            for j in valid:
                d_norm[s, i, j] = float(d[i, j]) / d_max if d_max > 0 else 0.0
                a_hat[s, i, j] = i == j or d_norm[s, i, j] <= tau
    return a_hat, d_norm


def gcn_propagate_dense(a_hat: Tensor, h: Tensor) -> Tensor:
    a = a_hat.double()
    deg = a.sum(-1)
    dinv = torch.where(deg > 0, deg.clamp_min(1).rsqrt(), 0)
    return dinv[..., :, None] * a * dinv[..., None, :] @ h.double()

"""``dpc_cluster`` (and ``dpc_cluster_merge``) in Triton, fused the way the C++ kernel is.

1. One streaming kNN scan (:mod:`emollm.kernels.knn_density`) gives the densities, each row's k
   nearest and the sample's farthest pair.
2. The kNN-parent shortcut: if the nearest denser token among i's k nearest is closer (exactly)
   than the k-th Gram distance by more than the rounding bound, no token outside the list can be
   as close, so it is i's parent. Only the other rows (local density peaks, k=1 with self) go
   through the nearest-denser scan (:mod:`emollm.kernels.dpc_delta`).
3. Centers: the C highest ``rho·delta`` by a stable sort (lower index on ties).
4. Assignment: a row-block kernel streams the centers in tiles, distances from ``tl.dot`` and the
   nearest center (and runner-up) kept in registers: no ``[N, C]`` matrix; near-ties are decided
   from explicit differences. Each center then joins its own cluster.

Extra memory: O(N·k) lists plus O(N) vectors, never N×N or N×C.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from emollm.ops._backend import register

from . import cluster_merge as _merge
from ._common import (
    compact_rows,
    compute_dtype,
    dot_mode,
    exact_nearest,
    far_pair_sqdist,
    gram_tile,
    grid_rows,
    nearest_update,
    row_tolerance,
    update_rows,
)
from ._launch import launch
from .dpc_delta import finish_delta, nearest_denser
from .knn_density import KnnLists, density, knn_lists


@triton.jit
def _assign_kernel(x_ptr, sq_ptr, valid_ptr, centers_ptr, b1_ptr, k1_ptr, b2_ptr, N, C, D,
                   DOT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    rows = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_in = rows < N
    row_ok = row_in & (tl.load(valid_ptr + b * N + rows, mask=row_in, other=0) != 0)
    sq_i = tl.load(sq_ptr + b * N + rows, mask=row_in, other=0.0)
    base = b.to(tl.int64) * N * D
    cdt = sq_i.dtype
    b1 = tl.full((BLOCK_M,), float("inf"), cdt)
    b2 = tl.full((BLOCK_M,), float("inf"), cdt)
    k1 = tl.full((BLOCK_M,), -1, tl.int32)
    offs = tl.arange(0, BLOCK_N)
    for c0 in range(0, C, BLOCK_N):
        cs = c0 + offs
        c_in = cs < C
        tok = tl.load(centers_ptr + b * C + cs, mask=c_in, other=0)
        sq_c = tl.load(sq_ptr + b * N + tok, mask=c_in, other=0.0)
        dot = gram_tile(tl.zeros((BLOCK_M, BLOCK_N), cdt), x_ptr, base + rows.to(tl.int64) * D, row_ok,
                        base + tok.to(tl.int64) * D, c_in, D, BLOCK_D, DOT)
        d2 = tl.maximum(sq_i[:, None] + sq_c[None, :] - 2 * dot, 0.0)
        b1, k1, b2 = nearest_update(b1, k1, b2, tl.where(row_ok[:, None] & c_in[None, :], d2, float("inf")), c0)
    out = b * N + rows
    tl.store(b1_ptr + out, b1, mask=row_in)
    tl.store(k1_ptr + out, k1.to(tl.int64), mask=row_in)
    tl.store(b2_ptr + out, b2, mask=row_in)


def assign_to_centers(x: Tensor, sq: Tensor, valid: Tensor, centers: Tensor) -> Tensor:
    """``[B,N]`` int64: each valid token's nearest center id (lowest id on ties), each center its
    own id, padded tokens -1."""
    b, n, d = x.shape
    c = centers.shape[1]
    b1 = torch.empty(b, n, dtype=compute_dtype(x), device=x.device)
    b2 = torch.empty_like(b1)
    k1 = torch.empty(b, n, dtype=torch.int64, device=x.device)
    cfg, dot = launch("assign", x), dot_mode(x)
    _assign_kernel[(b, grid_rows(n, cfg["BLOCK_M"]))](x, sq, valid, centers, b1, k1, b2, n, c, d, dot, **cfg.kwargs())
    ok = valid.bool()
    unsure = ok & (b2 - b1 <= row_tolerance(sq, valid, d, dot))
    if bool(unsure.any()):
        rows = compact_rows(unsure)
        k1 = update_rows(k1, rows, exact_nearest(x, rows, centers=centers))
    ids = torch.arange(c, device=x.device).expand(b, -1)
    return k1.scatter(1, centers, ids).masked_fill(~ok, -1)


def knn_parent(lists: KnnLists, rho: Tensor, dim: int, dot: int) -> Tensor:
    """``[B,N]``: the parent each valid token's kNN list proves (the kNN-parent shortcut), -1
    where it proves none (``dim``: D, and ``dot``: the scan's dot mode, for the rounding bound)."""
    idx, n = lists.idx, lists.idx.shape[1]
    me = torch.arange(n, device=idx.device)[None, :, None]
    r_j = rho.gather(1, idx.clamp_min(0).flatten(1)).view_as(idx)
    r_i = rho[..., None]
    cand = (idx >= 0) & (idx != me) & ((r_j > r_i) | ((r_j == r_i) & (idx < me)))
    dist = torch.where(cand, lists.exact, torch.inf)
    best = dist.amin(-1)
    j = torch.where(cand & (dist == best[..., None]), idx, n).amin(-1)
    # A token outside the list has Gram distance >= the k-th one, so exactly >= it minus the bound:
    # the list's best is the parent when it is exactly below that.
    kth = lists.gram.amax(-1)
    proven = lists.valid.bool() & (j < n) & (best < kth - row_tolerance(lists.sq, lists.valid, dim, dot))
    return torch.where(proven, j, -1)


@register("dpc_cluster", "triton")
def dpc_cluster(x: Tensor, num_clusters: int, k: int, mask: Tensor | None,
                include_self: bool) -> tuple[Tensor, Tensor]:
    x = x.contiguous()
    lists = knn_lists(x, k, mask, include_self)
    rho = density(lists, k, x.shape[-1])
    parent = knn_parent(lists, rho, x.shape[-1], dot_mode(x))
    rows = compact_rows(lists.valid.bool() & (parent < 0))
    if rows.shape[1] > 0:
        (found,) = nearest_denser(x, lists.sq, lists.valid, rho, rows)
        parent = update_rows(parent, rows, found)
    peak_d2 = far_pair_sqdist(x, lists.far, lists.far_j, lists.valid)
    delta, _ = finish_delta(x, parent, lists.valid, peak_d2)
    score = (rho * delta).masked_fill(lists.valid == 0, -torch.inf)
    centers = score.sort(dim=1, descending=True, stable=True).indices[:, :num_clusters].contiguous()
    return centers, assign_to_centers(x, lists.sq, lists.valid, centers)


@register("dpc_cluster_merge", "triton")
def dpc_cluster_merge(x: Tensor, num_clusters: int, k: int, mask: Tensor | None, include_self: bool,
                      weight: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    # Composed: the clustering leaves nothing in registers or shared memory that the merge could
    # reuse (it runs after all tokens are assigned), so fusing would only save one launch.
    centers, assign = dpc_cluster(x, num_clusters, k, mask, include_self)
    return centers, assign, _merge.cluster_merge(x.contiguous(), assign, num_clusters, weight)

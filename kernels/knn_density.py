"""``knn_density`` in Triton: one streaming kNN scan, never an N×N matrix.

A program owns ``BLOCK_M`` rows of one sample and streams the sample's tokens in ``BLOCK_N``
column tiles: the distance tile comes from ``tl.dot`` (f32 accumulate) and the norms, and each
row keeps its k smallest distances and their columns in registers (``KP = next_pow2(k)`` slots,
the spare slots pinned at -inf so they are never the worst). Per tile, k rounds each move the
tile's row minimum into the worst slot when it beats it. The scan also records each row's farthest
valid token, which gives the sample's largest distance (the peak's delta in ``dpc_cluster``).
Memory: O(N·k) for the lists. Work: the N²·D dot (tensor cores for bf16/f16) plus about 6·k
compare/selects per distance, which at D=1024 and k=5 costs less than the dot on CUDA cores.

The densities are then recomputed from explicit differences of the selected pairs (O(N·k·D)),
so ``rho`` matches the float64 oracle to float32 rounding whatever the Gram cancellation.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from emollm.ops._backend import register

from ._common import compute_dtype, dot_mode, gram_tile, grid_rows, pair_sqdist, sqnorm, valid_tokens
from ._launch import launch


@triton.jit
def _knn_scan_kernel(x_ptr, sq_ptr, valid_ptr, idx_ptr, dist_ptr, max_ptr, maxj_ptr, N, D,
                     K: tl.constexpr, KP: tl.constexpr, INCLUDE_SELF: tl.constexpr, DOT: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    rows = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_in = rows < N
    row_ok = row_in & (tl.load(valid_ptr + b * N + rows, mask=row_in, other=0) != 0)
    sq_i = tl.load(sq_ptr + b * N + rows, mask=row_in, other=0.0)
    base = b.to(tl.int64) * N * D
    row_off = base + rows.to(tl.int64) * D
    cdt = sq_i.dtype

    slot = tl.arange(0, KP)
    inf = tl.full((BLOCK_M, KP), float("inf"), cdt)
    best_d = tl.where(slot[None, :] < K, inf, -inf)
    best_j = tl.full((BLOCK_M, KP), -1, tl.int32)
    far = tl.full((BLOCK_M,), -1.0, cdt)
    far_j = tl.full((BLOCK_M,), -1, tl.int32)
    offs_n = tl.arange(0, BLOCK_N)
    for j0 in range(0, N, BLOCK_N):
        cols = j0 + offs_n
        col_in = cols < N
        col_ok = col_in & (tl.load(valid_ptr + b * N + cols, mask=col_in, other=0) != 0)
        sq_j = tl.load(sq_ptr + b * N + cols, mask=col_in, other=0.0)
        dot = gram_tile(tl.zeros((BLOCK_M, BLOCK_N), cdt), x_ptr, row_off, row_ok,
                        base + cols.to(tl.int64) * D, col_ok, D, BLOCK_D, DOT)
        d2 = tl.maximum(sq_i[:, None] + sq_j[None, :] - 2 * dot, 0.0)
        is_self = rows[:, None] == cols[None, :]
        pair_ok = row_ok[:, None] & col_ok[None, :]

        tile_far = tl.where(pair_ok & ~is_self, d2, -1.0)
        m = tl.max(tile_far, 1)
        mj = tl.argmax(tile_far, 1, tie_break_left=True) + j0
        upd = m > far
        far_j = tl.where(upd, mj, far_j)
        far = tl.where(upd, m, far)

        if INCLUDE_SELF:
            cand = tl.where(pair_ok, tl.where(is_self, 0.0, d2), float("inf"))
        else:
            cand = tl.where(pair_ok & ~is_self, d2, float("inf"))
        for _ in range(K):
            worst = tl.max(best_d, 1)
            worst_slot = tl.argmax(best_d, 1, tie_break_left=True)
            cand = tl.where(cand < worst[:, None], cand, float("inf"))
            mn = tl.min(cand, 1)
            am = tl.argmin(cand, 1, tie_break_left=True)
            hit = (slot[None, :] == worst_slot[:, None]) & (mn < worst)[:, None]
            best_d = tl.where(hit, mn[:, None], best_d)
            best_j = tl.where(hit, (am + j0)[:, None], best_j)
            cand = tl.where(offs_n[None, :] == am[:, None], float("inf"), cand)

    out = (b * N + rows)[:, None] * K + slot[None, :]
    keep = row_in[:, None] & (slot[None, :] < K)
    tl.store(idx_ptr + out, best_j.to(tl.int64), mask=keep)
    tl.store(dist_ptr + out, best_d, mask=keep)
    tl.store(max_ptr + b * N + rows, far, mask=row_in)
    tl.store(maxj_ptr + b * N + rows, far_j.to(tl.int64), mask=row_in)


class KnnLists(NamedTuple):
    """The scan's results for ``[B,N,D]`` tokens.

    Attributes:
        idx: ``[B,N,k]`` int64, each row's k nearest (unordered; -1 for padded rows).
        gram: ``[B,N,k]`` their squared Gram distances (what the selection saw), unscaled.
        exact: ``[B,N,k]`` the same recomputed from differences (what the ops return), unscaled.
        far: ``[B,N]`` each row's largest squared Gram distance to another valid token (-1: none).
        far_j: ``[B,N]`` int64, that token.
        sq: ``[B,N]`` squared norms; ``valid``: ``[B,N]`` int8.
    """

    idx: Tensor
    gram: Tensor
    exact: Tensor
    far: Tensor
    far_j: Tensor
    sq: Tensor
    valid: Tensor


def knn_lists(x: Tensor, k: int, mask: Tensor | None, include_self: bool) -> KnnLists:
    """k nearest of every valid token of ``x`` ``[B,N,D]`` (contiguous), in one streaming scan."""
    b, n, d = x.shape
    valid = valid_tokens(x, mask)
    sq = sqnorm(x, valid)
    cdt = compute_dtype(x)
    idx = torch.empty(b, n, k, dtype=torch.int64, device=x.device)
    gram = torch.empty(b, n, k, dtype=cdt, device=x.device)
    far = torch.empty(b, n, dtype=cdt, device=x.device)
    far_j = torch.empty(b, n, dtype=torch.int64, device=x.device)
    cfg = launch("knn_scan", x)
    _knn_scan_kernel[(b, grid_rows(n, cfg["BLOCK_M"]))](x, sq, valid, idx, gram, far, far_j, n, d, k,
                                                        triton.next_power_of_2(k), include_self, dot_mode(x),
                                                        **cfg.kwargs())
    return KnnLists(idx, gram, pair_sqdist(x, idx), far, far_j, sq, valid)


def density(lists: KnnLists, k: int, dim: int) -> Tensor:
    """``rho [B,N]`` f32 from the exact distances of the lists (0 for padded tokens)."""
    rho = torch.exp(-lists.exact.sum(-1) / (dim * k)).float()
    return rho.masked_fill(lists.valid == 0, 0.0)


@register("knn_density", "triton")
def knn_density(x: Tensor, k: int, mask: Tensor | None, include_self: bool) -> Tensor:
    return density(knn_lists(x.contiguous(), k, mask, include_self), k, x.shape[-1])

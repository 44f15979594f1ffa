"""``dpc_delta`` in Triton: a streaming nearest-denser scan, never an N×N matrix.

A program owns ``BLOCK_M`` listed rows of one sample and streams all its tokens in column tiles
(distances from ``tl.dot``, as in ``knn_density``), keeping per row the nearest denser token, its
distance and the runner-up's distance (three registers per row), and optionally the row's
farthest token (the peak's delta). Rows whose runner-up lies within the Gram rounding bound of the
winner (duplicates, exact ties) are decided again from explicit differences
(:func:`exact_nearest`); the returned distances are recomputed from differences for every row.

``dpc_cluster`` runs the same scan only on the rows that the kNN-parent shortcut cannot settle.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from emollm.ops._backend import register

from ._common import (
    compact_rows,
    compute_dtype,
    dot_mode,
    exact_nearest,
    far_pair_sqdist,
    gram_tile,
    grid_rows,
    nearest_update,
    pair_sqdist,
    row_tolerance,
    sqnorm,
    update_rows,
    valid_tokens,
)
from ._launch import launch


@triton.jit
def _denser_scan_kernel(x_ptr, sq_ptr, valid_ptr, rho_ptr, rows_ptr, b1_ptr, j1_ptr, b2_ptr, far_ptr, farj_ptr,
                        N, R, D, TRACK_FAR: tl.constexpr, DOT: tl.constexpr, BLOCK_M: tl.constexpr,
                        BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    r = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    r_in = r < R
    rows = tl.load(rows_ptr + b * R + r, mask=r_in, other=-1)
    row_ok = rows >= 0
    safe = tl.where(row_ok, rows, 0)
    sq_i = tl.load(sq_ptr + b * N + safe, mask=row_ok, other=0.0)
    rho_i = tl.load(rho_ptr + b * N + safe, mask=row_ok, other=0.0)
    base = b.to(tl.int64) * N * D
    row_off = base + safe.to(tl.int64) * D
    cdt = sq_i.dtype

    b1 = tl.full((BLOCK_M,), float("inf"), cdt)
    b2 = tl.full((BLOCK_M,), float("inf"), cdt)
    j1 = tl.full((BLOCK_M,), -1, tl.int32)
    far = tl.full((BLOCK_M,), -1.0, cdt)
    far_j = tl.full((BLOCK_M,), -1, tl.int32)
    offs_n = tl.arange(0, BLOCK_N)
    for j0 in range(0, N, BLOCK_N):
        cols = j0 + offs_n
        col_in = cols < N
        col_ok = col_in & (tl.load(valid_ptr + b * N + cols, mask=col_in, other=0) != 0)
        sq_j = tl.load(sq_ptr + b * N + cols, mask=col_in, other=0.0)
        rho_j = tl.load(rho_ptr + b * N + cols, mask=col_in, other=0.0)
        dot = gram_tile(tl.zeros((BLOCK_M, BLOCK_N), cdt), x_ptr, row_off, row_ok,
                        base + cols.to(tl.int64) * D, col_ok, D, BLOCK_D, DOT)
        d2 = tl.maximum(sq_i[:, None] + sq_j[None, :] - 2 * dot, 0.0)
        pair_ok = row_ok[:, None] & col_ok[None, :]
        # j is denser than i: higher density, or equal and a lower index (never i itself)
        same = (rho_j[None, :] == rho_i[:, None]) & (cols[None, :] < rows[:, None])
        denser = (rho_j[None, :] > rho_i[:, None]) | same
        b1, j1, b2 = nearest_update(b1, j1, b2, tl.where(pair_ok & denser, d2, float("inf")), j0)
        if TRACK_FAR:
            tile_far = tl.where(pair_ok & (cols[None, :] != rows[:, None]), d2, -1.0)
            m = tl.max(tile_far, 1)
            mj = tl.argmax(tile_far, 1, tie_break_left=True) + j0
            upd = m > far
            far_j = tl.where(upd, mj, far_j)
            far = tl.where(upd, m, far)

    out = b * R + r
    tl.store(b1_ptr + out, b1, mask=r_in)
    tl.store(j1_ptr + out, j1.to(tl.int64), mask=r_in)
    tl.store(b2_ptr + out, b2, mask=r_in)
    if TRACK_FAR:
        tl.store(far_ptr + out, far, mask=r_in)
        tl.store(farj_ptr + out, far_j.to(tl.int64), mask=r_in)


def nearest_denser(x: Tensor, sq: Tensor, valid: Tensor, rho: Tensor, rows: Tensor,
                   track_far: bool = False) -> tuple[Tensor, ...]:
    """Nearest denser token of the listed rows, by a Gram scan with an exact re-decision of
    near-ties.

    Args:
        x: ``[B,N,D]`` contiguous; ``sq``/``valid``/``rho`` ``[B,N]`` (norms, int8 mask, f32).
        rows: ``[B,R]`` int64 token indices to scan (-1 = none).
        track_far: also return each row's farthest valid token (squared Gram distance) and its index.

    Returns:
        ``parent [B,R]`` int64 (-1 when no token is denser), and with ``track_far``
        ``far [B,R]``, ``far_j [B,R]``.
    """
    b, n, d = x.shape
    r = rows.shape[1]
    cdt = compute_dtype(x)
    b1 = torch.empty(b, r, dtype=cdt, device=x.device)
    b2 = torch.empty_like(b1)
    j1 = torch.empty(b, r, dtype=torch.int64, device=x.device)
    far, far_j = (torch.empty_like(b1), torch.empty_like(j1)) if track_far else (b1, j1)
    cfg, dot = launch("denser_scan", x), dot_mode(x)
    _denser_scan_kernel[(b, grid_rows(r, cfg["BLOCK_M"]))](x, sq, valid, rho, rows, b1, j1, b2, far, far_j, n, r, d,
                                                           track_far, dot, **cfg.kwargs())
    # Near-ties (duplicates among the denser tokens, for one): decided from explicit differences.
    safe = rows.clamp_min(0)
    tol = row_tolerance(sq, valid, d, dot).gather(1, safe)
    unsure = (rows >= 0) & (j1 >= 0) & (b2 - b1 <= tol)
    if bool(unsure.any()):
        pos = compact_rows(unsure)  # [B,U] positions in the row list
        again = torch.where(pos >= 0, rows.gather(1, pos.clamp_min(0)), -1)
        key = exact_nearest(x, again, valid=valid, rho=rho)
        j1 = update_rows(j1, pos, key)
    return (j1, far, far_j) if track_far else (j1,)


def finish_delta(x: Tensor, parent: Tensor, valid: Tensor, peak_d2: Tensor) -> tuple[Tensor, Tensor]:
    """``(delta, parent)`` ``[B,N]`` from the nearest denser tokens ``parent`` (-1 = peak): exact
    distances, the peak at ``sqrt(peak_d2 [B] / D)`` and itself, padded tokens 0 and themselves."""
    n, d = x.shape[1], x.shape[2]
    idx = torch.arange(n, device=x.device).expand_as(parent)
    is_peak = parent < 0
    delta2 = pair_sqdist(x, parent[..., None])[..., 0]
    delta2 = torch.where(is_peak, peak_d2[:, None], delta2) / d
    ok = valid.bool()
    delta = torch.where(ok, delta2.sqrt(), 0).float()
    parent = torch.where(ok & ~is_peak, parent, idx)
    return delta, parent


@register("dpc_delta", "triton")
def dpc_delta(x: Tensor, rho: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    x = x.contiguous()
    n = x.shape[1]
    valid = valid_tokens(x, mask)
    rho = rho.float().contiguous()
    sq = sqnorm(x, valid)
    rows = torch.where(valid.bool(), torch.arange(n, device=x.device), -1)
    parent, far, far_j = nearest_denser(x, sq, valid, rho, rows, track_far=True)
    return finish_delta(x, parent, valid, far_pair_sqdist(x, far, far_j, valid))

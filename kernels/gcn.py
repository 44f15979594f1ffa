"""``gcn_adjacency`` and ``gcn_propagate`` in Triton: a bitmask graph, never a dense C×C.

``gcn_adjacency``: a first scan finds each sample's farthest pair (its distance, exact in float64,
is the min-max normalizer); then one pass over the node pairs, a program per block of rows and one
64-column word at a time: distances from ``tl.dot``, ``A_ij = 1[d_ij <= tau·max d]`` packed into
the word as bit ``j % 64`` (the layout of the cpu backend, so graphs move between backends), and
the degrees by counting. Pairs within the Gram rounding bound of the threshold are decided again
in float64 from explicit differences, as ``d / max d <= tau`` (the cpu backend's rule); a tile
pays for that only when it holds such a pair. ``deg^-1/2`` is taken in float64, then rounded.

``gcn_propagate``: ``out_i = dinv_i · Σ_j dinv_j h_j`` over the set bits j of row i; a program
per (row, feature slice) loads neighbour rows under the word's bit mask, so memory traffic is
O(edges·F), not O(C²·F). The backward is the op's own (Â is symmetric).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from emollm.ops._backend import register

from ._common import (
    compute_dtype,
    dot_mode,
    far_pair_sqdist,
    gram_rounding,
    gram_tile,
    grid_rows,
    sqnorm,
    tl_compute_dtype,
    valid_tokens,
)
from ._launch import launch


@triton.jit
def _farthest_kernel(z_ptr, sq_ptr, valid_ptr, far_ptr, farj_ptr, C, F, DOT: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    rows = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_in = rows < C
    row_ok = row_in & (tl.load(valid_ptr + b * C + rows, mask=row_in, other=0) != 0)
    sq_i = tl.load(sq_ptr + b * C + rows, mask=row_in, other=0.0)
    base = b.to(tl.int64) * C * F
    far = tl.full((BLOCK_M,), -1.0, sq_i.dtype)
    far_j = tl.full((BLOCK_M,), -1, tl.int32)
    for j0 in range(0, C, BLOCK_N):
        cols = j0 + tl.arange(0, BLOCK_N)
        col_in = cols < C
        col_ok = col_in & (tl.load(valid_ptr + b * C + cols, mask=col_in, other=0) != 0)
        sq_j = tl.load(sq_ptr + b * C + cols, mask=col_in, other=0.0)
        dot = gram_tile(tl.zeros((BLOCK_M, BLOCK_N), sq_i.dtype), z_ptr, base + rows.to(tl.int64) * F, row_ok,
                        base + cols.to(tl.int64) * F, col_ok, F, BLOCK_D, DOT)
        d2 = sq_i[:, None] + sq_j[None, :] - 2 * dot
        d2 = tl.where(row_ok[:, None] & col_ok[None, :] & (rows[:, None] != cols[None, :]), d2, -1.0)
        m = tl.max(d2, 1)
        mj = tl.argmax(d2, 1, tie_break_left=True) + j0
        upd = m > far
        far_j = tl.where(upd, mj, far_j)
        far = tl.where(upd, m, far)
    tl.store(far_ptr + b * C + rows, far, mask=row_in)
    tl.store(farj_ptr + b * C + rows, far_j.to(tl.int64), mask=row_in)


@triton.jit
def _edges_kernel(z_ptr, sq_ptr, valid_ptr, thr2_ptr, dmax_ptr, tau_ptr, bits_ptr, deg_ptr, C, F, W, rel,
                  DOT: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_X: tl.constexpr):
    b = tl.program_id(0)
    rows = tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I)
    row_in = rows < C
    row_ok = row_in & (tl.load(valid_ptr + b * C + rows, mask=row_in, other=0) != 0)
    sq_i = tl.load(sq_ptr + b * C + rows, mask=row_in, other=0.0)
    thr2 = tl.load(thr2_ptr + b)
    dmax = tl.load(dmax_ptr + b)  # float64
    tau = tl.load(tau_ptr)  # float64: a Python float argument would arrive as float32
    all_close = (tl.zeros((BLOCK_I, 64), tl.float64) + dmax) == 0  # all-equal nodes: every d / max d is 0
    dmax_safe = tl.where(dmax > 0, dmax, 1.0)
    base = b.to(tl.int64) * C * F
    row_off = base + rows.to(tl.int64) * F
    shifts = tl.arange(0, 64)
    deg = tl.zeros((BLOCK_I,), tl.int32)
    for w in range(0, W):
        cols = w * 64 + shifts
        col_in = cols < C
        col_ok = col_in & (tl.load(valid_ptr + b * C + cols, mask=col_in, other=0) != 0)
        sq_j = tl.load(sq_ptr + b * C + cols, mask=col_in, other=0.0)
        dot = gram_tile(tl.zeros((BLOCK_I, 64), sq_i.dtype), z_ptr, row_off, row_ok, base + cols.to(tl.int64) * F,
                        col_ok, F, BLOCK_D, DOT)
        d2 = sq_i[:, None] + sq_j[None, :] - 2 * dot
        pair_ok = row_ok[:, None] & col_ok[None, :]
        edge = d2 <= thr2
        unsure = pair_ok & (tl.abs(d2 - thr2) <= rel * (sq_i[:, None] + sq_j[None, :]) + 1.1754943508222875e-38)
        if tl.max(unsure.to(tl.int32)) > 0:  # rare: re-decide near-threshold pairs in float64
            e2 = tl.zeros((BLOCK_I, 64), tl.float64)
            offs = tl.arange(0, BLOCK_X)
            for f0 in range(0, F, BLOCK_X):
                f = f0 + offs
                fm = f < F
                zi = tl.load(z_ptr + row_off[:, None] + f[None, :], mask=row_ok[:, None] & fm[None, :], other=0.0)
                zj = tl.load(z_ptr + base + cols.to(tl.int64)[:, None] * F + f[None, :],
                             mask=col_ok[:, None] & fm[None, :], other=0.0)
                diff = zi.to(sq_i.dtype).to(tl.float64)[:, None, :] - zj.to(sq_i.dtype).to(tl.float64)[None, :, :]
                e2 += tl.sum(diff * diff, 2)
            # d <= max d by definition: a pair at the maximum that rounds above it (another
            # summation order than dmax's) is clamped, so tau = 1 links every pair.
            edge = tl.where(unsure, tl.minimum(tl.sqrt(e2), dmax) / dmax_safe <= tau, edge)
        edge = (edge | all_close | (rows[:, None] == cols[None, :])) & pair_ok
        # Distinct powers of two add without carries; bit 63 wraps to the sign, as in the cpu layout.
        word = tl.sum(edge.to(tl.int64) << shifts.to(tl.int64)[None, :], 1)
        tl.store(bits_ptr + (b * C + rows).to(tl.int64) * W + w, word, mask=row_in)
        deg += tl.sum(edge.to(tl.int32), 1)
    tl.store(deg_ptr + b * C + rows, deg, mask=row_in)


@register("gcn_adjacency", "triton")
def gcn_adjacency(z: Tensor, tau: float, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    b, c, f = z.shape
    z = z.contiguous()
    words = triton.cdiv(c, 64)
    valid = valid_tokens(z, mask)
    sq = sqnorm(z, valid)
    far = torch.empty(b, c, dtype=sq.dtype, device=z.device)
    far_j = torch.empty(b, c, dtype=torch.int64, device=z.device)
    dot = dot_mode(z)
    cfg = launch("farthest", z)
    _farthest_kernel[(b, grid_rows(c, cfg["BLOCK_M"]))](z, sq, valid, far, far_j, c, f, dot, **cfg.kwargs())
    dmax = far_pair_sqdist(z, far, far_j, valid, torch.float64).sqrt()  # the normalizer, exactly
    thr2 = (tau * tau * dmax * dmax).to(sq.dtype)
    bits = torch.empty(b, c, words, dtype=torch.int64, device=z.device)
    deg = torch.empty(b, c, dtype=torch.int32, device=z.device)
    tau_t = torch.tensor([tau], dtype=torch.float64, device=z.device)
    cfg = launch("edges", z)  # BLOCK_I rows per program; the f64 recheck tile is [BLOCK_I, 64, BLOCK_X]
    _edges_kernel[(b, triton.cdiv(c, cfg["BLOCK_I"]))](z, sq, valid, thr2, dmax, tau_t, bits, deg, c, f, words,
                                                       gram_rounding(f, sq.dtype, dot), dot, **cfg.kwargs())
    dinv = torch.where(deg > 0, deg.double().clamp_min(1).rsqrt(), 0).float()
    return bits, dinv


@triton.jit
def _propagate_kernel(bits_ptr, dinv_ptr, h_ptr, out_ptr, C, F, W, CDT: tl.constexpr, BLOCK_F: tl.constexpr):
    row = tl.program_id(0)  # sample * C + node
    b = row // C
    f = tl.program_id(1) * BLOCK_F + tl.arange(0, BLOCK_F)
    fm = f < F
    shifts = tl.arange(0, 64)
    acc = tl.zeros((BLOCK_F,), CDT)
    for w in range(0, W):
        word = tl.load(bits_ptr + row.to(tl.int64) * W + w)
        cols = w * 64 + shifts
        linked = (((word >> shifts.to(tl.int64)) & 1) != 0) & (cols < C)  # no node past C
        dj = tl.load(dinv_ptr + b * C + cols, mask=linked, other=0.0).to(CDT)
        hj = tl.load(h_ptr + (b * C + cols).to(tl.int64)[:, None] * F + f[None, :], mask=linked[:, None] & fm[None, :],
                     other=0.0).to(CDT)
        acc += tl.sum(dj[:, None] * hj, 0)
    di = tl.load(dinv_ptr + row).to(CDT)
    tl.store(out_ptr + row.to(tl.int64) * F + f, di * acc, mask=fm)


@register("gcn_propagate", "triton")
def gcn_propagate(bits: Tensor, dinv: Tensor, h: Tensor) -> Tensor:
    b, c, f = h.shape
    h = h.contiguous()
    out = torch.empty(h.shape, dtype=compute_dtype(h), device=h.device)  # rounded by torch, see cluster_merge
    cfg = launch("propagate", device=h.device)
    _propagate_kernel[(b * c, triton.cdiv(f, cfg["BLOCK_F"]))](
        bits.contiguous(), dinv.float().contiguous(), h, out, c, f, bits.shape[2], tl_compute_dtype(h), **cfg.kwargs())
    return out.to(h.dtype)

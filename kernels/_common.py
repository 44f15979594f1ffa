"""Pieces shared by the Triton kernels: tile sizes, dtype flags, the Gram tile, and the exact
recomputation that makes the results match the float64 oracle.

How the kernels stay exact. Neighbour selection runs on Gram distances
``(||x_i||² + ||x_j||² - 2 x_i·x_j) / D`` (``tl.dot``, tensor cores for bf16/f16), which lose a
few ulps of ``||x||²`` to cancellation. So, as in the C++ kernels (``csrc/cpu/common.h``):

- every value an op returns is recomputed from explicit differences ``||x_i - x_j||²`` for the
  few selected pairs (:func:`pair_sqdist`, O(N·k·D));
- a nearest-neighbour choice whose runner-up lies within the Gram rounding bound
  (:func:`row_tolerance`) is taken again from explicit differences over all candidates, lowest
  key on equal distance (:func:`exact_nearest`); duplicate tokens are the common case.

All kernels upcast bf16/f16 to float32 (float64 inputs, CPU only, compute in float64) except the
``tl.dot`` operands on a GPU, where bf16/f16 products are exact in the float32 accumulator. Under
``TRITON_INTERPRET=1`` the operands are upcast too: the interpreter computes bf16 dots wrongly, and
products of bf16 values are exact in float32, so the upcast dot sums the same products.
Float32 dots run as :func:`dot_mode` says: ``ieee`` (CUDA cores) by default, or on tensor cores
through a bf16 split whose error is added to the rounding bound (:func:`gram_rounding`).
Tile sizes, warps and stages come from the launch table (``_launch.py``).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._launch import Launch, f32_dot, interpreted, launch

INF = float("inf")

# How gram_tile multiplies (its DOT constexpr; dot_mode picks one per call).
DOT_NATIVE = 0  # bf16/f16 operands on tensor cores, float32 accumulate (GPU)
DOT_IEEE = 1  # operands upcast to the compute dtype, CUDA-core FMA (float32/float64; bf16/f16 in the interpreter)
DOT_BF16X3 = 2  # float32 split into bf16 hi + lo, three tensor-core products (GPU)
DOT_BF16X3_EMULATED = 3  # the same split and products in the interpreter (float32 dots of bf16-exact parts)
# Relative error per product of the split, added to the rounding bound: a = hi + lo + r with
# |lo| <= 2^-8|a| and |r| <= 2^-16|a|; the dropped lo·lo' and the residuals r·b', a·r' cost
# 3·2^-16 of |a·b|, rounded up to 4.
SPLIT_ERROR = {DOT_BF16X3: 4 * 2.0**-16, DOT_BF16X3_EMULATED: 4 * 2.0**-16}


def compute_dtype(x: Tensor) -> torch.dtype:
    """float64 for float64 inputs, float32 for everything else (f32/f16/bf16)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def tl_compute_dtype(x: Tensor) -> tl.dtype:
    return tl.float64 if x.dtype == torch.float64 else tl.float32


def dot_mode(x: Tensor) -> int:
    """How ``gram_tile`` multiplies tokens ``x``: native bf16/f16 tensor cores on a GPU, float32 by
    ``_launch.f32_dot()`` (``ieee`` unless a split mode is asked for), float64 in ieee."""
    if x.dtype in (torch.bfloat16, torch.float16):
        return DOT_IEEE if interpreted() else DOT_NATIVE
    if x.dtype == torch.float32:
        if f32_dot() == "bf16x3":
            return DOT_BF16X3_EMULATED if interpreted() else DOT_BF16X3
    return DOT_IEEE


def gram_rounding(dim: int, dtype: torch.dtype, dot: int = DOT_IEEE) -> float:
    """Relative rounding bound of a Gram squared distance over ``dim`` features (per norm):
    sums of length D lose about log2(D) ulps (the same bound as ``csrc/cpu/common.h``), plus the
    per-product error of a split dot mode (``SPLIT_ERROR``)."""
    return 4 * (math.log2(dim) + 1) * torch.finfo(dtype).eps + SPLIT_ERROR.get(dot, 0.0)


def valid_tokens(x: Tensor, mask: Tensor | None) -> Tensor:
    """``[B,N]`` int8, 1 for a real token."""
    if mask is None:
        return torch.ones(x.shape[:2], dtype=torch.int8, device=x.device)
    return mask.to(torch.int8).contiguous()


def row_tolerance(sq: Tensor, valid: Tensor, dim: int, dot: int = DOT_IEEE) -> Tensor:
    """``[B,N]``: how far apart two squared Gram distances from row i must be for their order to
    be certain (the bound of ``Nearest`` in csrc/cpu/common.h, with ``||x_j||²`` bounded by the
    sample's largest valid norm; ``dot``: the mode that computed them)."""
    top = torch.where(valid.bool(), sq, 0).amax(1, keepdim=True)
    return gram_rounding(dim, sq.dtype, dot) * (2 * sq + 2 * top)


def grid_rows(n: int, block: int) -> int:
    return triton.cdiv(n, block)


@triton.jit
def round_bf16(a):
    """float32 ``a`` rounded to the nearest bfloat16 (ties to even), still held in float32: the
    interpreter's own ``.to(tl.bfloat16)`` rounds wrongly (509 of 1024 values off when measured),
    so the split is done on the bits. Values here are finite and far below bf16's overflow."""
    bits = a.to(tl.int32, bitcast=True)
    bits = (bits + (0x7FFF + ((bits >> 16) & 1))) & -65536
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def split_dot(a, b, acc, EMULATED: tl.constexpr):
    """``acc + a·b`` for float32 ``a [M,K]``, ``b [K,N]`` from bf16 parts: ``a = hi + lo + r`` with
    ``|r| <= 2^-16 |a|``; ``hi·hi' + hi·lo' + lo·hi'`` are exact products summed in float32 (on
    tensor cores on a GPU; ``EMULATED``: float32 dots of the same bf16-exact parts in the
    interpreter). Small terms first."""
    if EMULATED:
        a_hi = round_bf16(a)
        b_hi = round_bf16(b)
        a_lo = round_bf16(a - a_hi)
        b_lo = round_bf16(b - b_hi)
        acc = tl.dot(a_lo, b_hi, acc, input_precision="ieee")
        acc = tl.dot(a_hi, b_lo, acc, input_precision="ieee")
        acc = tl.dot(a_hi, b_hi, acc, input_precision="ieee")
    else:
        a_hi = a.to(tl.bfloat16)
        b_hi = b.to(tl.bfloat16)
        a_lo = (a - a_hi.to(tl.float32)).to(tl.bfloat16)
        b_lo = (b - b_hi.to(tl.float32)).to(tl.bfloat16)
        acc = tl.dot(a_lo, b_hi, acc)
        acc = tl.dot(a_hi, b_lo, acc)
        acc = tl.dot(a_hi, b_hi, acc)
    return acc


@triton.jit
def gram_tile(acc, x_ptr, row_off, row_ok, col_off, col_ok, D, BLOCK_D: tl.constexpr, DOT: tl.constexpr):
    """``acc[a, b] += x[row a] · x[col b]`` over all D features, f32 (or f64) accumulate, the
    product as ``DOT`` says (the ``DOT_*`` modes above).

    ``row_off``/``col_off`` are element offsets of the rows in ``x_ptr``; rows/cols not ``ok`` load
    as 0 (padded tokens may hold NaN: they are never read)."""
    offs_d = tl.arange(0, BLOCK_D)
    for d0 in range(0, D, BLOCK_D):
        d = d0 + offs_d
        dm = d < D
        a = tl.load(x_ptr + row_off[:, None] + d[None, :], mask=row_ok[:, None] & dm[None, :], other=0.0)
        b = tl.load(x_ptr + col_off[:, None] + d[None, :], mask=col_ok[:, None] & dm[None, :], other=0.0)
        if DOT == 0:  # DOT_NATIVE
            acc = tl.dot(a, tl.trans(b), acc)
        elif DOT == 2:  # DOT_BF16X3
            acc = split_dot(a, tl.trans(b), acc, False)
        elif DOT == 3:  # DOT_BF16X3_EMULATED
            acc = split_dot(a, tl.trans(b), acc, True)
        else:  # DOT_IEEE
            acc = tl.dot(a.to(acc.dtype), tl.trans(b.to(acc.dtype)), acc, input_precision="ieee",
                         out_dtype=acc.dtype)
    return acc


@triton.jit
def nearest_update(b1, k1, b2, d2, key0):
    """Folds a tile of candidate distances ``d2 [BM, BN]`` (inf = no candidate, keys ``key0 +
    column``, increasing across calls) into each row's best ``(b1, k1)`` and runner-up ``b2``;
    equal distances keep the lower key."""
    cols = tl.arange(0, d2.shape[1])
    m1 = tl.min(d2, 1)
    a1 = tl.argmin(d2, 1, tie_break_left=True)
    m2 = tl.min(tl.where(cols[None, :] == a1[:, None], float("inf"), d2), 1)
    b2 = tl.minimum(tl.maximum(b1, m1), tl.minimum(b2, m2))
    take = m1 < b1
    k1 = tl.where(take, key0 + a1, k1)
    b1 = tl.where(take, m1, b1)
    return b1, k1, b2


@triton.jit
def _sqnorm_kernel(x_ptr, valid_ptr, out_ptr, R, D, CDT: tl.constexpr, BLOCK_R: tl.constexpr,
                   BLOCK_D: tl.constexpr):
    r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    r_in = r < R
    ok = r_in & (tl.load(valid_ptr + r, mask=r_in, other=0) != 0)
    offs_d = tl.arange(0, BLOCK_D)
    acc = tl.zeros((BLOCK_R,), CDT)
    for d0 in range(0, D, BLOCK_D):
        d = d0 + offs_d
        v = tl.load(x_ptr + r.to(tl.int64)[:, None] * D + d[None, :], mask=ok[:, None] & (d < D)[None, :],
                    other=0.0).to(CDT)
        acc += tl.sum(v * v, 1)
    tl.store(out_ptr + r, acc, mask=r_in)


def sqnorm(x: Tensor, valid: Tensor) -> Tensor:
    """``[B,N]`` squared norms in the compute dtype (0 for padded tokens)."""
    b, n, d = x.shape
    out = torch.empty(b, n, dtype=compute_dtype(x), device=x.device)
    cfg = launch("sqnorm", device=x.device)
    _sqnorm_kernel[(triton.cdiv(b * n, cfg["BLOCK_R"]),)](x, valid, out, b * n, d, tl_compute_dtype(x), **cfg.kwargs())
    return out


@triton.jit
def _pair_sqdist_kernel(x_ptr, cand_ptr, out_ptr, N, D, L, CDT: tl.constexpr, BLOCK_M: tl.constexpr,
                        BLOCK_L: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    i = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    s = tl.arange(0, BLOCK_L)
    i_in = i < N
    cm = i_in[:, None] & (s < L)[None, :]
    j = tl.load(cand_ptr + (b * N + i)[:, None] * L + s[None, :], mask=cm, other=-1)
    ok = cm & (j >= 0)
    base = x_ptr + b.to(tl.int64) * N * D
    offs_d = tl.arange(0, BLOCK_D)
    acc = tl.zeros((BLOCK_M, BLOCK_L), CDT)
    for d0 in range(0, D, BLOCK_D):
        d = d0 + offs_d
        dm = d < D
        xi = tl.load(base + i.to(tl.int64)[:, None, None] * D + d[None, None, :],
                     mask=i_in[:, None, None] & dm[None, None, :], other=0.0).to(CDT)
        xj = tl.load(base + j.to(tl.int64)[:, :, None] * D + d[None, None, :],
                     mask=ok[:, :, None] & dm[None, None, :], other=0.0).to(CDT)
        diff = tl.where(ok[:, :, None], xi - xj, 0.0)
        acc += tl.sum(diff * diff, 2)
    tl.store(out_ptr + (b * N + i)[:, None] * L + s[None, :], acc, mask=cm)


def pair_sqdist(x: Tensor, cand: Tensor) -> Tensor:
    """``[B,N,L]``: ``||x_i - x_cand[i,l]||²`` (unscaled) from explicit differences, in the
    compute dtype; 0 where ``cand`` is -1. ``cand`` is ``[B,N,L]`` int64."""
    b, n, d = x.shape
    cand = cand.contiguous()
    length = cand.shape[2]
    out = torch.empty(b, n, length, dtype=compute_dtype(x), device=x.device)
    block_l = triton.next_power_of_2(length)
    cfg = launch("pair_sqdist", device=x.device)
    # Rows shrink as L grows: the [M, L, BLOCK_D] operand tile stays at most 4096 elements.
    block_m = triton.next_power_of_2(max(1, min(cfg["BLOCK_M"], 4096 // (block_l * cfg["BLOCK_D"]))))
    cfg = Launch({**cfg.blocks, "BLOCK_M": block_m, "BLOCK_L": block_l}, cfg.num_warps, cfg.num_stages)
    _pair_sqdist_kernel[(b, triton.cdiv(n, block_m))](x, cand, out, n, d, length, tl_compute_dtype(x), **cfg.kwargs())
    return out


@triton.jit
def _exact_nearest_kernel(x_ptr, valid_ptr, rho_ptr, cand_ptr, rows_ptr, key_ptr, N, R, M, D,
                          DENSER: tl.constexpr, CDT: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr,
                          BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    r = tl.program_id(1) * BLOCK_R + tl.arange(0, BLOCK_R)
    r_in = r < R
    i = tl.load(rows_ptr + b * R + r, mask=r_in, other=-1)
    row_ok = i >= 0
    i = tl.where(row_ok, i, 0)
    base = x_ptr + b.to(tl.int64) * N * D
    offs = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    if DENSER:
        rho_i = tl.load(rho_ptr + b * N + i, mask=row_ok, other=0.0)
    best = tl.full((BLOCK_R,), float("inf"), CDT)
    key = tl.full((BLOCK_R,), -1, tl.int64)
    for m0 in range(0, M, BLOCK_N):
        m = m0 + offs
        m_in = m < M
        if DENSER:  # candidates: the valid tokens denser than i, keyed by their index
            j = m.to(tl.int64)
            rho_j = tl.load(rho_ptr + b * N + j, mask=m_in, other=0.0)
            j_ok = m_in & (tl.load(valid_ptr + b * N + j, mask=m_in, other=0) != 0)
            ok = j_ok[None, :] & ((rho_j[None, :] > rho_i[:, None])
                                  | ((rho_j[None, :] == rho_i[:, None]) & (j[None, :] < i[:, None])))
        else:  # candidates: the listed tokens (centers), keyed by their position
            j = tl.load(cand_ptr + b * M + m, mask=m_in, other=0)
            j_ok = m_in
            ok = j_ok[None, :] & (i[:, None] >= 0)
        ok = ok & row_ok[:, None]
        acc = tl.zeros((BLOCK_R, BLOCK_N), CDT)
        for d0 in range(0, D, BLOCK_D):
            d = d0 + offs_d
            dm = d < D
            xi = tl.load(base + i[:, None] * D + d[None, :], mask=row_ok[:, None] & dm[None, :], other=0.0).to(CDT)
            xj = tl.load(base + j[:, None] * D + d[None, :], mask=j_ok[:, None] & dm[None, :], other=0.0).to(CDT)
            diff = xi[:, None, :] - xj[None, :, :]
            acc += tl.sum(diff * diff, 2)
        acc = tl.where(ok, acc, float("inf"))
        mn = tl.min(acc, 1)
        am = tl.argmin(acc, 1, tie_break_left=True)
        take = mn < best
        key = tl.where(take, m0 + am, key)
        best = tl.where(take, mn, best)
    tl.store(key_ptr + b * R + r, key, mask=r_in)


def exact_nearest(x: Tensor, rows: Tensor, *, valid: Tensor | None = None, rho: Tensor | None = None,
                  centers: Tensor | None = None) -> Tensor:
    """Nearest candidate of the listed rows from explicit differences, lowest key on ties.

    Candidates are either the valid tokens denser than the row (``valid`` int8, ``rho`` f32
    ``[B,N]``; key = token index) or the ``centers`` ``[B,C]`` (key = cluster id). ``rows`` is
    ``[B,R]`` int64 (-1 = none). Returns ``key [B,R]`` int64 (-1: no candidate). For the few rows
    whose Gram choice is not certain: O(R·M·D) on CUDA cores, each candidate tile loaded once for
    ``BLOCK_R`` rows.
    """
    b, n, d = x.shape
    r = rows.shape[1]
    key = torch.empty(b, r, dtype=torch.int64, device=x.device)
    if r == 0:
        return key
    denser = centers is None
    m = n if denser else centers.shape[1]
    dummy = key  # an unused pointer argument
    cfg = launch("exact_nearest", device=x.device)
    _exact_nearest_kernel[(b, triton.cdiv(r, cfg["BLOCK_R"]))](
        x, valid if denser else dummy, rho if denser else dummy, dummy if denser else centers.contiguous(),
        rows.contiguous(), key, n, r, m, d, denser, tl_compute_dtype(x), **cfg.kwargs())
    return key


def compact_rows(select: Tensor) -> Tensor:
    """``[B,N]`` bool -> ``[B,R]`` int64: each sample's selected token indices, ascending, padded
    with -1 to the largest count R (one device sync, for R)."""
    n = select.shape[1]
    r = int(select.sum(1).max()) if select.numel() else 0
    idx = torch.arange(n, device=select.device)
    keyed = torch.where(select, idx, n).sort(1).values[:, :r]
    return torch.where(keyed < n, keyed, -1)


def update_rows(dst: Tensor, pos: Tensor, values: Tensor) -> Tensor:
    """``dst [B,R]`` with ``dst[b, pos[b,u]] = values[b,u]`` where ``pos >= 0`` (from :func:`compact_rows`)."""
    wide = torch.cat([dst, dst[:, :1]], 1)  # padding writes go to the spare last column
    spare = torch.where(pos >= 0, pos, dst.shape[1])
    return wide.scatter(1, spare, values)[:, :-1]


def far_pair_sqdist(x: Tensor, rowmax: Tensor, rowmax_j: Tensor, valid: Tensor,
                    dtype: torch.dtype | None = None) -> Tensor:
    """``[B]``: squared distance of each sample's farthest Gram pair, from the per-row maxima a
    scan recorded, recomputed from differences in ``dtype`` (default: the compute dtype); 0 when
    the sample has no pair."""
    m = torch.where(valid.bool() & (rowmax_j >= 0), rowmax, -1)
    i = m.argmax(1)
    j = rowmax_j.gather(1, i[:, None])[:, 0]
    has = m.amax(1) >= 0
    rows = torch.arange(x.shape[0], device=x.device)
    dtype = dtype or compute_dtype(x)
    diff = x[rows, i].to(dtype) - x[rows, j.clamp_min(0)].to(dtype)
    return torch.where(has, (diff * diff).sum(-1), 0)

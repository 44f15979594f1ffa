"""``cluster_merge`` in Triton: per-cluster weighted means by sort and segments, no atomics.

The tokens of each sample are sorted by cluster id (``argsort``, stable), so each cluster's
members form one segment; a program owns one (sample, cluster, feature slice) and sums its segment
in f32 (f64 for f64). Why not atomics: a float ``atomic_add`` per token and feature makes the result
depend on arrival order (not reproducible run to run) and contends when clusters are large (a stage
of 576 tokens into 64 clusters puts ~9 tokens on every output row). Why not a one-hot GEMM
(``[C,N]·[N,D]``): its work grows with C, the segment sum reads every token once whatever C. What
bounds it: one pass over x (memory-bound), plus the sort of ``[B,N]`` int64 keys; a very large
cluster serializes on ``D / BLOCK_D`` programs. The backward is the op's own (``merge_backward``
in ``emollm/ops/cluster_merge.py``), which needs only this forward.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from emollm.ops._backend import register

from ._common import compute_dtype, tl_compute_dtype
from ._launch import launch


@triton.jit
def _segment_mean_kernel(x_ptr, w_ptr, order_ptr, start_ptr, count_ptr, out_ptr, N, C, D, HAS_W: tl.constexpr,
                         CDT: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_F: tl.constexpr):
    bc = tl.program_id(0)  # sample * C + cluster
    b = bc // C
    f = tl.program_id(1) * BLOCK_F + tl.arange(0, BLOCK_F)
    fm = f < D
    start = tl.load(start_ptr + bc)
    count = tl.load(count_ptr + bc)
    offs = tl.arange(0, BLOCK_T)
    acc = tl.zeros((BLOCK_F,), CDT)
    total = tl.zeros((BLOCK_T,), CDT)
    for t0 in range(0, count, BLOCK_T):
        t = t0 + offs
        tm = t < count
        i = tl.load(order_ptr + b * N + start + t, mask=tm, other=0)
        if HAS_W:
            w = tl.load(w_ptr + b * N + i, mask=tm, other=0.0).to(CDT)
        else:
            w = tm.to(CDT)
        xv = tl.load(x_ptr + (b * N + i)[:, None] * D + f[None, :], mask=tm[:, None] & fm[None, :], other=0.0)
        acc += tl.sum(w[:, None] * xv.to(CDT), 0)
        total += w
    tot = tl.sum(total, 0)
    mean = tl.where(tot > 0, acc / tl.where(tot > 0, tot, 1.0), 0.0)
    tl.store(out_ptr + bc.to(tl.int64) * D + f, mean, mask=fm)


def segments(assign: Tensor, num_clusters: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(order [B,N], start [B,C], count [B,C])``: tokens sorted by cluster (ignored ones last)
    and each cluster's segment in that order."""
    # contiguous: the kernel reads order as a dense [B,N] array (argsort keeps a strided layout)
    keys = torch.where(assign >= 0, assign, num_clusters).contiguous()
    order = keys.argsort(dim=1, stable=True)
    count = torch.zeros(assign.shape[0], num_clusters + 1, dtype=torch.int64, device=assign.device)
    count.scatter_add_(1, keys, torch.ones_like(keys))
    start = count.cumsum(1) - count
    return order, start[:, :num_clusters].contiguous(), count[:, :num_clusters].contiguous()


@register("cluster_merge", "triton")
def cluster_merge(x: Tensor, assign: Tensor, num_clusters: int, weight: Tensor | None) -> Tensor:
    b, n, d = x.shape
    x = x.contiguous()
    order, start, count = segments(assign, num_clusters)
    # Written in the compute dtype and rounded by torch: the interpreter rounds f32 -> bf16 wrongly,
    # and [B,C,D] is small next to x.
    out = torch.empty(b, num_clusters, d, dtype=compute_dtype(x), device=x.device)
    w = weight.to(compute_dtype(x)).contiguous() if weight is not None else order  # order: unused pointer
    cfg = launch("segment_mean", device=x.device)  # BLOCK_T members per step, BLOCK_F features per program
    _segment_mean_kernel[(b * num_clusters, triton.cdiv(d, cfg["BLOCK_F"]))](
        x, w, order, start, count, out, n, num_clusters, d, weight is not None, tl_compute_dtype(x), **cfg.kwargs())
    return out.to(x.dtype)

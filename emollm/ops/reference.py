"""Plain PyTorch implementations of every op contract (docs/design.md#op-contracts): the readable spec.

Any device, O(N²) memory: each function materializes the full pairwise distance matrix, from
explicit differences ``x_i − x_j`` in float64, so ties are exact (duplicate tokens are at
distance 0 from each other and at equal distances from everyone else) and every decision follows
the contract's lower-index rules. They are the fallback backend and the yardstick of the tests;
the speed baseline of the benchmarks is Chat-UniVi's own arithmetic (benchmarks/chat_univi.py).
Inputs arrive batched and checked (``x`` is ``[B,N,D]``, ``mask`` ``[B,N]`` bool or None).
"""

from __future__ import annotations

import torch
from torch import Tensor

from emollm.ops._backend import ANY_DEVICE, Backend, declare, register

# The readable spec: runs on every device, and is the automatic choice only where no other
# backend runs (last in every order). Its distances are exact enough not to need centring.
BACKEND = declare(Backend(
    "reference", devices=frozenset({ANY_DEVICE}), auto_rank={ANY_DEVICE: 1000}, wants_centered=False,
    status=lambda: (True, "plain PyTorch (emollm/ops/reference.py)"),
))

def _valid(x: Tensor, mask: Tensor | None) -> Tensor:
    return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask


def pairwise_sqdist(x: Tensor) -> Tensor:
    """``[B,N,D] -> [B,N,N]`` float64: ``||x_i - x_j||² / D`` from explicit differences (``cdist``
    without its Gram-matrix shortcut), so exact duplicates are at distance 0 and have equal rows."""
    xd = x.double()
    d = torch.cdist(xd, xd, compute_mode="donot_use_mm_for_euclid_dist")
    return d.square() / x.shape[-1]


@register("knn_density", "reference")
def knn_density(x: Tensor, k: int, mask: Tensor | None, include_self: bool) -> Tensor:
    valid = _valid(x, mask)
    d2 = pairwise_sqdist(x).masked_fill(~valid[:, None, :], float("inf"))
    if not include_self:
        d2.diagonal(dim1=1, dim2=2).fill_(float("inf"))
    nearest = d2.topk(k, dim=-1, largest=False).values
    rho = torch.exp(-nearest.mean(-1)).float()
    return rho.masked_fill(~valid, 0.0)


def _delta(d: Tensor, rho: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    n = d.shape[-1]
    idx = torch.arange(n, device=d.device)
    r_i, r_j = rho[:, :, None], rho[:, None, :]
    # denser[b, i, j]: token j is denser than token i (ties go to the lower index).
    denser = (r_j > r_i) | ((r_j == r_i) & (idx[None, None, :] < idx[None, :, None]))
    denser &= valid[:, None, :]
    pair_valid = valid[:, :, None] & valid[:, None, :]
    d_max = d.masked_fill(~pair_valid, 0).flatten(1).amax(1)
    delta, parent = d.masked_fill(~denser, float("inf")).min(-1)  # min: first index on ties
    peak = ~denser.any(-1)
    delta = torch.where(peak, d_max[:, None], delta)
    parent = torch.where(peak, idx, parent)
    delta = delta.masked_fill(~valid, 0)
    parent = torch.where(valid, parent, idx)
    return delta.float(), parent


@register("dpc_delta", "reference")
def dpc_delta(x: Tensor, rho: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    return _delta(pairwise_sqdist(x).sqrt(), rho, _valid(x, mask))


@register("dpc_cluster", "reference")
def dpc_cluster(x: Tensor, num_clusters: int, k: int, mask: Tensor | None,
                include_self: bool) -> tuple[Tensor, Tensor]:
    valid = _valid(x, mask)
    rho = knn_density(x, k, mask, include_self)
    d = pairwise_sqdist(x).sqrt()
    delta, _ = _delta(d, rho, valid)
    score = (rho * delta).masked_fill(~valid, float("-inf"))
    centers = score.sort(dim=-1, descending=True, stable=True).indices[:, :num_clusters].contiguous()
    to_centers = d.gather(2, centers[:, None, :].expand(-1, d.shape[1], -1))  # [B,N,C]
    assign = to_centers.argmin(-1)  # first (lowest id) on ties
    ids = torch.arange(num_clusters, device=x.device).expand_as(centers)
    assign = assign.scatter(1, centers, ids)
    return centers, assign.masked_fill(~valid, -1)


@register("dpc_cluster_merge", "reference")
def dpc_cluster_merge(x: Tensor, num_clusters: int, k: int, mask: Tensor | None, include_self: bool,
                      weight: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    # The two ops in a row, through their public custom ops (each with its own checks).
    centers, assign = torch.ops.emollm.dpc_cluster(x, num_clusters, k, mask, include_self)
    return centers, assign, torch.ops.emollm.cluster_merge(x, assign, num_clusters, weight)


@register("cluster_merge", "reference")
def cluster_merge(x: Tensor, assign: Tensor, num_clusters: int, weight: Tensor | None) -> Tensor:
    b, _, dim = x.shape
    xa = x.double()  # the output is then the correctly rounded mean
    member = assign >= 0
    xa = torch.where(member[..., None], xa, 0)  # an ignored token never reaches a sum, NaN or not
    w = torch.ones(assign.shape, dtype=xa.dtype, device=x.device) if weight is None else weight.to(xa.dtype)
    w = w * member
    slot = assign.clamp_min(0)
    sums = xa.new_zeros(b, num_clusters, dim).scatter_add_(1, slot[..., None].expand(-1, -1, dim), xa * w[..., None])
    total = xa.new_zeros(b, num_clusters).scatter_add_(1, slot, w)
    mean = sums / total.clamp_min(torch.finfo(xa.dtype).tiny)[..., None]
    return torch.where(total[..., None] > 0, mean, 0).to(x.dtype)


def pack_bits(dense: Tensor) -> Tensor:
    """``[B,C,C]`` bool -> ``[B,C,ceil(C/64)]`` int64; bit ``j % 64`` of word ``j // 64``."""
    b, c, _ = dense.shape
    words = (c + 63) // 64
    padded = dense.new_zeros(b, c, words * 64)
    padded[..., :c] = dense
    shifts = torch.arange(64, device=dense.device, dtype=torch.int64)
    # Distinct powers of two add without carries; 1 << 63 wraps to the sign bit, as intended.
    return (padded.view(b, c, words, 64).long() << shifts).sum(-1)


def unpack_bits(bits: Tensor, num_nodes: int) -> Tensor:
    """Inverse of :func:`pack_bits`: ``[B,C,W]`` int64 -> ``[B,C,num_nodes]`` bool."""
    shifts = torch.arange(64, device=bits.device, dtype=torch.int64)
    dense = (bits[..., None] >> shifts) & 1
    return dense.flatten(-2)[..., :num_nodes].bool()


@register("gcn_adjacency", "reference")
def gcn_adjacency(z: Tensor, tau: float, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    valid = _valid(z, mask)
    c = z.shape[1]
    d = pairwise_sqdist(z).sqrt()  # the 1/sqrt(F) factor cancels in d / max d
    pair_valid = valid[:, :, None] & valid[:, None, :]
    d_max = d.masked_fill(~pair_valid, 0).flatten(1).amax(1)[:, None, None]
    # d / max d <= tau; all-equal nodes (max 0) have every normalized distance 0.
    d_norm = torch.where(d_max > 0, d / d_max.clamp_min(1e-300), 0)
    eye = torch.eye(c, dtype=torch.bool, device=z.device)
    a_hat = ((d_norm <= tau) | eye) & pair_valid
    deg = a_hat.sum(-1).float()
    dinv = torch.where(deg > 0, deg.clamp_min(1).rsqrt(), 0)
    return pack_bits(a_hat), dinv


@register("gcn_propagate", "reference")
def gcn_propagate(bits: Tensor, dinv: Tensor, h: Tensor) -> Tensor:
    a_hat = unpack_bits(bits, h.shape[1]).double()
    dinv = dinv.to(a_hat.dtype)
    out = dinv[..., None] * (a_hat @ (dinv[..., None] * h.double()))
    return out.to(h.dtype)

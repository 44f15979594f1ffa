"""``cluster_merge``: weighted mean of each cluster's tokens, differentiable in x and weight."""

from __future__ import annotations

import torch
from torch import Tensor

from emollm.ops import _backend, _checks

# No finiteness pass over x: a merged mean is non-finite exactly when a member token is, so the
# [B,C,D] output is checked instead, at a fraction of the cost.
_backend.define(_backend.OpContract("cluster_merge", check_output=_checks.check_merged_finite))


@torch.library.custom_op("emollm::cluster_merge", mutates_args=())
def _cluster_merge(x: Tensor, assign: Tensor, num_clusters: int, weight: Tensor | None) -> Tensor:
    _checks.check_assign(assign, num_clusters)
    if weight is not None:
        _checks.check_weight(weight)
        weight = scaled_weight(weight)
    return _backend.call("cluster_merge", x=x, assign=assign, num_clusters=num_clusters, weight=weight)


def scaled_weight(weight: Tensor) -> Tensor:
    """``weight`` ``[B,N]`` times a power of two per sample (exact; a mean does not change when all
    its weights do), so that subnormal weights do not underflow to a zero total."""
    return _checks.pow2_scaled(weight).to(weight.dtype)


@_cluster_merge.register_fake
def _(x, assign, num_clusters, weight):
    return x.new_empty((x.shape[0], num_clusters, x.shape[2]))


def merge_backward(x: Tensor, assign: Tensor, weight: Tensor | None, out: Tensor, grad: Tensor,
                   need_x: bool, need_weight: bool) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of ``out = cluster_merge(x, assign, C, weight=weight)`` for x and weight.

    ``out_c = sum_i w_i x_i / W_c`` over i in c, so ``d out_c / d x_i = w_i / W_c`` and
    ``d out_c / d w_i = (x_i - out_c) / W_c``.
    """
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    member = assign >= 0
    slot = assign.clamp_min(0)
    # The forward scaled the weights by a power of two per sample; so does this (w / W is the same).
    if weight is None:
        scale, w = None, torch.ones(assign.shape, dtype=acc, device=x.device)
    else:
        scale = _checks.pow2_scale(weight)
        w = (weight * scale[0] * scale[1]).to(acc)
    w = w * member
    total = torch.zeros(out.shape[:2], dtype=acc, device=x.device).scatter_add_(1, slot, w)
    inv = torch.where(total > 0, 1 / total.clamp_min(torch.finfo(acc).tiny), 0)
    inv_i = inv.gather(1, slot) * member  # [B,N]
    idx = slot[..., None].expand(-1, -1, x.shape[-1])
    g_i = grad.to(acc).gather(1, idx)  # [B,N,D]: the gradient of each token's cluster
    grad_x = grad_w = None
    if need_x:
        grad_x = (g_i * (w * inv_i)[..., None]).to(x.dtype)
    if weight is not None and need_weight:
        out_i = out.to(acc).gather(1, idx)
        # d out_c / d w_i = (x_i - out_c) / W_c, with W_c = (scaled total) / scale.
        grad_w = torch.where(member, ((x.to(acc) - out_i) * g_i).sum(-1) * inv_i, 0).double() * scale[0] * scale[1]
        grad_w = grad_w.to(weight.dtype)
    return grad_x, grad_w


def _setup_context(ctx, inputs, output):
    x, assign, _, weight = inputs
    ctx.save_for_backward(x, assign, weight, output)


def _backward(ctx, grad):
    x, assign, weight, out = ctx.saved_tensors
    grad_x, grad_w = merge_backward(x, assign, weight, out, grad, ctx.needs_input_grad[0], ctx.needs_input_grad[3])
    return grad_x, None, None, grad_w


_cluster_merge.register_autograd(_backward, setup_context=_setup_context)


def cluster_merge(x: Tensor, assign: Tensor, num_clusters: int, *, weight: Tensor | None = None) -> Tensor:
    """Weighted mean of the tokens of each cluster.

    Args:
        x: ``[B,N,D]`` or ``[N,D]`` tokens.
        assign: ``[B,N]`` int64 cluster ids in ``[-1, num_clusters)``; -1 = ignored.
        num_clusters: C.
        weight: optional ``[B,N]`` non-negative token weights (default 1).

    Returns:
        ``[B,C,D]`` in x's dtype (accumulated in float32, float64 for float64); an empty
        cluster (or one of zero total weight) is 0. Differentiable in x and weight.
    """
    xb, squeeze = _checks.as_batched(x)
    _checks.positive_int(num_clusters, "num_clusters")
    if not isinstance(assign, Tensor):
        raise TypeError(f"assign must be a torch.Tensor, got {type(assign).__name__}")
    if assign.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"assign must be an int64 tensor of cluster ids, got {assign.dtype}")
    ab = assign.unsqueeze(0) if squeeze and assign.dim() == 1 else assign
    if tuple(ab.shape) != tuple(xb.shape[:2]):
        raise ValueError(f"assign must have shape {tuple(x.shape[:-1])} to match x, got {tuple(assign.shape)}")
    _checks.same_device(ab, xb, "assign")
    wb = _checks.as_batched_weight(weight, xb, squeeze)
    out = torch.ops.emollm.cluster_merge(xb, ab.long(), num_clusters, wb)
    return out.squeeze(0) if squeeze else out

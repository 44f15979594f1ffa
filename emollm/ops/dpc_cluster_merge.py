"""``dpc_cluster_merge``: :func:`dpc_cluster` and :func:`cluster_merge` in one op.

One MVP stage. The compiled kernels merge each sample right after assigning it, while its
tokens are still in cache; other backends compose the two ops.
"""

from __future__ import annotations

import torch
from torch import Tensor

from emollm.ops import _backend, _checks
from emollm.ops.cluster_merge import merge_backward, scaled_weight


def _uncenter(out: tuple[Tensor, Tensor, Tensor], shift: Tensor, args: dict) -> tuple[Tensor, Tensor, Tensor]:
    # The kernel merged centred tokens: move the clusters with members back by the shift.
    centers, assign, merged = out
    has_weight = _has_weight(assign, args["weight"], args["num_clusters"])
    return centers, assign, merged + shift * has_weight[..., None].to(merged.dtype)


_backend.define(_backend.OpContract("dpc_cluster_merge", tokens="x", mask="mask", centered=True, uncenter=_uncenter))


@torch.library.custom_op("emollm::dpc_cluster_merge", mutates_args=())
def _dpc_cluster_merge(x: Tensor, num_clusters: int, k: int, mask: Tensor | None, include_self: bool,
                       weight: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    # Returns (merged, centers, assign): the float output first, so that harnesses summing the
    # outputs (opcheck's autograd test) start from a float.
    _checks.check_valid_count(mask, k, k if include_self else k + 1, "k")
    _checks.check_valid_count(mask, num_clusters, num_clusters, "num_clusters")
    if weight is not None:
        _checks.check_weight(weight)
        weight = scaled_weight(weight)
    centers, assign, merged = _backend.call("dpc_cluster_merge", x=x, num_clusters=num_clusters, k=k, mask=mask,
                                            include_self=include_self, weight=weight)
    return merged, centers, assign


def _has_weight(assign: Tensor, weight: Tensor | None, num_clusters: int) -> Tensor:
    """``[B,C]`` bool: the cluster has members of positive total weight (else its mean is 0)."""
    member = assign >= 0
    w = member.to(torch.float32) if weight is None else torch.where(member, weight.float(), 0)
    total = w.new_zeros(assign.shape[0], num_clusters).scatter_add_(1, assign.clamp(min=0), w)
    return total > 0


@_dpc_cluster_merge.register_fake
def _(x, num_clusters, k, mask, include_self, weight):
    b, n, d = x.shape
    long = dict(dtype=torch.int64)
    return x.new_empty((b, num_clusters, d)), x.new_empty((b, num_clusters), **long), x.new_empty((b, n), **long)


def _setup_context(ctx, inputs, output):
    x, _, _, _, _, weight = inputs
    ctx.save_for_backward(x, output[2], weight, output[0])


def _backward(ctx, grad_merged, grad_centers, grad_assign):
    x, assign, weight, merged = ctx.saved_tensors
    grad_x, grad_w = merge_backward(x, assign, weight, merged, grad_merged, ctx.needs_input_grad[0],
                                    ctx.needs_input_grad[5])
    return grad_x, None, None, None, None, grad_w


_dpc_cluster_merge.register_autograd(_backward, setup_context=_setup_context)


def dpc_cluster_merge(x: Tensor, num_clusters: int, k: int, *, mask: Tensor | None = None,
                      include_self: bool = True, weight: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Cluster with :func:`dpc_cluster`, then merge with :func:`cluster_merge`, in one op.

    Args:
        x: ``[B,N,D]`` or ``[N,D]`` tokens.
        num_clusters, k, mask, include_self: as in :func:`dpc_cluster`.
        weight: optional ``[B,N]`` non-negative token weights for the mean (default 1).

    Returns:
        ``(centers [B,C] int64, assign [B,N] int64, merged [B,C,D] x.dtype)``; ``merged`` is
        differentiable in x and weight.
    """
    xb, squeeze = _checks.as_batched(x)
    mask = _checks.as_batched_mask(mask, xb, squeeze)
    wb = _checks.as_batched_weight(weight, xb, squeeze)
    _checks.cluster_sizes(num_clusters, k, xb.shape[1], include_self)
    merged, centers, assign = torch.ops.emollm.dpc_cluster_merge(xb, num_clusters, k, mask, include_self, wb)
    out = (centers, assign, merged)
    return tuple(t.squeeze(0) for t in out) if squeeze else out

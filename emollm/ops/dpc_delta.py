"""``dpc_delta``: DPC distance index, the distance to the nearest denser token (paper eq. 3)."""

from __future__ import annotations

import torch
from torch import Tensor

from emollm.ops import _backend, _checks

_backend.define(_backend.OpContract("dpc_delta", tokens="x", mask="mask", centered=True))


@torch.library.custom_op("emollm::dpc_delta", mutates_args=())
def _dpc_delta(x: Tensor, rho: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    _checks.check_finite(rho, "rho", mask)
    return _backend.call("dpc_delta", x=x, rho=rho, mask=mask)


@_dpc_delta.register_fake
def _(x, rho, mask):
    shape = x.shape[:2]
    return x.new_empty(shape, dtype=torch.float32), x.new_empty(shape, dtype=torch.int64)


def dpc_delta(x: Tensor, rho: Tensor, *, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Distance from each token to its nearest denser token.

    Token j is *denser* than i iff ``rho_j > rho_i``, or they are equal and ``j < i``.
    ``delta_i = min d(i,j)`` over denser valid j, and ``parent_i`` is that j (the lowest j on
    equal distance). The densest token gets the sample's largest valid pairwise distance and
    is its own parent. Padded tokens get 0 and themselves. Distances are not squared.

    Args:
        x: ``[B,N,D]`` or ``[N,D]`` tokens.
        rho: ``[B,N]`` (or ``[N]``) densities, e.g. from :func:`knn_density`; compared in
            float32, the dtype knn_density returns (a float64 rho is rounded first, so densities
            that differ only below float32 resolution tie, and the lower index is denser).
        mask: optional ``[B,N]`` bool, True = real token.

    Returns:
        ``(delta [B,N] float32, parent [B,N] int64)``.
    """
    xb, squeeze = _checks.as_batched(x)
    mask = _checks.as_batched_mask(mask, xb, squeeze)
    if not isinstance(rho, Tensor):
        raise TypeError(f"rho must be a torch.Tensor, got {type(rho).__name__}")
    if not rho.is_floating_point():
        raise TypeError(f"rho must be a floating-point tensor, got {rho.dtype}")
    rb = rho.unsqueeze(0) if squeeze and rho.dim() == 1 else rho
    if tuple(rb.shape) != tuple(xb.shape[:2]):
        want = tuple(xb.shape[1:2]) if squeeze else tuple(xb.shape[:2])
        raise ValueError(f"rho must have shape {want} to match x, got {tuple(rho.shape)}")
    _checks.same_device(rb, xb, "rho")
    delta, parent = torch.ops.emollm.dpc_delta(xb, rb.float(), mask)
    return (delta.squeeze(0), parent.squeeze(0)) if squeeze else (delta, parent)

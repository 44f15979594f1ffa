"""``knn_density``: DPC-KNN local density (paper eq. 2, Chat-UniVi's ``cluster_dpc_knn``)."""

from __future__ import annotations

import torch
from torch import Tensor

from emollm.ops import _backend, _checks

_backend.define(_backend.OpContract("knn_density", tokens="x", mask="mask", centered=True))


@torch.library.custom_op("emollm::knn_density", mutates_args=())
def _knn_density(x: Tensor, k: int, mask: Tensor | None, include_self: bool) -> Tensor:
    _checks.check_valid_count(mask, k, k if include_self else k + 1, "k")
    return _backend.call("knn_density", x=x, k=k, mask=mask, include_self=include_self)


@_knn_density.register_fake
def _(x, k, mask, include_self):
    return x.new_empty(x.shape[:2], dtype=torch.float32)


def knn_density(x: Tensor, k: int, *, mask: Tensor | None = None, include_self: bool = True) -> Tensor:
    """Local density of every token from its k nearest neighbours.

    ``rho_i = exp(-mean of the k smallest d(i,j)²)`` over valid tokens j, with
    ``d(i,j) = ||x_i - x_j||₂ / sqrt(D)``.

    Args:
        x: ``[B,N,D]`` or ``[N,D]`` tokens, float32/float16/bfloat16 (float64 on CPU).
        k: neighbours per token, ``1 <= k <= valid tokens`` (``valid - 1`` without self).
        mask: optional ``[B,N]`` bool, True = real token; padded tokens get density 0 and are
            never anyone's neighbour.
        include_self: count the token itself (distance 0) among its k nearest, as Chat-UniVi
            does; False is the paper's eq. 2.

    Returns:
        rho ``[B,N]`` (or ``[N]``) float32.
    """
    xb, squeeze = _checks.as_batched(x)
    mask = _checks.as_batched_mask(mask, xb, squeeze)
    _checks.positive_int(k, "k")
    _checks.boolean(include_self, "include_self")
    n = xb.shape[1]
    _checks.at_most_tokens(k, n if include_self else n - 1, "k",
                           "tokens" if include_self else "other tokens (include_self=False)")
    rho = torch.ops.emollm.knn_density(xb, k, mask, include_self)
    return rho.squeeze(0) if squeeze else rho

"""Argument checks shared by the ops: every bad input raises a ValueError/TypeError naming it.

Two kinds of check:
- static (shapes, dtypes, devices, ranges of Python numbers): in the public functions, so that
  ``torch.compile`` sees them as guards;
- data-dependent (valid-token counts under a mask, finiteness, ranges of index tensors): inside
  the custom ops, where they cost no graph break. On CUDA tensors they need a device sync, so they
  run only when ``EMOLLM_CHECKS=1``.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor


def as_batched(x: Tensor, name: str = "x") -> tuple[Tensor, bool]:
    """``[N,D]`` or ``[B,N,D]`` float tensor -> ``([B,N,D], was_2d)``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (float32/float16/bfloat16/float64), got {x.dtype}")
    if x.dtype == torch.float64 and x.device.type != "cpu":
        raise TypeError(f"{name}: float64 is supported on CPU only, got a float64 tensor on {x.device}")
    if x.dim() not in (2, 3):
        raise ValueError(f"{name} must be [N,D] or [B,N,D], got shape {tuple(x.shape)}")
    squeeze = x.dim() == 2
    if squeeze:
        x = x.unsqueeze(0)
    if x.shape[1] == 0 or x.shape[2] == 0:
        raise ValueError(f"{name} must have at least one token and one feature, got shape {tuple(x.shape)}")
    return x, squeeze


def as_batched_mask(mask: Tensor | None, x: Tensor, squeeze: bool, name: str = "mask") -> Tensor | None:
    """Checks ``mask`` against batched ``x`` ([B,N,...]) and returns it as ``[B,N]`` bool."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise TypeError(f"{name} must be a bool torch.Tensor or None, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor (True = real token), got {mask.dtype}")
    if squeeze and mask.dim() == 1:
        mask = mask.unsqueeze(0)
    if tuple(mask.shape) != tuple(x.shape[:2]):
        want = tuple(x.shape[1:2]) if squeeze else tuple(x.shape[:2])
        raise ValueError(f"{name} must have shape {want} to match the tokens, got {tuple(mask.shape)}")
    same_device(mask, x, name)
    return mask


def as_batched_weight(weight: Tensor | None, x: Tensor, squeeze: bool) -> Tensor | None:
    """Checks per-token ``weight`` against batched ``x`` and returns it as ``[B,N]``."""
    if weight is None:
        return None
    if not isinstance(weight, Tensor) or not weight.is_floating_point():
        raise TypeError("weight must be a floating-point torch.Tensor or None")
    wb = weight.unsqueeze(0) if squeeze and weight.dim() == 1 else weight
    if tuple(wb.shape) != tuple(x.shape[:2]):
        want = tuple(x.shape[1:2]) if squeeze else tuple(x.shape[:2])
        raise ValueError(f"weight must have shape {want} to match x, got {tuple(weight.shape)}")
    same_device(wb, x, "weight")
    return wb


def same_device(t: Tensor, x: Tensor, name: str) -> None:
    if t.device != x.device:
        raise ValueError(f"{name} is on {t.device} but the input is on {x.device}; move them to one device")


def positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def boolean(value: bool, name: str) -> bool:
    """``value`` if it is a bool (a string such as ``"no"`` is truthy and would pass silently)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def at_most_tokens(value: int, n: int, name: str, what: str = "tokens") -> None:
    if value > n:
        raise ValueError(f"{name}={value} exceeds the number of {what} ({n})")


def cluster_sizes(num_clusters: int, k: int, n: int, include_self: bool) -> None:
    """``num_clusters`` and ``k`` of a clustering over ``n`` tokens, and ``include_self``."""
    boolean(include_self, "include_self")
    positive_int(num_clusters, "num_clusters")
    positive_int(k, "k")
    at_most_tokens(num_clusters, n, "num_clusters")
    at_most_tokens(k, n if include_self else n - 1, "k",
                   "tokens" if include_self else "other tokens (include_self=False)")


def data_checks_on(t: Tensor) -> bool:
    return t.device.type == "cpu" or os.environ.get("EMOLLM_CHECKS") == "1"


def check_finite(x: Tensor, name: str, mask: Tensor | None = None, *, distances: bool = False) -> None:
    """Raises if a real token of ``x`` (``mask`` [B,N]: padded tokens may hold anything) holds
    NaN or Inf; with ``distances``, also if its values are so large that squared distances
    between tokens overflow the compute dtype (float32; float64 for float64 input): the
    distance-based ops would then return NaN silently. One pass over x (the row norms, or a sum);
    the slower tests run only on failure."""
    if not data_checks_on(x):
        return
    if mask is not None:
        x = x[mask]
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    if not distances:
        if not bool(torch.isfinite(x.sum(dtype=acc))) and not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} contains NaN or Inf")
        return
    # ||x_i - x_j||² <= 4 max ||x||²: rows up to sqrt(max)/2 keep every squared distance finite.
    limit = torch.finfo(acc).max ** 0.5 / 2
    norms = torch.linalg.vector_norm(x, dim=-1, dtype=acc)
    if bool((norms <= limit).all()):
        return
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf")
    biggest = float(x.abs().max())
    raise ValueError(f"{name} holds values up to {biggest:.3g}: squared distances between tokens overflow "
                     f"{str(acc).removeprefix('torch.')}; scale the tokens down or pass float64")


def check_merged_finite(out: Tensor) -> None:
    """A merged mean is non-finite exactly when a token it merges is (or its sum overflows):
    checking the [B,C,D] output covers every member token at a fraction of the cost. A finite
    sum proves every value finite (one reduction, no [B,C,D] mask); only an infinite sum, which
    finite values can also reach, pays the elementwise test."""
    if not data_checks_on(out):
        return
    acc = torch.float64 if out.dtype == torch.float64 else torch.float32
    if not bool(torch.isfinite(out.sum(dtype=acc))) and not bool(torch.isfinite(out).all()):
        raise ValueError("x contains NaN or Inf in a token that is merged into a cluster (or a cluster's "
                         "weighted sum overflows)")


def check_valid_count(mask: Tensor | None, value: int, need: int, name: str) -> None:
    """Every sample must have at least ``need`` valid tokens for ``name=value``."""
    if mask is None or not data_checks_on(mask):
        return
    fewest = int(mask.sum(1).min())
    if fewest < need:
        raise ValueError(f"{name}={value} needs {need} valid tokens in every sample, "
                         f"but a sample has only {fewest} under the mask")


def check_assign(assign: Tensor, num_clusters: int) -> None:
    if not data_checks_on(assign) or assign.numel() == 0:
        return
    lo, hi = int(assign.min()), int(assign.max())
    if lo < -1 or hi >= num_clusters:
        raise ValueError(f"assign values must lie in [-1, {num_clusters - 1}] (num_clusters={num_clusters}), "
                         f"got values in [{lo}, {hi}]")


def check_weight(weight: Tensor) -> None:
    if not data_checks_on(weight):
        return
    check_finite(weight, "weight")
    if bool((weight < 0).any()):
        raise ValueError("weight must be >= 0 (it weights a mean)")


def _masked_stats(x: Tensor, mask: Tensor | None, acc: torch.dtype) -> tuple[Tensor, Tensor]:
    """Per sample: the mean ``[B,1,D]`` and the mean squared norm ``[B]`` of the valid tokens, both
    summed in ``acc`` (a float16 sum of CLIP-like features overflows)."""
    n = x.shape[1]
    sq = torch.linalg.vector_norm(x, dim=-1, dtype=acc).square()
    if mask is None:
        return x.sum(1, keepdim=True, dtype=acc) / n, sq.mean(1)
    count = mask.sum(1).to(acc).clamp(min=1)
    total = x.masked_fill(~mask[..., None], 0).sum(1, keepdim=True, dtype=acc)  # padding may hold NaN
    return total / count[:, None, None], torch.where(mask, sq, 0).sum(1) / count


SAMPLED_TOKENS = 16  # per sample, in center_for_gram's dominance test


def center_for_gram(x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """``(x - shift, shift)``: each sample moved by the mean of its valid tokens when that mean dominates.

    The fused backends rank neighbours by ``||x_i||² + ||x_j||² − 2⟨x_i, x_j⟩`` in float32, which
    loses small distances when every token carries a large common offset (CLIP features have a
    few large, nearly constant channels): with ``x = 1000 + randn`` the wrong neighbours win.
    Distances do not change under translation, so a sample whose squared mean norm exceeds half
    its mean squared norm (the offset dominates the spread) is centered first. The test reads
    at most 16 evenly spaced tokens per sample: the rule asks whether ``||mean||²`` exceeds the
    spread, and a wrong call near that border only costs a few ulps, never a wrong answer (the
    selection is exact either way); at B=64, N=256, D=1024 the test cost a quarter of the stage
    with 64 tokens. The full mean
    and a centered copy of x are made only when some sample needs them. Returns ``(x, None)``
    when none does; else ``shift`` is ``[B,1,D]`` in x's dtype, 0 for the other samples.
    """
    n = x.shape[1]
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    step = max(1, n // SAMPLED_TOKENS)
    sub_mask = None if mask is None else mask[:, ::step]
    if sub_mask is not None and not bool(sub_mask.any(1).all()):
        step, sub_mask = 1, mask  # a sample with no valid token among the sampled ones
    mean, mean_sq = _masked_stats(x[:, ::step], sub_mask, acc)
    dominant = 2 * mean.square().sum(-1).squeeze(1) > mean_sq  # False with NaN: the finiteness checks say so
    if not bool(dominant.any()):
        return x, None
    if step > 1:
        mean, _ = _masked_stats(x, mask, acc)
    shift = torch.where(dominant[:, None, None], mean, 0).to(x.dtype)
    return x - shift, shift


def pow2_scale(t: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per sample, the power of two ``2^-e`` that brings the largest ``|t|`` of its valid entries into
    [0.5, 1), as two float64 factors ``[B,1,...]`` whose product it is (a subnormal's factor can
    exceed even float64's range; each half cannot); 1 where that largest is 0 or not finite.
    Multiplying by powers of two is exact, so scale-invariant quantities (a τ-graph of normalized
    distances, a weighted mean) computed on the scaled values lose nothing, and neither subnormal
    nor huge inputs underflow or overflow."""
    mag = t.abs().double()
    if mask is not None:
        mag = mag.masked_fill(~mask.view(*mask.shape, *([1] * (t.dim() - mask.dim()))), 0)
    top = mag.flatten(1).nan_to_num(0.0, 0.0, 0.0).amax(1)
    _, exponent = torch.frexp(top)
    exponent = torch.where(top > 0, exponent, 0)
    half = torch.div(exponent, 2, rounding_mode="floor")
    one = torch.ones_like(top)
    shape = (-1, *([1] * (t.dim() - 1)))
    return torch.ldexp(one, -half).view(shape), torch.ldexp(one, half - exponent).view(shape)


def pow2_scaled(t: Tensor, mask: Tensor | None = None) -> Tensor:
    """``t`` in float64, scaled per sample by :func:`pow2_scale` (its largest ``|t|`` in [0.5, 1))."""
    first, second = pow2_scale(t, mask)
    return t.double() * first * second


# Largest |value| per sample inside [2^-SAFE_EXPONENT, 2^SAFE_EXPONENT]: squares, sums over a few
# thousand features and their ratios stay far from float32's underflow and overflow.
SAFE_EXPONENT = 20


def scaled_if_needed(t: Tensor, mask: Tensor | None, dtype: torch.dtype) -> Tensor:
    """``t`` in ``dtype``, first scaled by :func:`pow2_scaled` only if some sample's largest valid
    ``|t|`` lies outside [2^-20, 2^20] (0 aside) or is not finite. For scale-free results (the
    τ-graph) both give the same answer where no scaling is needed; the test is one min/max pass
    in ``t``'s own dtype, where the scaling converts ``t`` to float64 twice."""
    if t.numel() == 0:
        return t.to(dtype)
    flat = t if mask is None else t.masked_fill(~mask.view(*mask.shape, *([1] * (t.dim() - mask.dim()))), 0)
    flat = flat.flatten(1)
    top = torch.maximum(-flat.amin(1), flat.amax(1)).float()  # NaN where a sample holds NaN: not "safe"
    # (amin and amax are vectorized reductions; aminmax over a dim is 15x slower on CPU)
    safe = (top == 0) | ((top >= 2.0 ** -SAFE_EXPONENT) & (top <= 2.0 ** SAFE_EXPONENT))
    if bool(safe.all()):
        return t.to(dtype)
    return pow2_scaled(t, mask).to(dtype)

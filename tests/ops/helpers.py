"""Inputs and comparisons shared by the op tests."""

from __future__ import annotations

import torch
from torch import Tensor

# Tolerances against the float64 oracle for float32 and float64 inputs. Distances come from a
# Gram matrix in the kernels (||a||² + ||b||² - 2a·b), whose cancellation costs a few ulps of ||x||².
RTOL = {torch.float32: 1e-4, torch.float64: 1e-9}
ATOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def tokens(b: int, n: int, d: int, dtype=torch.float32, seed: int = 0) -> Tensor:
    """Random Gaussian tokens: distinct distances almost surely (tie-free)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, n, d, generator=g, dtype=torch.float64).to(dtype)


def random_mask(b: int, n: int, keep: int, seed: int = 0) -> Tensor:
    """``[B,N]`` bool with exactly ``keep`` True per row, at random places."""
    g = torch.Generator().manual_seed(seed)
    order = torch.rand(b, n, generator=g).argsort(-1)
    return order < keep


def with_duplicates(x: Tensor, seed: int = 0) -> Tensor:
    """Copies of some tokens over others (exact duplicates)."""
    g = torch.Generator().manual_seed(seed)
    x = x.clone()
    n = x.shape[1]
    src = torch.randint(0, n, (n // 3,), generator=g)
    dst = torch.randint(0, n, (n // 3,), generator=g)
    x[:, dst] = x[:, src]
    return x


def close(actual: Tensor, expected: Tensor, dtype=torch.float32, scale: float = 1.0) -> None:
    torch.testing.assert_close(actual.double(), expected.double(), rtol=RTOL[dtype] * scale,
                               atol=ATOL[dtype] * scale)


def close_dist(actual: Tensor, expected: Tensor, backend: str, scale: float = 1.0) -> None:
    """Distances (delta). The reference takes them from a float32 Gram matrix, as torch.cdist
    and Chat-UniVi do, so a small distance carries sqrt(rounding of ||x||²): about 1e-3 for
    unit-variance tokens. The compiled kernels recompute the selected pairs from differences."""
    atol = 2e-3 if backend == "reference" else ATOL[torch.float32]
    torch.testing.assert_close(actual.double(), expected.double(), rtol=RTOL[torch.float32] * scale,
                               atol=atol * scale)

"""Loads the compiled extension ``emollm._C`` if it was built; the package works without it."""

from __future__ import annotations

import importlib
from types import ModuleType

import torch

C: ModuleType | None = None
import_error: str | None = None

try:
    # Loading the module registers the C++ kernels as torch.ops.emollm_C.<op>.
    C = importlib.import_module("emollm._C")
    C.ops = torch.ops.emollm_C
except ModuleNotFoundError:
    import_error = "not built"
except ImportError as exc:  # built against another torch, or a missing symbol
    import_error = f"{type(exc).__name__}: {exc}"

"""The ``triton`` backend: the Triton kernels of ``emollm.kernels`` (``kernels/<op>.py``).

Each kernel module registers its op's launcher when imported; :func:`load` imports them all.
They run on CUDA tensors, and on CPU tensors in Triton's interpreter (``TRITON_INTERPRET=1``,
read when a kernel is defined, so fixed for the process), which is how CI runs them.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil

import torch

from emollm.ops._backend import Backend, declare

AVAILABLE = importlib.util.find_spec("triton") is not None
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
_loaded: list[str] = []


def load() -> list[str]:
    """Imports every kernel module of ``emollm.kernels`` (each registers itself); their names."""
    if AVAILABLE and not _loaded:
        package = importlib.import_module("emollm.kernels")
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"emollm.kernels.{module.name}")
                _loaded.append(module.name)
    return list(_loaded)


def _status() -> tuple[bool, str]:
    if not AVAILABLE:
        return False, "triton is not installed: `pip install triton` (CUDA GPUs; on CPU with TRITON_INTERPRET=1)"
    if not _loaded:
        return False, "the Triton kernels are not loaded (emollm.ops._triton.load())"
    if torch.cuda.is_available():
        return True, "Triton kernels on CUDA"
    if INTERPRETED:
        return True, "Triton kernels in the interpreter (TRITON_INTERPRET=1, slow: for tests)"
    return False, "no CUDA GPU; set TRITON_INTERPRET=1 to run the Triton kernels on CPU (slow)"


# First on CUDA: its bf16 tiles run on tensor cores, the cuda backend's on CUDA-core FMA. No GPU has
# measured the two yet; `make gpu-check` times both (docs/gpu-check.md) and decides this order.
BACKEND = declare(Backend(
    "triton", devices=frozenset({"cuda", "cpu"} if INTERPRETED else {"cuda"}), auto_rank={"cuda": 0},
    interpreted=INTERPRETED, status=_status,
))
load()

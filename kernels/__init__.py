"""Triton kernels, installed as ``emollm.kernels``: the ``triton`` backend (issue 3).

Each module holds the kernels of one op and registers its launcher with
``emollm.ops._backend.register(op, "triton")``, with the same signature as the op's ``cpu``
implementation. They run on CUDA tensors, and on CPU tensors under ``TRITON_INTERPRET=1`` (set
before the first import of triton: that is how CI checks them without a GPU).
"""

from __future__ import annotations

import importlib.util

AVAILABLE = importlib.util.find_spec("triton") is not None
MODULES = ("knn_density", "dpc_delta", "dpc_cluster", "cluster_merge", "gcn")


def load() -> list[str]:
    """Imports the kernel modules that exist (each registers itself); returns their names."""
    if not AVAILABLE:
        return []
    loaded = []
    for name in MODULES:
        if importlib.util.find_spec(f"emollm.kernels.{name}") is not None:
            importlib.import_module(f"emollm.kernels.{name}")
            loaded.append(name)
    return loaded

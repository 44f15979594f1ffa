"""The ``cpu`` backend: the C++/OpenMP kernels of the compiled extension ``emollm._C``.

Each ``csrc/cpu/<op>.cpp`` defines its op's schema and CPU kernel under ``torch.ops.emollm_C``
with the same arguments as the Python op, so this module needs no per-op code: an op that the
extension defines is an op this backend implements. How the kernels work: docs/kernels.md.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from emollm import _extension
from emollm.ops._backend import Backend, declare


def _status() -> tuple[bool, str]:
    if _extension.C is not None:
        return True, "emollm._C (C++/OpenMP)"
    return False, (
        f"the compiled extension emollm._C is missing ({_extension.import_error}); build it with "
        "`pip install --no-build-isolation -e .` (needs cmake and a C++ compiler)"
    )


def extension_kernel(op: str, dispatch_key: str) -> Callable | None:
    """``torch.ops.emollm_C.<op>`` if the extension has a ``dispatch_key`` kernel for it (tuples
    come back as tuples, as the Python ops return them)."""
    if _extension.C is None or not torch._C._dispatch_has_kernel_for_dispatch_key(f"emollm_C::{op}", dispatch_key):
        return None
    kernel = getattr(torch.ops.emollm_C, op)

    def run(*args):
        out = kernel(*args)
        return tuple(out) if isinstance(out, list) else out

    return run


# The kernels that compute every token's squared norm anyway check it (csrc/cpu/common.h check_row).
_CHECKS_FINITE = frozenset({"knn_density", "dpc_delta", "dpc_cluster", "dpc_cluster_merge", "gcn_adjacency"})

BACKEND = declare(Backend(
    "cpu", devices=frozenset({"cpu"}), auto_rank={"cpu": 0}, checks_finite=_CHECKS_FINITE, status=_status,
    kernels=lambda op: extension_kernel(op, "CPU"),
))

"""The ``cuda`` backend: the CUDA kernels of ``emollm._C`` (csrc/cuda, built with CUDA).

``knn_density``, ``dpc_delta`` and ``dpc_cluster`` (a stable top-C of ``rho * delta`` and the
nearest-center kernel), registered by ``csrc/cuda_ops.cpp`` under ``torch.ops.emollm_C``; the
other ops fall through to the automatic choice. The kernels keep a row's k nearest one per lane
of a warp, so they take ``k <= 32``; a larger ``k`` goes to ``triton`` (else ``reference``), the
paper's stages use k = 5 and 3. How they work: docs/cuda.md.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from emollm import _extension
from emollm.ops import _backend
from emollm.ops._cpu import extension_kernel

MAX_K = 32
_K_ARGUMENT = {"knn_density": 1, "dpc_cluster": 2}  # where k sits in the op's arguments


def _status() -> tuple[bool, str]:
    if _extension.C is None:
        return False, f"the compiled extension emollm._C is missing ({_extension.import_error})"
    if not _extension.C.with_cuda:
        return False, ("emollm._C was built without CUDA; rebuild with a CUDA build of torch and nvcc on PATH: "
                       "`EMOLLM_CUDA=1 pip install --no-build-isolation -e .`")
    if not torch.cuda.is_available():
        return False, "emollm._C has the CUDA kernels, but no CUDA GPU is visible"
    return True, "emollm._C CUDA kernels (csrc/cuda)"


def _kernel(op: str) -> Callable | None:
    kernel = extension_kernel(op, "CUDA")
    if kernel is None or op not in _K_ARGUMENT:
        return kernel

    def run(*args):
        if args[_K_ARGUMENT[op]] <= MAX_K:
            return kernel(*args)
        # The automatic choice, or (where that is this backend) the next in line: triton, else reference.
        other = _backend.automatic(op, args[0].device)
        if other == "cuda":
            other = _backend.automatic(op, args[0].device, after="cuda")
        return _backend.implementation(op, other)(*args)

    return run


# After triton on CUDA: float32 FMA tiles, no tensor cores (docs/cuda.md). Unmeasured on a GPU so
# far; `make gpu-check` times both backends and decides the order (docs/gpu-check.md).
BACKEND = _backend.declare(_backend.Backend(
    "cuda", devices=frozenset({"cuda"}), auto_rank={"cuda": 1}, status=_status, kernels=_kernel,
))

"""Backend registry: which implementation of an op runs for a given tensor.

Every op in :mod:`emollm.ops` is one ``torch.library`` custom op (``emollm::<op>``) whose
kernel asks this registry for an implementation at call time. Backends:

- ``reference``: :mod:`emollm.ops.reference`, plain PyTorch, any device, O(N²) memory.
- ``cpu``: the C++/OpenMP kernels of the compiled extension ``emollm._C``.
- ``triton``, ``cuda``, ``faiss``: GPU and large-N backends (registered when present).

Selection, first match wins:
1. ``with emollm.ops.use_backend("cpu"): ...`` (a context variable, so threads and tasks
   each keep their own choice);
2. the ``EMOLLM_BACKEND`` environment variable (read at every call);
3. automatic: on CPU tensors ``cpu`` when ``emollm._C`` is built (see
   ``benchmarks/results/`` for the measured speed-up), else ``reference``; on CUDA tensors
   ``cuda``/``triton`` when available, else ``reference``.

A backend that does not implement an op (``faiss`` only does ``knn_density``) falls through to
the automatic choice for that op. A backend that is not available raises with how to get it.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Callable, Iterator

import torch

BACKENDS = ("reference", "cpu", "triton", "cuda", "faiss")

_impls: dict[str, dict[str, Callable]] = {}
_forced: contextvars.ContextVar[str | None] = contextvars.ContextVar("emollm_backend", default=None)


def register(op: str, backend: str) -> Callable[[Callable], Callable]:
    """Decorator: ``fn`` implements ``op`` for ``backend``."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")

    def wrap(fn: Callable) -> Callable:
        _impls.setdefault(op, {})[backend] = fn
        return fn

    return wrap


def _cpu_status() -> tuple[bool, str]:
    from emollm import _extension

    if _extension.C is not None:
        return True, "emollm._C (C++/OpenMP)"
    return False, (
        "the compiled extension emollm._C is missing "
        f"({_extension.import_error}); build it with "
        "`pip install --no-build-isolation -e .` (needs cmake and a C++ compiler)"
    )


def _triton_status() -> tuple[bool, str]:
    from emollm import kernels

    if not kernels.AVAILABLE:
        return False, "triton is not installed: `pip install triton` (CUDA GPUs; on CPU with TRITON_INTERPRET=1)"
    if not any("triton" in impls for impls in _impls.values()):
        return False, "no Triton kernel is registered yet"
    if torch.cuda.is_available():
        return True, "Triton kernels on CUDA"
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True, "Triton kernels in the interpreter (TRITON_INTERPRET=1, slow: for tests)"
    return False, "no CUDA GPU; set TRITON_INTERPRET=1 to run the Triton kernels on CPU (slow)"


def _faiss_status() -> tuple[bool, str]:
    from emollm.ops import _faiss

    return _faiss.status()


def _cuda_status() -> tuple[bool, str]:
    from emollm import _extension

    if _extension.C is None:
        return False, f"the compiled extension emollm._C is missing ({_extension.import_error})"
    if not _extension.C.with_cuda:
        return False, (
            "emollm._C was built without CUDA; rebuild with a CUDA build of torch and nvcc on PATH: "
            "`EMOLLM_CUDA=1 pip install --no-build-isolation -e .`"
        )
    if not torch.cuda.is_available():
        return False, "emollm._C has the CUDA kernels, but no CUDA GPU is visible"
    return True, "emollm._C CUDA kernels (csrc/cuda)"


_status: dict[str, Callable[[], tuple[bool, str]]] = {
    "reference": lambda: (True, "plain PyTorch (emollm/ops/reference.py)"),
    "cpu": _cpu_status,
    "triton": lambda: _triton_status(),
    "cuda": _cuda_status,
    "faiss": lambda: _faiss_status(),
}


def backend_status() -> dict[str, tuple[bool, str]]:
    """``{backend: (available, detail)}`` for every known backend."""
    return {name: _status[name]() for name in BACKENDS}


def available_backends() -> list[str]:
    """Names of the backends that can run here."""
    return [name for name, (ok, _) in backend_status().items() if ok]


def _check_available(name: str) -> None:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {BACKENDS}")
    ok, detail = _status[name]()
    if not ok:
        raise RuntimeError(f"backend {name!r} is not available: {detail}")


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run the ops inside the ``with`` block on backend ``name``.

    >>> with use_backend("reference"):
    ...     rho = knn_density(x, 5)
    """
    _check_available(name)
    token = _forced.set(name)
    try:
        yield
    finally:
        _forced.reset(token)


def _auto(op: str, device: torch.device) -> str:
    impls = _impls.get(op, {})
    if device.type == "cpu":
        order = ("cpu",)
    elif device.type == "cuda":
        order = ("cuda", "triton")
    else:
        order = ()
    for name in order:
        if name in impls and _status[name]()[0]:
            return name
    return "reference"


def selected(op: str, device: torch.device) -> str:
    """The backend that runs ``op`` on ``device`` now."""
    name = _forced.get() or os.environ.get("EMOLLM_BACKEND") or None
    if name is None or name == "auto":
        return _auto(op, device)
    _check_available(name)
    if name not in _impls.get(op, {}):
        return _auto(op, device)
    if name == "cpu" and device.type != "cpu":
        raise RuntimeError(f"backend 'cpu' runs on CPU tensors only; got a tensor on {device}")
    if name in ("triton", "cuda") and device.type != "cuda" and not _triton_interpreted(name):
        raise RuntimeError(f"backend {name!r} runs on CUDA tensors only; got a tensor on {device}")
    return name


def _triton_interpreted(name: str) -> bool:
    return name == "triton" and os.environ.get("TRITON_INTERPRET") == "1"


def resolve(op: str, device: torch.device) -> tuple[str, Callable]:
    """``(backend name, implementation)`` of ``op`` to run on ``device``."""
    name = selected(op, device)
    return name, _impls[op][name]


# Backends whose kernels reject NaN/Inf themselves at no extra cost (the C++ kernels test the
# row norms they compute anyway), so the ops skip their own pass over the input.
CHECKS_FINITE = frozenset({"cpu"})

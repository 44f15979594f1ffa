"""Backend registry: which implementation of an op runs for a given tensor, and the one prologue
every op runs before it (docs/design.md#backends).

A backend declares itself with a :class:`Backend` record in its own module (``reference.py``,
``_cpu.py``, ``_cuda.py``, ``_faiss.py``, ``emollm.kernels``) and registers one implementation
per op it has. An op declares its :class:`OpContract` in its own file and its custom op calls
:func:`call`. This module knows no backend and no op by name: it routes and runs the prologue.

Selection, first match wins:

1. ``with emollm.ops.use_backend("cpu"): ...`` (a context variable, so threads and tasks each
   keep their own choice);
2. the ``EMOLLM_BACKEND`` environment variable (read at every call);
3. automatic: the available backends that run on the tensor's device and implement the op, in
   the order of their ``auto_rank`` for that device type.

A chosen backend that does not implement an op falls through to the automatic choice for that
op. A backend that is not available, or does not run on the tensor's device, raises and says why.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from emollm.ops import _checks
from emollm.profiling import nvtx_range

ANY_DEVICE = "any"  # an auto_rank key and a devices entry: every device type


@dataclass(frozen=True)
class Backend:
    """One backend, as its own module declares it.

    Attributes:
        name: what ``use_backend`` and ``EMOLLM_BACKEND`` take.
        devices: device types whose tensors it runs on (``"cpu"``, ``"cuda"``, or ``"any"``).
        status: ``() -> (available, detail)``; ``detail`` says what runs, or how to get it.
        auto_rank: device type (or ``"any"``) -> place in the automatic order, lowest first;
            a backend absent for a device type is never chosen automatically there.
        checks_finite: the ops whose kernels reject NaN/Inf (and overflowing values) in the
            tokens themselves (at no cost: the C++ kernels test the row norms they compute
            anyway), so the prologue skips its pass for them.
        wants_centered: it ranks neighbours by Gram distances ``|x|² + |y|² − 2⟨x, y⟩``, which
            lose small distances under a large common offset; the prologue centres such
            samples first (``_checks.center_for_gram``).
        interpreted: runs through an interpreter (milliseconds per launch): tests that call the
            ops hundreds of times leave it out.
        kernels: ``op -> implementation`` looked up at call time, for backends whose kernels
            come from elsewhere (the compiled extension); others use :func:`register`.
    """

    name: str
    devices: frozenset[str]
    status: Callable[[], tuple[bool, str]]
    auto_rank: Mapping[str, int] = field(default_factory=dict)
    checks_finite: frozenset[str] = frozenset()
    wants_centered: bool = True
    interpreted: bool = False
    kernels: Callable[[str], Callable | None] | None = None

    def runs_on(self, device: torch.device | str) -> bool:
        kind = torch.device(device).type
        return ANY_DEVICE in self.devices or kind in self.devices

    def rank(self, device: torch.device | str) -> int | None:
        kind = torch.device(device).type
        return self.auto_rank.get(kind, self.auto_rank.get(ANY_DEVICE))

    def available(self) -> bool:
        return self.status()[0]


@dataclass(frozen=True)
class OpContract:
    """What the shared prologue needs to know about an op.

    Attributes:
        name: the op (``torch.ops.emollm.<name>``).
        tokens: the argument holding the ``[B,N,D]`` tokens: checked for NaN/Inf (unless the
            backend does it itself) and centred for backends that want it; None: neither.
        mask: the argument holding the ``[B,N]`` mask of ``tokens``, if any.
        centered: whether the op ranks ``tokens`` by distance (then centring applies).
        uncenter: ``(output, shift, args) -> output`` for outputs that live in token space
            (a merged mean moves back by the shift); None: the output is shift-invariant.
        check_output: ``output -> None`` run on every backend's output (raises on bad data).
    """

    name: str
    tokens: str | None = None
    mask: str | None = None
    centered: bool = False
    uncenter: Callable | None = None
    check_output: Callable | None = None


_backends: dict[str, Backend] = {}
_contracts: dict[str, OpContract] = {}
_impls: dict[str, dict[str, Callable]] = {}
_forced: contextvars.ContextVar[str | None] = contextvars.ContextVar("emollm_backend", default=None)


def declare(backend: Backend) -> Backend:
    """Adds ``backend`` to the registry (once per name)."""
    if backend.name in _backends:
        raise ValueError(f"backend {backend.name!r} is declared twice")
    _backends[backend.name] = backend
    return backend


def define(contract: OpContract) -> OpContract:
    """Adds an op's contract (once per op)."""
    if contract.name in _contracts:
        raise ValueError(f"op {contract.name!r} is defined twice")
    _contracts[contract.name] = contract
    return contract


def register(op: str, backend: str) -> Callable[[Callable], Callable]:
    """Decorator: ``fn`` implements ``op`` for ``backend``, with the op's argument order."""

    def wrap(fn: Callable) -> Callable:
        _impls.setdefault(op, {})[backend] = fn
        return fn

    return wrap


def backends() -> dict[str, Backend]:
    """Every declared backend, in declaration order."""
    return dict(_backends)


def get(name: str) -> Backend:
    if name not in _backends:
        raise ValueError(f"unknown backend {name!r}; expected one of {tuple(_backends)}")
    return _backends[name]


def implementation(op: str, name: str) -> Callable | None:
    """``name``'s own implementation of ``op``, or None."""
    fn = _impls.get(op, {}).get(name)
    backend = _backends.get(name)
    if fn is None and backend is not None and backend.kernels is not None:
        fn = backend.kernels(op)
    return fn


def implements(name: str, op: str) -> bool:
    return implementation(op, name) is not None


def backend_status() -> dict[str, tuple[bool, str]]:
    """``{backend: (available, detail)}`` for every declared backend."""
    return {name: b.status() for name, b in _backends.items()}


def available_backends() -> list[str]:
    """Names of the backends that can run here."""
    return [name for name, b in _backends.items() if b.available()]


def _check_available(name: str) -> Backend:
    backend = get(name)
    ok, detail = backend.status()
    if not ok:
        raise RuntimeError(f"backend {name!r} is not available: {detail}")
    return backend


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


def automatic(op: str, device: torch.device, after: str | None = None) -> str:
    """The automatic choice for ``op`` on ``device``: the available backend of lowest rank there
    that implements it. ``after``: only backends ranked after that one (a backend handing a call
    it cannot take to the next in line)."""
    ranked = sorted((b.rank(device), i, b) for i, b in enumerate(_backends.values())
                    if b.rank(device) is not None and b.runs_on(device))
    floor = None if after is None else get(after).rank(device)
    for rank, _, b in ranked:
        if (floor is None or rank > floor) and implements(b.name, op) and b.available():
            return b.name
    raise RuntimeError(f"no backend implements {op} for tensors on {device}")


def selected(op: str, device: torch.device) -> str:
    """The backend that runs ``op`` on ``device`` now."""
    name = _forced.get() or os.environ.get("EMOLLM_BACKEND") or None
    if name is None or name == "auto":
        return automatic(op, device)
    backend = _check_available(name)
    if not implements(name, op):
        return automatic(op, device)
    if not backend.runs_on(device):
        where = " and ".join(d.upper() for d in sorted(backend.devices))
        raise RuntimeError(f"backend {name!r} runs on {where} tensors only; got a tensor on {device}")
    return name


def resolve(op: str, device: torch.device) -> tuple[str, Callable]:
    """``(backend name, implementation)`` of ``op`` to run on ``device``."""
    name = selected(op, device)
    return name, implementation(op, name)


def call(op: str, **args):
    """Runs ``op`` on its selected backend: the prologue every op shares, then the kernel.

    ``args`` are the op's arguments by name, in the op's order (the implementations take them
    positionally). The prologue: finiteness of the tokens (unless the backend checks them
    itself), centring for backends that rank by Gram distances, an NVTX range
    ``emollm.<op>:<backend>``; after the kernel, the contract's ``uncenter`` and
    ``check_output``.
    """
    contract = _contracts[op]
    first = next(v for v in args.values() if isinstance(v, Tensor))
    name, impl = resolve(op, first.device)
    backend = _backends[name]
    shift = None
    if contract.tokens is not None:
        x, mask = args[contract.tokens], args.get(contract.mask) if contract.mask else None
        if op not in backend.checks_finite:
            _checks.check_finite(x, contract.tokens, mask, distances=contract.centered)
        if contract.centered and backend.wants_centered:
            args[contract.tokens], shift = _checks.center_for_gram(x, mask)
    with nvtx_range(f"emollm.{op}:{name}"):
        out = impl(*args.values())
    if shift is not None and contract.uncenter is not None:
        out = contract.uncenter(out, shift, args)
    if contract.check_output is not None:
        contract.check_output(out)
    return out

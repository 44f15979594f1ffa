"""NVTX ranges for Nsight Systems and Nsight Compute (see docs/profiling.md).

Every op pushes a range named ``emollm.<op>:<backend>`` (``emollm.dpc_cluster:cpu``) around
its kernel, so a timeline shows which op and which backend ran, and ``ncu --nvtx`` can pick
out one op's kernels. The separator is ``:`` rather than ``[cpu]``: ``[ ] / @ , * +`` are
quantifiers in ``ncu --nvtx-include`` and would need escaping. Ranges go to NVTX's default
domain, so filters need no ``domain@`` prefix.

Ranges are emitted when the ``nvtx`` package is installed (``pip install nvtx``), neither
``EMOLLM_NVTX=0`` nor nvtx's own ``NVTX_DISABLE`` is set when this module is imported, and
the code is not being traced by ``torch.compile``; otherwise :func:`nvtx_range` does nothing.
Without a profiler attached the nvtx calls themselves return at once (overhead measured in
docs/profiling.md).

Use inside code that ``torch.compile(fullgraph=True)`` traces is safe: while Dynamo traces,
``torch.compiler.is_compiling()`` is True and the range is left out of the graph (a compiled
region shows no range of its own; the custom ops inside it still push theirs when they run,
because their bodies are opaque to the compiler).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch

try:  # optional dependency: everything below is a no-op without it
    import nvtx as _nvtx
except ImportError:  # pragma: no cover - depends on the environment
    _nvtx = None

__all__ = ["enabled", "nvtx_range"]

F = TypeVar("F", bound=Callable[..., Any])


def _switch_from_env() -> bool:
    return os.environ.get("EMOLLM_NVTX", "1").strip() != "0"


# Read once, at import (as nvtx reads NVTX_DISABLE): os.environ.get of an unset variable costs
# 0.7 µs (it raises and catches KeyError), more than the whole range otherwise.
_switch = _switch_from_env()


def enabled() -> bool:
    """Whether :func:`nvtx_range` emits NVTX ranges.

    True when ``nvtx`` is importable, not disabled by ``NVTX_DISABLE``, and ``EMOLLM_NVTX``
    was not ``0`` when :mod:`emollm` was imported. Ranges reach a profiler only when one is
    attached (``nsys profile``, ``ncu --nvtx``); without one, NVTX drops them at almost no cost.
    """
    return _switch and _nvtx is not None and _nvtx.enabled()


class nvtx_range:  # lower case: used like a function, ``with nvtx_range("x"):``
    """An NVTX push/pop range, as a context manager or a decorator.

    >>> with nvtx_range("emollm.mvp.stage1", color="green"):
    ...     z = stage(x)
    >>> @nvtx_range("emollm.mvp.forward")
    ... def forward(self, x): ...

    Args:
        name: the range's message (``emollm.<what>``; avoid ``[ ] / @ , * +``, which
            ``ncu --nvtx-include`` treats as quantifiers).
        color: optional color: a name (``"green"``; any matplotlib color when matplotlib is
            installed) or an ``0xAARRGGBB`` int, as nvtx takes it.

    A no-op while ``torch.compile`` traces, without ``nvtx``, and with ``EMOLLM_NVTX=0``. The
    pop matches the decision taken on entry, so the stack stays balanced. In code that
    ``torch.compile`` traces, create the range where it is entered (``with nvtx_range(...)``
    or the decorator): Dynamo cannot enter a context manager object made outside the compiled
    region, such as one stored in a module global.
    """

    __slots__ = ("_pushed", "color", "name")

    def __init__(self, name: str, color: str | int | None = None):
        self.name = name
        self.color = color
        # One flag per entry still open, so one instance can be re-entered (recursion, reuse).
        self._pushed: list[bool] = []

    def __enter__(self) -> nvtx_range:
        # is_compiling first: while Dynamo traces, nothing else here is looked at.
        push = not torch.compiler.is_compiling() and enabled()
        if push:
            _nvtx.push_range(self.name, self.color)
        self._pushed.append(push)
        return self

    def __exit__(self, *exc: object) -> bool:
        if self._pushed.pop():
            _nvtx.pop_range()
        return False

    def __call__(self, fn: F) -> F:
        name, color = self.name, self.color

        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            # Inline push/pop: no per-call object, and nothing shared between threads.
            if torch.compiler.is_compiling() or not enabled():
                return fn(*args, **kwargs)
            _nvtx.push_range(name, color)
            try:
                return fn(*args, **kwargs)
            finally:
                _nvtx.pop_range()

        return wrapped  # type: ignore[return-value]

"""Shared pieces of the Triton backend tests: run an op on the triton backend, the low-precision
rule, and a probe for the largest tensor a launcher allocates."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from emollm import ops

needs_triton = pytest.mark.skipif("triton" not in ops.available_backends(),
                                  reason="needs triton (on CPU with TRITON_INTERPRET=1)")


def on(backend: str, fn, *args, **kwargs):
    with ops.use_backend(backend):
        return fn(*args, **kwargs)


def triton(fn, *args, **kwargs):
    return on("triton", fn, *args, **kwargs)


def within_twice_reference(fn, want: torch.Tensor, floor: float) -> None:
    """flash-attention's rule: triton's error against float64 <= 2x the reference's own + a floor."""
    ref_err = (on("reference", fn).double() - want).abs().max()
    err = (triton(fn).double() - want).abs().max()
    assert err <= 2 * ref_err + floor, (float(err), float(ref_err))


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor (in elements) that any ATen op returns inside the block."""

    def __init__(self):
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.numel = max(self.numel, t.numel())
        return out


@contextlib.contextmanager
def largest_tensor():
    probe = LargestTensor()
    with probe:
        yield probe

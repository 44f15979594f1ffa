"""Launch configurations as data: block sizes, warps and pipeline stages per kernel, per GPU family.

Every launcher asks :func:`launch` for its kernel's configuration instead of holding constants:

    cfg = launch("knn_scan", x)                  # x: the tokens (device and dtype pick the entry)
    kernel[grid(cfg)](..., **cfg.kwargs())       # BLOCK_* constexprs, num_warps, num_stages

``TABLE[kernel][operands][family]``. ``operands`` is how the distance dot runs: ``"tc"`` on tensor
cores (bf16/f16 inputs), ``"split"`` on tensor cores through the bf16x3 split of float32 inputs
(:func:`f32_dot`), ``"fma"`` on CUDA cores (float32 ``ieee``, float64); kernels without a dot use
``"any"``.
``family`` is ``"sm80"`` (Ampere, Ada) or ``"sm90"`` (Hopper and newer), from the tensor's device.

Under ``TRITON_INTERPRET=1`` (CPU tensors) the launchers take the ``"interpreter"`` entry where a
kernel has one (larger steps: the interpreter pays per step, not per element), else the sm90 one.
Tests make the interpreter run a GPU's exact configuration with ``with gpu_family("sm80"): ...``
(or ``EMOLLM_TRITON_FAMILY=sm80``), so the GPU's block shapes, masks and loop bounds run on CPU
and only the hardware's arithmetic is left for the GPU to prove.

No GPU has timed these yet: the values are the kernels' original 64×64×64 tiles and Triton's
defaults, adjusted only where the compile gate (tests/kernels/test_compile_gate.py) showed spills
or a register count that caps occupancy; ``make gpu-check`` times them (docs/gpu-check.md).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import torch

FAMILIES = ("sm80", "sm90")
INTERPRETER = "interpreter"
F32_DOTS = ("ieee", "bf16x3")
DEFAULT_F32_DOT = "ieee"  # until a GPU has run the tensor-core modes against the oracle (docs/kernels.md)


@dataclass(frozen=True)
class Launch:
    """One kernel launch: its block-size constexprs by name, and Triton's launch options."""

    blocks: Mapping[str, int] = field(default_factory=dict)
    num_warps: int = 4
    num_stages: int = 3

    def __getitem__(self, name: str) -> int:
        return self.blocks[name]

    def kwargs(self) -> dict[str, int]:
        """Keyword arguments for ``kernel[grid](...)``: the BLOCK_* constexprs and the options."""
        return {**self.blocks, "num_warps": self.num_warps, "num_stages": self.num_stages}


def _tile(m: int, n: int, d: int, warps: int = 4, stages: int = 3) -> Launch:
    return Launch({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_D": d}, warps, stages)


def _same(cfg: Launch) -> dict[str, Launch]:
    return {family: cfg for family in FAMILIES}


# The Gram scans: a BLOCK_M × BLOCK_N distance tile from BLOCK_D-wide feature chunks. Chosen from
# the compile gate's numbers (registers of _knn_scan_kernel k=5 / _denser_scan_kernel with the
# farthest token, Triton 3.9), not from timings: the smallest change from the original 64×64×64,
# 4 warps, 3 stages that has no spills and the most warps per SM.
#   tc sm90: 8 warps: 125/128 registers, 16 warps/SM (4 warps: 176/224, 8 warps/SM).
#   tc sm80: 32-wide chunks: 184/205 registers, 8 warps/SM (8 warps spill 2 stores).
#   split (float32 bf16x3), both: 32-wide chunks, 4 warps: 232/248 (sm90), 185/255 (sm80), no
#     spills (64-wide: 255 registers and 3 (sm90) to 26 (sm80) spill stores).
#   fma (float32 ieee), both: 32-wide chunks, 8 warps: 166/149 (sm90), 188/128 (sm80, 4 spill
#     stores in the denser scan) registers; 64-wide at 4 warps spill 8-9 (sm90), 272-395 (sm80).
# The interpreter keeps 64-wide chunks everywhere: half the steps, and CI pays per step.
_SCAN = {
    "tc": {"sm80": _tile(64, 64, 32, warps=4), "sm90": _tile(64, 64, 64, warps=8)},
    "split": _same(_tile(64, 64, 32, warps=4)),
    "fma": _same(_tile(64, 64, 32, warps=8)),
}
for _column in _SCAN.values():
    _column[INTERPRETER] = _tile(64, 64, 64)

TABLE: dict[str, dict[str, dict[str, Launch]]] = {
    "knn_scan": _SCAN,
    "denser_scan": _SCAN,
    "assign": _SCAN,
    "farthest": _SCAN,
    # Rows × one 64-column word; BLOCK_X: features per step of the rare float64 recheck.
    "edges": {op: _same(Launch({"BLOCK_I": 32, "BLOCK_D": 64, "BLOCK_X": 8})) for op in ("tc", "split", "fma")},
    "sqnorm": {"any": _same(Launch({"BLOCK_R": 64, "BLOCK_D": 64}))},
    # BLOCK_M shrinks with the candidate count L (see _common.pair_sqdist); BLOCK_D per step.
    "pair_sqdist": {"any": _same(Launch({"BLOCK_M": 64, "BLOCK_D": 32}))},
    # A [BLOCK_R, BLOCK_N, BLOCK_D] difference tile per step. The interpreter pays per step, not per
    # element, so it takes 16× bigger steps (dpc_delta on 600 twinned tokens: 12.9 s -> 4.0 s).
    "exact_nearest": {"any": {**_same(Launch({"BLOCK_R": 16, "BLOCK_N": 32, "BLOCK_D": 16})),
                              INTERPRETER: Launch({"BLOCK_R": 64, "BLOCK_N": 128, "BLOCK_D": 64})}},
    "segment_mean": {"any": _same(Launch({"BLOCK_T": 32, "BLOCK_F": 64}))},
    "propagate": {"any": _same(Launch({"BLOCK_F": 64}))},
}

_family: contextvars.ContextVar[str | None] = contextvars.ContextVar("emollm_triton_family", default=None)
_f32_dot: contextvars.ContextVar[str | None] = contextvars.ContextVar("emollm_triton_f32_dot", default=None)


def interpreted() -> bool:
    """Whether Triton runs in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


@contextlib.contextmanager
def gpu_family(name: str) -> Iterator[None]:
    """Inside the block, launches on CPU tensors (the interpreter) use ``name``'s configurations."""
    if name not in FAMILIES:
        raise ValueError(f"unknown GPU family {name!r}; expected one of {FAMILIES}")
    token = _family.set(name)
    try:
        yield
    finally:
        _family.reset(token)


@functools.cache
def _cuda_family(index: int) -> str:
    major, _ = torch.cuda.get_device_capability(index)
    return "sm90" if major >= 9 else "sm80"


def family(device: torch.device) -> str:
    """The table column for tensors on ``device``: the GPU's family, or on CPU (the interpreter)
    the family a test asked for, else ``"interpreter"``."""
    if device.type == "cuda":
        return _cuda_family(device.index if device.index is not None else torch.cuda.current_device())
    asked = _family.get() or os.environ.get("EMOLLM_TRITON_FAMILY") or None
    if asked is not None and asked not in FAMILIES:
        raise ValueError(f"EMOLLM_TRITON_FAMILY={asked!r}; expected one of {FAMILIES}")
    return asked or INTERPRETER


@contextlib.contextmanager
def f32_dot_mode(mode: str) -> Iterator[None]:
    """Inside the block, float32 distance dots use ``mode`` (one of :data:`F32_DOTS`)."""
    if mode not in F32_DOTS:
        raise ValueError(f"unknown float32 dot mode {mode!r}; expected one of {F32_DOTS}")
    token = _f32_dot.set(mode)
    try:
        yield
    finally:
        _f32_dot.reset(token)


def f32_dot() -> str:
    """How float32 distance dots run: ``"ieee"`` (CUDA-core FMA, the default) or ``"bf16x3"``
    (each operand split into two bf16 parts, three tensor-core products; docs/kernels.md).
    ``with f32_dot_mode(...)`` or ``EMOLLM_TRITON_F32_DOT``."""
    mode = _f32_dot.get() or os.environ.get("EMOLLM_TRITON_F32_DOT") or DEFAULT_F32_DOT
    if mode not in F32_DOTS:
        raise ValueError(f"EMOLLM_TRITON_F32_DOT={mode!r}; expected one of {F32_DOTS}")
    return mode


def operands(dtype: torch.dtype) -> str:
    """How a distance dot over ``dtype`` tokens runs: ``"tc"``, ``"split"`` or ``"fma"``."""
    if dtype in (torch.bfloat16, torch.float16):
        return "tc"
    if dtype == torch.float32 and f32_dot() == "bf16x3":
        return "split"
    return "fma"


def launch(kernel: str, x: torch.Tensor | None = None, *, device: torch.device | None = None) -> Launch:
    """The configuration of ``kernel`` for tokens ``x`` (its device and dtype), or for ``device``
    when the kernel has no distance dot."""
    entries = TABLE[kernel]
    kind = "any" if "any" in entries else operands(x.dtype)
    column = entries[kind]
    fam = family(x.device if x is not None else device)
    return column.get(fam) or column["sm90"]

"""Shared pieces of the op benchmarks (pytest-benchmark).

Each benchmark group is one op at one shape; its rows ("providers") are ``chat-univi`` (the peer
baseline: Chat-UniVi's dense arithmetic, ``chat_univi.py``), ``reference``, every other backend
(skipped, with the reason, where it is not available or does not run on the benchmark device)
and, for the distance-bound ops, ``bmm``: one ``torch.bmm(x, xᵀ)`` of the
same shape, the GEMM that any exact method must at least match (docs/design.md#performance-targets).

    python -m pytest benchmarks --benchmark-json results.json
    python benchmarks/report.py results.json

Tensors live on ``EMOLLM_BENCH_DEVICE`` (default ``cpu``); on CUDA every timed call
synchronizes, so a row measures the kernels and not just their launch.

``make gpu-check`` (benchmarks/gpu_check.py, docs/gpu-check.md) runs the groups marked
``gpu_check``: a bounded subset of the GPU groups. Its knobs: ``EMOLLM_BENCH_BUDGET_S`` (seconds of
pytest-benchmark rounds per row, default 2), ``EMOLLM_BENCH_PEAK_MEMORY=0`` (no peak-memory
subprocess), ``EMOLLM_BENCH_DRY_RUN=1`` (the gpu_check groups at tiny shapes on CPU: the script's
own check, no meaningful number), ``EMOLLM_BENCH_STREAM=<file>`` (each row appended as one JSON
line the moment it is measured: a run stopped at its time limit keeps what it measured, where
pytest-benchmark's own JSON, written at the end, would be lost).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import chat_univi
import pytest
import torch
from _machine import describe

from emollm import ops
from emollm.ops import _backend

DEVICE = torch.device(os.environ.get("EMOLLM_BENCH_DEVICE", "cpu"))
DRY_RUN = os.environ.get("EMOLLM_BENCH_DRY_RUN") == "1"
BUDGET_S = float(os.environ.get("EMOLLM_BENCH_BUDGET_S", "2.0"))
PEAK_MEMORY = os.environ.get("EMOLLM_BENCH_PEAK_MEMORY", "1") != "0"
STREAM = os.environ.get("EMOLLM_BENCH_STREAM")
# The triton backend with float32 dots split onto tensor cores (docs/kernels.md#float32-on-tensor-cores).
TRITON_SPLIT = "triton+bf16x3"


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu_check: a GPU group that make gpu-check runs (docs/gpu-check.md)")


def _machine() -> dict:
    """Device, versions and commit, and which backend each op picks automatically on the device."""
    return {**describe(str(DEVICE)), "automatic": {op: _backend.automatic(op, DEVICE) for op in _backend._contracts}}


def _stream(record: dict) -> None:
    if STREAM:
        with open(STREAM, "a") as f:
            f.write(json.dumps(record) + "\n")


def pytest_sessionstart(session):
    _stream({"machine_info": {"emollm": _machine()}})


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record device, versions and commit where the JSON is written, at measurement time."""
    machine_info["emollm"] = _machine()


def _skip_reason(name: str, op: str) -> str | None:
    backend = _backend.get("triton" if name == TRITON_SPLIT else name)
    ok, detail = backend.status()
    if not ok:
        return f"{name} not available: {detail}"
    if not backend.runs_on(DEVICE):
        hint = "; set EMOLLM_BENCH_DEVICE=cuda on a GPU machine" if "cuda" in backend.devices else ""
        return f"{name} runs on {'/'.join(sorted(backend.devices))} tensors, not {DEVICE.type}{hint}"
    if backend.interpreted:
        return f"{name} runs in an interpreter here: its timings would mean nothing"
    if not _backend.implements(name, op):
        # A backend without this op falls through to the automatic choice: its row would
        # silently time another backend under its name.
        return f"{name} does not implement {op}"
    return None


def providers(op: str, *, floor: bool = False, split: bool = False) -> list:
    """``pytest.param`` per provider of ``op``, the baselines first; ``bmm`` too if ``floor``;
    ``triton+bf16x3`` after ``triton`` if ``split`` (for float32 groups)."""
    params = []
    first = [chat_univi.NAME, "reference"]
    names = [*first, *(b for b in ops.backends() if b not in first)]
    if split and "triton" in names:
        names.insert(names.index("triton") + 1, TRITON_SPLIT)
    for name in names:
        reason = _skip_reason(name, op)
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(name, marks=marks, id=name))
    if floor:
        params.append(pytest.param("bmm", id="bmm"))
    return params


def tokens(shape: tuple[int, ...], seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Gaussian tokens on the benchmark device, the same for every provider."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g).to(DEVICE, dtype)


GPU_SHAPE = "a GPU-sized shape; set EMOLLM_BENCH_DEVICE=cuda on a GPU machine"


def gpu_only(*values, check=(), reason: str = GPU_SHAPE) -> list:
    """``pytest.param`` per value, skipped unless the benchmarks run on CUDA. Values in ``check``
    are marked ``gpu_check`` (make gpu-check runs them), and run in a dry run too (at :func:`sized`)."""
    params = []
    for v in values:
        checked = v in check
        marks = [pytest.mark.gpu_check] if checked else []
        if DEVICE.type != "cuda" and not (DRY_RUN and checked):
            marks.append(pytest.mark.skip(reason=reason))
        name = "-".join(str(part).removeprefix("torch.") for part in v) if isinstance(v, tuple) else str(v)
        params.append(pytest.param(v, marks=marks, id=name.replace(" ", "")))
    return params


def sized(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape a benchmark runs: ``shape``, or in a dry run a tiny stand-in (B ≤ 2, N ≤ 48, D ≤ 32, C ≤ 8)."""
    if not DRY_RUN:
        return shape
    return tuple(min(v, cap) for v, cap in zip(shape, (2, 48, 32, 8), strict=False))


def gemm_floor(x: torch.Tensor, max_rows: int = 16384) -> tuple[Callable[[], torch.Tensor], int]:
    """``(fn, times)``: one ``x xᵀ`` per sample is ``times`` calls of ``fn``. Above ``max_rows``
    tokens the product is taken in row slices (at N=131072 the full bf16 product is 34 GB)."""
    n = x.shape[1]
    if n <= max_rows:
        return bmm_floor(x), 1
    part = x[:, :max_rows]
    return (lambda: torch.bmm(part, x.transpose(1, 2))), n // max_rows


def case_info(op: str, shape: tuple[int, ...], dtype: torch.dtype) -> dict:
    """What make gpu-check finds a row by: the op, the nominal shape (not the dry run's stand-in)
    and the dtype, recorded in ``extra_info``."""
    return {"op": op, "shape": list(shape), "dtype": str(dtype).removeprefix("torch.")}


def group_name(op: str, dtype: torch.dtype = torch.float32, **dims: int) -> str:
    """``"dpc_cluster B=64 N=256 D=1024 float32"``: one group per op and shape."""
    shape = " ".join(f"{k}={v}" for k, v in dims.items())
    return f"{op} {shape} {str(dtype).removeprefix('torch.')} {DEVICE.type}"


def bmm_floor(x: torch.Tensor) -> Callable[[], torch.Tensor]:
    return lambda: torch.bmm(x, x.transpose(1, 2))


def on_provider(provider: str, fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` run under ``use_backend(provider)`` (``triton+bf16x3``: triton, float32 dots split)."""
    if provider == TRITON_SPLIT:
        from emollm.kernels import _launch

        def split():
            with ops.use_backend("triton"), _launch.f32_dot_mode("bf16x3"):
                return fn()

        return split

    def call():
        with ops.use_backend(provider):
            return fn()

    return call


def run(benchmark, provider: str, fn: Callable[[], object], *, rounds: int | None = None,
        budget_s: float | None = None, **info) -> None:
    """Time ``fn`` with one warm-up round; ``rounds`` fixed, or as many as fit in ``budget_s``.

    Explicit rounds are for big shapes, where one call takes seconds and probing its duration
    would cost another call. ``info`` goes into ``extra_info`` next to the provider.
    """
    def timed():
        out = fn()
        if DEVICE.type == "cuda":
            torch.cuda.synchronize(DEVICE)
        return out

    fixed_rounds = rounds
    budget_s = BUDGET_S if budget_s is None else budget_s
    if rounds is None:
        start = time.perf_counter()
        timed()
        rounds = int(min(max(budget_s / (time.perf_counter() - start), 3), 200))
    benchmark.extra_info.update(provider=provider, device=str(DEVICE), threads=torch.get_num_threads(), **info)
    benchmark.pedantic(timed, rounds=rounds, warmup_rounds=1, iterations=1)
    if DEVICE.type == "cuda" and fixed_rounds is None and importlib.util.find_spec("triton") is not None:
        # CUDA-event timing with cache flushes between runs: the GPU time without host overhead
        # (not for the big fixed-round shapes, where do_bench's own 5 probe calls take minutes).
        import triton.testing

        benchmark.extra_info["do_bench_median_ms"] = triton.testing.do_bench(fn, return_mode="median")
    stats = benchmark.stats.stats
    _stream({"group": benchmark.group, "name": benchmark.name, "extra_info": dict(benchmark.extra_info),
             "stats": {"median": stats.median, "rounds": stats.rounds}})


def extra_peak_mb(provider: str, shape: tuple[int, int, int], num_clusters: int, k: int) -> float:
    """Peak-memory growth of one ``dpc_cluster`` call, measured by ``peak_memory.py``."""
    script = Path(__file__).with_name("peak_memory.py")
    cmd = [sys.executable, str(script), provider, *map(str, shape),
           "--num-clusters", str(num_clusters), "--k", str(k), "--device", str(DEVICE)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())

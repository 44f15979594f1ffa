"""Ahead-of-time compilation of every Triton kernel variant the launchers produce, for a GPU that
is not here: what tests/kernels/test_compile_gate.py checks.

Two steps, each in its own process without ``TRITON_INTERPRET`` (so ``@triton.jit`` makes real
``JITFunction`` objects):

1. ``capture``: the project's own launchers run on CPU tensors at realistic shapes (:data:`CASES`)
   with a stand-in driver, one GPU family's launch table at a time. No kernel runs: each launch is
   recorded (the kernel, its arguments' types and values, its constexprs, warps and stages) and
   every output buffer reads as zeros (``torch.empty`` gives zeros here). Zeros drive every
   data-dependent branch: all rows look unproven and every near-tie re-decision runs, so the
   exact-nearest kernels are captured too.
2. ``compile``: each distinct launch is compiled with the Triton on ``sys.path`` for one target
   (``kernel.warmup`` with the stand-in driver: Triton's own specialization and ``triton.compile``)
   and its cubin read with the ``cuobjdump`` that ships in the Triton wheel: registers, stack frame,
   local-memory stores and loads (spills), the tensor-core instruction, and Triton's shared memory.

    python -m tests.kernels.compile_gate capture --out build/launches.json
    python -m tests.kernels.compile_gate compile build/launches.json --cc 90 --out build/sm90.json

The compile step needs only Triton and torch's dtypes: it runs as well under another Triton
(``PYTHONPATH=build/triton36``, ``make triton36``) as under the installed one.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

# Hardware facts per compile target (CUDA C Programming Guide, compute capabilities table).
# sm_80 is the A100; the "sm80" launch family also serves sm_86/sm_89, whose per-block shared
# memory is smaller (99 KB), so shared memory is budgeted at that.
SM = {
    80: {"regs": 65536, "smem_sm": 167936, "smem_block": 101376, "threads": 2048, "blocks": 32},
    90: {"regs": 65536, "smem_sm": 233472, "smem_block": 232448, "threads": 2048, "blocks": 32},
}
RESERVED_SMEM = 1024  # per block, by the CUDA runtime on sm_80 and sm_90
FAMILY = {80: "sm80", 90: "sm90"}
DOT_NAMES = {0: "native", 1: "ieee", 2: "bf16x3", 3: "bf16x3-emulated"}


# ---- capture -------------------------------------------------------------------------------

def _cases():
    """``(f32 dot mode, label, op, args)`` for every launcher call of the gate: the MVP's stages
    (k 5 and 3, with and without self) at the image shape B=64 N=576 D=1024, one video event
    N=131072 (k=5), the GCN on 64-node stages; bf16, and float32 in every float32 dot mode. The
    values do not matter (no kernel runs), so the tokens are zeros: no time goes into random numbers."""
    import torch

    shapes = {"B64-N576-D1024": ((64, 576, 1024), (3, 5), (True, False)),
              "B1-N131072-D1024": ((1, 131072, 1024), (5,), (True,))}
    for dtype in (torch.bfloat16, torch.float32):
        modes = ("ieee", "bf16x3") if dtype == torch.float32 else (None,)
        for mode in modes:
            tag = str(dtype).removeprefix("torch.") + (f"/{mode}" if mode else "")
            for name, ((b, n, d), ks, selfs) in shapes.items():
                x = torch.zeros(b, n, d, dtype=dtype)
                rho = torch.zeros(b, n)
                for k in ks:
                    for include_self in selfs:
                        label = f"{name} {tag} k={k} self={include_self}"
                        yield mode, f"knn_density {label}", "knn_density", (x, k, None, include_self)
                        yield mode, f"dpc_cluster_merge {label}", "dpc_cluster_merge", (x, 64, k, None, include_self,
                                                                                         None)
                yield mode, f"dpc_delta {name} {tag}", "dpc_delta", (x, rho, None)
                weight = torch.ones(b, n)
                assign = torch.zeros(b, n, dtype=torch.int64)
                yield mode, f"cluster_merge weighted {name} {tag}", "cluster_merge", (x, assign, 64, weight)
            z = torch.zeros(64, 64, 1024, dtype=dtype)
            yield mode, f"gcn_adjacency B64-C64-F1024 {tag}", "gcn_adjacency", (z, 0.1, None)
            bits = torch.zeros(64, 64, 1, dtype=torch.int64)
            yield mode, f"gcn_propagate B64-C64-F1024 {tag}", "gcn_propagate", (bits, torch.ones(64, 64), z)


def _describe(value):
    import torch
    import triton.language as tl

    if isinstance(value, torch.Tensor):
        return {"tensor": str(value.dtype).removeprefix("torch."), "align16": value.data_ptr() % 16 == 0}
    if isinstance(value, tl.dtype):
        return {"tl_dtype": str(value)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot record a launch argument of type {type(value).__name__}")


def _int_class(value: int) -> str:
    """What Triton specializes an int on: 1, divisibility by 16, and 32 vs 64 bits."""
    wide = "i64" if not -(2**31) <= value < 2**31 else "i32"
    return f"{wide}:{'one' if value == 1 else 'div16' if value % 16 == 0 else 'any'}"


def _identity(launch: dict) -> str:
    """Launches that Triton compiles to the same binary have the same identity: constexprs by
    value, other ints by what Triton specializes them on."""
    def norm(v, constexpr):
        return _int_class(v) if isinstance(v, int) and not isinstance(v, bool) and not constexpr else v

    args = [norm(a, c) for a, c in zip(launch["args"], launch["constexpr"], strict=True)]
    return json.dumps([launch["kernel"], launch["family"], args, launch["kwargs"]], sort_keys=True)


class StandInDriver:
    """Just enough of a Triton driver to specialize and compile for ``cc`` with no GPU: the target,
    device 0 and stream 0. Nothing it makes can be launched."""

    def __init__(self, cc: int):
        from triton.backends.compiler import GPUTarget

        self.target = GPUTarget("cuda", cc, 32)

    def get_current_target(self):
        return self.target

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def get_active_torch_device(self):
        import torch

        return torch.device("cpu")


@contextlib.contextmanager
def _stand_in(cc: int) -> Iterator[None]:
    from triton.runtime.driver import driver

    saved = driver._active  # no real driver to reset to: creating one fails without a GPU
    driver.set_active(StandInDriver(cc))
    try:
        yield
    finally:
        driver._active = saved


@contextlib.contextmanager
def _recording(launches: list[dict], family: str, label: str) -> Iterator[None]:
    """Every ``kernel[grid](...)`` inside is recorded instead of run; new tensors are zeros."""
    import torch
    from triton.runtime.jit import JITFunction

    def record(fn, *args, grid, warmup, **kwargs):
        launches.append({"kernel": f"{fn.fn.__module__}:{fn.fn.__name__}", "family": family, "case": label,
                         "args": [_describe(a) for a in args],
                         "names": [p.name for p in fn.params[:len(args)]],
                         "constexpr": [p.is_constexpr for p in fn.params[:len(args)]],
                         "kwargs": {k: _describe(v) for k, v in kwargs.items()}})

    saved = JITFunction.run, torch.empty, torch.empty_like
    JITFunction.run = record
    torch.empty = lambda *a, **k: torch.zeros(*a, **k)
    torch.empty_like = lambda *a, **k: torch.zeros_like(*a, **k)
    try:
        yield
    finally:
        JITFunction.run, torch.empty, torch.empty_like = saved


def capture() -> list[dict]:
    """Distinct launches of every case, for every GPU family of the launch table."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise RuntimeError("capture needs compiled kernels: run it without TRITON_INTERPRET=1")
    from emollm.kernels import _launch
    from emollm.ops import _backend

    launches: list[dict] = []
    with _stand_in(90):
        for family in _launch.FAMILIES:
            for mode, label, op, args in _cases():
                impl = _backend.implementation(op, "triton")
                with _launch.gpu_family(family), _launch.f32_dot_mode(mode or "ieee"), \
                        _recording(launches, family, label):
                    impl(*args)
    distinct: dict[str, dict] = {}
    for launch in launches:
        first = distinct.setdefault(_identity(launch), {**launch, "cases": []})
        first["cases"].append(launch["case"])
    return [{k: v for k, v in launch.items() if k != "case"} for launch in distinct.values()]


# ---- compile -------------------------------------------------------------------------------

def _rebuild(value):
    import torch
    import triton.language as tl

    if isinstance(value, dict) and "tensor" in value:
        dtype = getattr(torch, value["tensor"])
        if value["align16"]:
            return dtype  # warmup wraps a torch dtype as a 16-byte aligned stand-in tensor

        class Unaligned:  # a pointer Triton cannot assume 16-byte aligned
            def __init__(self):
                self.dtype = dtype

            def data_ptr(self):
                return 8

        return Unaligned()
    if isinstance(value, dict) and "tl_dtype" in value:
        return tl.dtype(value["tl_dtype"])
    return value


def _tools() -> Path:
    import triton

    return Path(triton.__file__).parent / "backends/nvidia/bin"


def cubin_facts(cubin: bytes, workdir: Path) -> dict:
    """Registers, stack frame, spills (local-memory stores/loads in the SASS) and the matrix
    instruction of a cubin, from the Triton wheel's ``cuobjdump``."""
    path = workdir / "kernel.cubin"
    path.write_bytes(cubin)
    cuobjdump = str(_tools() / "cuobjdump")
    usage = subprocess.run([cuobjdump, "-res-usage", str(path)], capture_output=True, text=True, check=True).stdout
    sass = subprocess.run([cuobjdump, "-sass", str(path)], capture_output=True, text=True, check=True).stdout
    regs = int(re.search(r"REG:(\d+)", usage).group(1))
    stack = int(re.search(r"STACK:(\d+)", usage).group(1))
    mma = next((m for m in ("HGMMA", "HMMA", "DMMA") if re.search(rf"\b{m}\b", sass)), "none")
    return {"registers": regs, "stack": stack, "spill_stores": len(re.findall(r"\bSTL\b", sass)),
            "spill_loads": len(re.findall(r"\bLDL\b", sass)), "mma": mma}


def occupancy(cc: int, registers: int, shared: int, warps: int) -> int:
    """Blocks per SM that registers (allocated per warp in units of 256), shared memory (plus the
    runtime's 1 KB per block), threads and the block limit allow."""
    sm = SM[cc]
    per_warp = -(-registers * 32 // 256) * 256
    by_regs = (sm["regs"] // per_warp) // warps if per_warp else sm["blocks"]
    by_smem = sm["smem_sm"] // (shared + RESERVED_SMEM)
    by_threads = sm["threads"] // (32 * warps)
    return min(by_regs, by_smem, by_threads, sm["blocks"])


def compile_one(launch: dict, cc: int, workdir: Path) -> dict:
    import triton

    module, name = launch["kernel"].split(":")
    fn = getattr(importlib.import_module(module), name)
    args = [_rebuild(a) for a in launch["args"]]
    kwargs = {k: _rebuild(v) for k, v in launch["kwargs"].items()}
    named = dict(zip(launch["names"], launch["args"], strict=True)) | launch["kwargs"]
    tokens = next((named[k] for k in ("x_ptr", "z_ptr", "h_ptr") if k in named), {"tensor": "?"})
    row = {"kernel": name, "family": launch["family"], "cc": cc, "triton": triton.__version__,
           "dtype": tokens["tensor"], "dot": DOT_NAMES.get(named.get("DOT"), "-"),
           "num_warps": kwargs.get("num_warps", 4), "num_stages": kwargs.get("num_stages", 3),
           "blocks": {k: v for k, v in named.items() if k.startswith("BLOCK_")},
           "constexprs": {k: v for k, c, v in zip(launch["names"], launch["constexpr"], launch["args"], strict=True)
                          if c and not k.startswith("BLOCK_") and k not in ("DOT", "CDT")},
           "cases": launch["cases"][:3], "n_cases": len(launch["cases"])}
    start = time.perf_counter()
    try:
        with _stand_in(cc):
            kernel = fn.warmup(*args, grid=(1,), **kwargs)
    except Exception as err:  # a compile error is a result: the gate reports it
        return {**row, "error": f"{type(err).__name__}: {str(err).strip().splitlines()[-1][:300]}"}
    row["compile_s"] = round(time.perf_counter() - start, 2)
    row["shared"] = int(kernel.metadata.shared)
    row.update(cubin_facts(kernel.asm["cubin"], workdir))
    row["blocks_per_sm"] = occupancy(cc, row["registers"], row["shared"], row["num_warps"])
    row["warps_per_sm"] = row["blocks_per_sm"] * row["num_warps"]
    return row


def compile_all(launches: list[dict], cc: int, workdir: Path) -> list[dict]:
    """Compiles the launches of ``cc``'s family for ``cc``."""
    workdir.mkdir(parents=True, exist_ok=True)
    return [compile_one(launch, cc, workdir) for launch in launches if launch["family"] == FAMILY[cc]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="step", required=True)
    cap = sub.add_parser("capture", help="record the launches of every case")
    cap.add_argument("--out", type=Path, required=True)
    comp = sub.add_parser("compile", help="compile recorded launches for one target")
    comp.add_argument("launches", type=Path)
    comp.add_argument("--cc", type=int, choices=sorted(SM), required=True)
    comp.add_argument("--out", type=Path, required=True)
    comp.add_argument("--shard", default="0/1", help="i/n: compile every n-th launch from the i-th")
    args = p.parse_args(argv)
    if args.step == "capture":
        launches = capture()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(launches, indent=1) + "\n")
        print(f"{len(launches)} distinct launches -> {args.out}")
        return 0
    i, n = map(int, args.shard.split("/"))
    launches = json.loads(args.launches.read_text())
    mine = [launch for launch in launches if launch["family"] == FAMILY[args.cc]][i::n]
    rows = compile_all(mine, args.cc, args.out.parent / f".{args.out.stem}-work")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    failed = sum("error" in r for r in rows)
    print(f"compiled {len(rows) - failed} of {len(rows)} launches for sm_{args.cc} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

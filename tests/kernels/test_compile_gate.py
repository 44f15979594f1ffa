"""The compile gate: every Triton kernel variant the launchers produce at realistic shapes compiles
for sm_80 and sm_90 with the installed Triton and with Triton 3.6 (the GPU machine's), within
explicit budgets; the CUDA sources likewise through ``nvcc --resource-usage``. No GPU needed.

How the variants are found and compiled: tests/kernels/compile_gate.py. Triton 3.6 lives in
``build/triton36`` (``make triton36``: ``pip install --target``, Triton alone); without it those
cases skip and say so. ``make compile-gate`` runs this module with both. Each table lands in
``build/compile-gate/`` (JSON and a text table), and the test's output prints it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.kernels.compile_gate import SM
from tests.ops.test_cuda_sources import CSRC, NVCC, SOURCES, needs_nvcc

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "build/compile-gate"
TRITON36 = ROOT / "build/triton36"

# Budgets. Spills: none in a kernel whose dot runs on tensor cores or whose tokens are bf16 (local
# memory in the inner loop costs more than the tile it saves); the float32 ieee kernels (CUDA-core
# FMA, 64-wide operand chunks) are reported, not failed: their path is the slow one by design
# (docs/kernels.md#float32-on-tensor-cores). Shared memory: the per-block limit of the family's
# smallest part (sm_86/sm_89: 99 KB; H100: 227 KB). Occupancy: a tensor-core scan keeps >= 8 warps
# per SM (two 4-warp blocks or one 8-warp block), so one block's k-selection on CUDA cores can run
# while another's tile is on the tensor cores; every kernel must fit at least one block.
MIN_TC_WARPS_PER_SM = 8
TC_DOTS = ("native", "bf16x3")
SCANS = ("_knn_scan_kernel", "_denser_scan_kernel", "_assign_kernel", "_farthest_kernel")
# The CUDA kernels: 256 threads a block (csrc/cuda/common.cuh kThreads), static shared memory.
CUDA_THREADS = 256
CUDA_MAX_STATIC_SMEM = 48 * 1024


def _run(cmd: list[str], env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd)}\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out


def _env(extra_path: Path | None = None) -> dict:
    """No interpreter (real JITFunctions), the repository first, FP fusion as Triton 3.9 defaults."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    paths = [str(extra_path)] if extra_path else []
    env["PYTHONPATH"] = os.pathsep.join([*paths, str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    return env


@pytest.fixture(scope="module")
def launches() -> Path:
    """The launches of every case, captured once per run with the installed Triton."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "launches.json"
    _run([sys.executable, "-m", "tests.kernels.compile_gate", "capture", "--out", str(path)], _env())
    assert len(json.loads(path.read_text())) > 0
    return path


def _compile(launches: Path, cc: int, tag: str, extra_path: Path | None) -> list[dict]:
    """Compiles in two processes (the machines CI runs on have two cores)."""
    shards = 2
    outs = [OUT / f"{tag}-sm{cc}-{i}.json" for i in range(shards)]
    cmds = [[sys.executable, "-m", "tests.kernels.compile_gate", "compile", str(launches), "--cc", str(cc),
             "--out", str(out), "--shard", f"{i}/{shards}"] for i, out in enumerate(outs)]
    with ThreadPoolExecutor(shards) as pool:
        list(pool.map(lambda cmd: _run(cmd, _env(extra_path)), cmds))
    return [row for out in outs for row in json.loads(out.read_text())]


def _table(rows: list[dict]) -> str:
    head = (f"{'kernel':<22}{'dtype':<9}{'dot':<8}{'constexprs':<36}{'blocks':<22}{'w':>2}{'s':>2}"
            f"{'regs':>5}{'stack':>6}{'STL':>5}{'smem':>8}{'mma':>6}{'blk/SM':>7}")
    lines = [head]
    for r in sorted(rows, key=lambda r: (r["kernel"], r["dtype"], r["dot"], json.dumps(r["constexprs"]))):
        if "error" in r:
            lines.append(f"{r['kernel']:<22}{r['dtype']:<9}{r['dot']:<8}ERROR {r['error']}")
            continue
        blocks = "x".join(str(v) for v in r["blocks"].values())
        cx = ",".join(f"{k}={v}" for k, v in r["constexprs"].items())
        lines.append(f"{r['kernel']:<22}{r['dtype']:<9}{r['dot']:<8}{cx:<36}{blocks:<22}{r['num_warps']:>2}"
                     f"{r['num_stages']:>2}{r['registers']:>5}{r['stack']:>6}{r['spill_stores']:>5}{r['shared']:>8}"
                     f"{r['mma']:>6}{r['blocks_per_sm']:>7}")
    return "\n".join(lines)


def budget_failures(rows: list[dict], cc: int) -> list[str]:
    """Every way a compiled launch breaks the budgets above, one line each."""
    bad = []
    for r in rows:
        name = f"{r['kernel']} {r['dtype']} {r['dot']} {r['constexprs']} sm_{cc}"
        if "error" in r:
            bad.append(f"{name}: does not compile: {r['error']}")
            continue
        tensor_cores = r["dot"] in TC_DOTS
        if (tensor_cores or r["dtype"] == "bfloat16") and (r["spill_stores"] or r["spill_loads"]):
            bad.append(f"{name}: spills ({r['spill_stores']} local stores, {r['registers']} registers)")
        if r["shared"] > SM[cc]["smem_block"]:
            bad.append(f"{name}: {r['shared']} bytes of shared memory > {SM[cc]['smem_block']}")
        if r["blocks_per_sm"] < 1:
            bad.append(f"{name}: no block fits an SM ({r['registers']} registers, {r['shared']} bytes shared)")
        if tensor_cores and r["kernel"] in SCANS and r["warps_per_sm"] < MIN_TC_WARPS_PER_SM:
            bad.append(f"{name}: {r['warps_per_sm']} warps per SM < {MIN_TC_WARPS_PER_SM}")
        if tensor_cores and r["mma"] == "none":
            bad.append(f"{name}: a tensor-core dot compiled to no matrix instruction")
        if tensor_cores and cc == 90 and r["kernel"] in SCANS and r["mma"] != "HGMMA":
            bad.append(f"{name}: a 64-row tile on sm_90 without wgmma ({r['mma']})")
    return bad


def _triton_versions() -> list:
    has36 = (TRITON36 / "triton/__init__.py").exists()
    return [pytest.param(None, id="triton-installed"),
            pytest.param(TRITON36, id="triton-3.6",
                         marks=[] if has36 else pytest.mark.skip(reason="build/triton36 missing: make triton36"))]


@pytest.mark.compile_gate
@pytest.mark.slow
@pytest.mark.parametrize("cc", [80, 90], ids=["sm80", "sm90"])
@pytest.mark.parametrize("extra_path", _triton_versions())
def test_triton_kernels_compile_within_budget(launches, extra_path, cc):
    rows = _compile(launches, cc, "triton36" if extra_path else "triton", extra_path)
    version = rows[0]["triton"]
    if extra_path:
        assert version.startswith("3.6"), f"build/triton36 holds Triton {version}"
    table = _table(rows)
    (OUT / f"triton-{version}-sm{cc}.json").write_text(json.dumps(rows, indent=1) + "\n")
    (OUT / f"triton-{version}-sm{cc}.txt").write_text(table + "\n")
    print(f"\nTriton {version}, sm_{cc}: {len(rows)} variants\n{table}")
    failures = budget_failures(rows, cc)
    assert not failures, "\n".join(failures)


def nvcc_resources(source: Path, cc: int) -> list[dict]:
    """Per kernel of ``source`` for ``sm_<cc>``: registers, stack, spills, static shared memory."""
    out = subprocess.run([NVCC, "-c", "-std=c++17", "-O3", f"-gencode=arch=compute_{cc},code=sm_{cc}",
                          "--resource-usage", "-I", str(CSRC), str(source), "-o", os.devnull],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = []
    for block in re.split(r"Compiling entry function ", out.stdout + out.stderr)[1:]:
        name = block.split("'")[1]
        props = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", block)
        used = re.search(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?", block)
        rows.append({"kernel": name, "registers": int(used.group(1)), "stack": int(props.group(1)),
                     "spill_stores": int(props.group(2)), "spill_loads": int(props.group(3)),
                     "smem": int(used.group(2) or 0)})
    return rows


@pytest.mark.compile_gate
@needs_nvcc
@pytest.mark.parametrize("cc", [80, 90], ids=["sm80", "sm90"])
def test_cuda_kernels_within_budget(cc):
    rows = [dict(r, source=s.name) for s in SOURCES for r in nvcc_resources(s, cc)]
    assert rows, "no kernel found in nvcc's resource report"
    lines, bad = [], []
    for r in rows:
        warps = CUDA_THREADS // 32
        per_warp = -(-r["registers"] * 32 // 256) * 256
        blocks = min(SM[cc]["regs"] // per_warp // warps, SM[cc]["smem_sm"] // (r["smem"] + 1024),
                     SM[cc]["threads"] // CUDA_THREADS)
        short = re.sub(r"^_ZN6emollm4cuda12block_kernelINS0_\d+", "", r["kernel"])[:48]
        lines.append(f"{r['source']:<16}{short:<50}{r['registers']:>5}{r['stack']:>6}{r['spill_stores']:>6}"
                     f"{r['smem']:>8}{blocks:>4}")
        if r["spill_stores"] or r["spill_loads"]:
            bad.append(f"{short} sm_{cc}: spills {r['spill_stores']} bytes")
        if r["smem"] > CUDA_MAX_STATIC_SMEM or blocks < 1:
            bad.append(f"{short} sm_{cc}: {r['smem']} bytes shared, {blocks} blocks per SM")
    table = "\n".join([f"{'source':<16}{'kernel':<50}{'regs':>5}{'stack':>6}{'spill':>6}{'smem':>8}{'blk':>4}", *lines])
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"cuda-sm{cc}.txt").write_text(table + "\n")
    print(f"\nCUDA kernels, sm_{cc}\n{table}")
    assert not bad, "\n".join(bad)


def _row(**over) -> dict:
    row = {"kernel": "_knn_scan_kernel", "dtype": "bfloat16", "dot": "native", "constexprs": {}, "registers": 128,
           "stack": 0, "spill_stores": 0, "spill_loads": 0, "shared": 49152, "mma": "HGMMA", "blocks_per_sm": 2,
           "warps_per_sm": 16}
    return {**row, **over}


def test_budgets_catch_what_they_should():
    """The gate's rules on made-up reports: each broken budget is named, the allowed cases pass."""
    assert budget_failures([_row()], 90) == []
    assert budget_failures([_row(dtype="float32", dot="ieee", spill_stores=9, mma="none")], 90) == []
    assert budget_failures([_row(kernel="_edges_kernel", mma="HMMA")], 90) == []
    cases = {"spills": _row(spill_stores=3), "shared memory": _row(shared=SM[80]["smem_block"] + 1),
             "warps per SM": _row(warps_per_sm=4), "no matrix instruction": _row(mma="none"),
             "without wgmma": _row(mma="HMMA"), "does not compile": _row(error="CompilationError: boom"),
             "no block fits": _row(blocks_per_sm=0)}
    for words, row in cases.items():
        failures = budget_failures([row], 80 if words == "shared memory" else 90)
        assert len(failures) >= 1 and any(words in f for f in failures), (words, failures)

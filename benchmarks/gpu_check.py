"""make gpu-check: prove the kernels on a GPU in one bounded call (docs/gpu-check.md).

    python3 benchmarks/gpu_check.py                # on a GPU machine, about 5 minutes
    python3 benchmarks/gpu_check.py --dry-run      # the whole flow on CPU with tiny shapes

Steps, each in its own process with a time limit; a step that fails or runs out of time is
recorded and the later steps still run:

1. facts: device, driver, versions, commit (git, else ``EMOLLM_COMMIT``) and a hash of the sources;
2. build: the CUDA extension in place for this GPU's architecture (``pip install -e`` without
   an index or build isolation, else CMake directly as setup.py drives it);
3. tests: ``pytest -m gpu tests/kernels tests/ops``: every backend on CUDA against the float64
   oracle, float32 in both dot modes, bf16, the N=131072 memory bound;
4. bench: the benchmark groups marked ``gpu_check``, medians from ``triton.testing.do_bench``.

Then ``benchmarks/results/<gpu>.json`` (device, commit, versions, steps, test counts, every
group, the design's GPU targets and the three open questions), copies of it and the logs in
``$OUT`` when set, and the summary table, printed last. Exit status 0 when every step passed.
This process never touches the GPU: the steps do, each in its own process.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import gpu_targets  # noqa: E402
from report import summarize, table  # noqa: E402

# Seconds per step on the GPU machine; the whole is also bounded by --budget-s. Measured there:
# not yet (docs/gpu-check.md); from this machine's dry run and the work each step does.
LIMITS = {"facts": 60, "build": 200, "tests": 130, "bench": 170}
BUDGET_S = 330  # about 5.5 minutes: a machine start and two runs fit in 15 device-minutes
GRACE_S = 20  # after SIGINT, for pytest to write its reports, before SIGKILL
# Benchmark files in the order they run: the design's targets first, so a run cut short by its
# time limit still has them.
BENCH_FILES = ["test_bench_dpc_cluster.py", "test_bench_knn_density.py", "test_bench_mvp.py",
               "test_bench_dpc_delta.py", "test_bench_dpc_cluster_merge.py", "test_bench_cluster_merge.py",
               "test_bench_gcn.py", "test_bench_model.py"]
SOURCES = ["kernels", "csrc", "emollm/ops", "benchmarks", "tests/kernels", "tests/ops"]

FACTS = r"""
import json, os, platform, shutil, subprocess, sys
import torch
out = {"python": platform.python_version(), "torch": torch.__version__, "cuda_runtime": torch.version.cuda,
       "cpu_count": os.cpu_count()}
for name in ("triton", "transformers", "pytest", "xdist"):
    try:
        out[name] = __import__(name).__version__
    except Exception as err:
        out[name] = None
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    out.update(device=torch.cuda.get_device_name(0), capability=f"{p.major}.{p.minor}", sms=p.multi_processor_count,
               memory_gb=round(p.total_memory / 2**30, 1))
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
        out["driver"] = smi
    except Exception:
        out["driver"] = None
else:
    out.update(device=None, capability=None)
nvcc = shutil.which("nvcc")
version = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout if nvcc else ""
out["nvcc"] = version.strip().splitlines()[-1] if version.strip() else None
print(json.dumps(out))
"""

# The last way to build: CMake directly, as setup.py drives it, for a setuptools too old to read
# pyproject.toml (its SPDX license string needs setuptools >= 77).
CMAKE_BUILD = r"""
import os, shutil, subprocess, sys
import pybind11, torch.utils
root, arch = os.getcwd(), os.environ["TORCH_CUDA_ARCH_LIST"].replace(".", "")
nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
home = os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
args = [f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={root}/emollm", f"-DPython_EXECUTABLE={sys.executable}",
        f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path};{pybind11.get_cmake_dir()}", "-DCMAKE_BUILD_TYPE=Release",
        f"-DEMOLLM_WITH_CUDA={'OFF' if os.environ.get('EMOLLM_CUDA') == '0' else 'ON'}",
        f"-DCMAKE_CUDA_ARCHITECTURES={arch}", f"-DCMAKE_CUDA_COMPILER={nvcc}", f"-DCUDAToolkit_ROOT={home}",
        f"-DCUDA_TOOLKIT_ROOT_DIR={home}"]
if shutil.which("ninja"):
    args.append("-GNinja")
subprocess.run(["cmake", "-S", root, "-B", "build/gpu-check-cmake", *args], check=True)
subprocess.run(["cmake", "--build", "build/gpu-check-cmake", "-j", os.environ.get("MAX_JOBS", "8")], check=True)
"""

CHECK_BUILD = r"""
import importlib, json
import emollm._C as C
kernels = importlib.import_module("emollm.kernels")
print(json.dumps({"with_cuda": bool(getattr(C, "with_cuda", False)), "kernels": kernels.__file__}))
"""


@dataclass
class Step:
    """One step's outcome: ``ok``, ``failed`` (exit status), ``timeout`` or ``skipped``."""

    name: str
    status: str
    seconds: float
    detail: str
    log: str


def run_step(name: str, cmd: list[str], *, env: dict, limit: float, log: Path) -> tuple[Step, str]:
    """Runs ``cmd`` with its output in ``log``; after ``limit`` seconds SIGINT (pytest then writes
    its reports), after GRACE_S more SIGKILL, to the whole process group. Returns the step and the
    output."""
    start = time.monotonic()
    with open(log, "w") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        status = "ok"
        try:
            proc.wait(timeout=max(limit, 1))
        except subprocess.TimeoutExpired:
            status = "timeout"
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    seconds = time.monotonic() - start
    output = log.read_text(errors="replace")
    if status == "ok" and proc.returncode != 0:
        status = "failed"
    detail = f"exit {proc.returncode}" if status == "failed" else f"after {limit:.0f} s" if status == "timeout" else ""
    return Step(name, status, round(seconds, 1), detail, log.name), output


def sources_hash() -> str:
    """sha256 of the files that decide what ran (the device machine's copy has no .git)."""
    digest = hashlib.sha256()
    for top in SOURCES:
        for path in sorted((REPO / top).rglob("*")):
            code = path.suffix in (".py", ".cu", ".cuh", ".h", ".cpp")
            if path.is_file() and code and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(REPO)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def git_commit() -> dict:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True)
        return {"id": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip()), "from": "git"}
    except (OSError, subprocess.CalledProcessError):
        return {"id": os.environ.get("EMOLLM_COMMIT", "unknown"), "dirty": None, "from": "EMOLLM_COMMIT"}


def junit_counts(path: Path) -> dict:
    """Passed/failed/errors/skipped and the first failing tests from a JUnit XML report."""
    if not path.exists():
        return {"report": "missing"}
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    failing = [f"{case.get('classname')}::{case.get('name')}" for s in suites for case in s.iter("testcase")
               if case.find("failure") is not None or case.find("error") is not None]
    counts["failing"] = failing[:20]
    return counts


def read_stream(path: Path) -> dict:
    """pytest-benchmark's JSON layout (``machine_info``, ``benchmarks``) from the streamed rows."""
    out = {"machine_info": {}, "benchmarks": []}
    if path.exists():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if "machine_info" in record:
                out["machine_info"] = record["machine_info"]
            else:
                out["benchmarks"].append(record)
    return out


def has_module(python: str, name: str, env: dict) -> bool:
    return subprocess.run([python, "-c", f"import {name}"], env=env, capture_output=True).returncode == 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", default=os.environ.get("GPU_CHECK_DRY") == "1",
                   help="on CPU: tiny shapes, no build, gpu tests skip (checks this script)")
    p.add_argument("--budget-s", type=float, default=float(os.environ.get("GPU_CHECK_BUDGET_S", BUDGET_S)))
    p.add_argument("--limit", action="append", default=[], metavar="STEP=SECONDS", help="override a step's limit")
    p.add_argument("--out-dir", type=Path, help="default: benchmarks/results (a dry run: build/gpu-check-dry)")
    args = p.parse_args(argv)
    limits = dict(LIMITS, **{k: float(v) for k, v in (item.split("=") for item in args.limit)})
    out_dir = args.out_dir or (REPO / ("build/gpu-check-dry" if args.dry_run else "benchmarks/results"))
    work = out_dir / ".gpu-check"
    work.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget_s
    python = sys.executable
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    steps: list[Step] = []

    def limit(name: str, keep: float = 0.0) -> float:
        """The step's own limit, cut to what the budget leaves (minus ``keep`` for later steps)."""
        return max(5.0, min(limits[name], deadline - time.monotonic() - keep))

    # 1. facts
    step, output = run_step("facts", [python, "-c", FACTS], env=env, limit=limit("facts"), log=work / "facts.log")
    steps.append(step)
    try:
        facts = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        facts = {}
    if not args.dry_run and not facts.get("device"):
        steps[-1] = Step("facts", "failed", step.seconds, "no CUDA device visible", step.log)
    arch = facts.get("capability") or "9.0"

    # 2. build: the CUDA extension for this GPU, in place
    build_env = dict(env, EMOLLM_CUDA="1", TORCH_CUDA_ARCH_LIST=arch, MAX_JOBS=str(facts.get("cpu_count") or 8))
    if args.dry_run:
        step, _ = run_step("build", [python, "-c", "import emollm._C"], env=env, limit=limit("build"),
                           log=work / "build.log")
        step.detail = "dry run: the extension in place is imported, not rebuilt"
    else:
        pip = [python, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-index", "-e", "."]
        step, _ = run_step("build", pip, env=build_env, limit=limit("build", keep=150), log=work / "build.log")
        if step.status == "failed":  # an old setuptools, say: CMake as setup.py drives it
            step, _ = run_step("build", [python, "-c", CMAKE_BUILD], env=build_env, limit=limit("build", keep=150),
                               log=work / "build-cmake.log")
            step.detail = "pip install -e failed (build.log); " + ("built with CMake directly" if step.status == "ok"
                                                                    else f"CMake too: {step.status} {step.detail}")
    check, output = run_step("build-check", [python, "-c", CHECK_BUILD], env=env, limit=60, log=work / "check.log")
    if check.status != "ok" and "emollm.kernels" in output and not (REPO / "emollm/kernels").exists():
        (REPO / "emollm/kernels").symlink_to("../kernels")  # an in-place build maps no emollm.kernels
        check, output = run_step("build-check", [python, "-c", CHECK_BUILD], env=env, limit=60, log=work / "check.log")
    built = json.loads(output.strip().splitlines()[-1]) if check.status == "ok" else {}
    if step.status == "ok" and not args.dry_run and not built.get("with_cuda"):
        step = Step("build", "failed", step.seconds, f"emollm._C without CUDA kernels ({check.status})", step.log)
    steps.append(step)

    # 3. tests
    junit = work / "gpu-tests.xml"
    cmd = [python, "-m", "pytest", "-m", "gpu", "tests/kernels", "tests/ops", "-q", "-p", "no:cacheprovider",
           "-rfE", f"--junitxml={junit}"]
    if not args.dry_run and has_module(python, "xdist", env):
        cmd += ["-n", "4"]  # Triton compiles and the CPU oracle in parallel; one GPU is plenty for four
    junit.unlink(missing_ok=True)
    step, _ = run_step("tests", cmd, env=env, limit=limit("tests", keep=90), log=work / "tests.log")
    tests = junit_counts(junit)
    step.detail = (f"{tests.get('passed', 0)} passed, {tests.get('failures', 0) + tests.get('errors', 0)} failed, "
                   f"{tests.get('skipped', 0)} skipped" + (f"; {step.detail}" if step.detail else ""))
    steps.append(step)

    # 4. bench: rows streamed as measured (a run stopped at its limit keeps them)
    raw, stream = work / "bench-raw.json", work / "bench-rows.jsonl"
    raw.unlink(missing_ok=True)
    stream.unlink(missing_ok=True)
    bench_env = dict(env, EMOLLM_BENCH_DEVICE="cpu" if args.dry_run else "cuda", EMOLLM_BENCH_PEAK_MEMORY="0",
                     EMOLLM_BENCH_BUDGET_S="0.05" if args.dry_run else "0.3", EMOLLM_BENCH_STREAM=str(stream))
    if args.dry_run:
        bench_env["EMOLLM_BENCH_DRY_RUN"] = "1"
    cmd = [python, "-m", "pytest", *(f"benchmarks/{f}" for f in BENCH_FILES), "-m", "gpu_check", "-q",
           "-p", "no:cacheprovider", f"--benchmark-json={raw}", "-rfE"]
    step, _ = run_step("bench", cmd, env=bench_env, limit=limit("bench", keep=10), log=work / "bench.log")
    bench = read_stream(stream)
    groups = summarize(bench) if bench["benchmarks"] else {}
    rows = sum(len(g) for g in groups.values())
    step.detail = f"{rows} rows in {len(groups)} groups" + (f"; {step.detail}" if step.detail else "")
    steps.append(step)

    # results
    machine = bench.get("machine_info", {}).get("emollm", {})
    automatic = machine.get("automatic", {})
    auto = automatic.get("dpc_cluster", "triton")
    targets = [gpu_targets.evaluate(t, groups, automatic.get(t.op, automatic.get("dpc_cluster_merge", auto)))
               for t in gpu_targets.TARGETS]
    device = facts.get("device") or (f"dry run on {machine.get('device', 'CPU')}" if args.dry_run else "unknown GPU")
    result = {
        "device": device, "dry_run": args.dry_run, "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(), "sources_sha256": sources_hash(), "versions": facts, "extension": built,
        "steps": [asdict(s) for s in steps], "tests": tests, "automatic": automatic, "targets": targets,
        "questions": gpu_targets.questions(groups), "groups": groups,
        "wall_s": round(args.budget_s - (deadline - time.monotonic()), 1),
    }
    from _machine import file_safe

    out_json = out_dir / f"{file_safe(device)}.json"
    tmp = out_json.with_name(f".{out_json.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out_json)
    summary = render(result)
    (work / "summary.txt").write_text(summary + "\n")
    if os.environ.get("OUT"):
        dest = Path(os.environ["OUT"])
        dest.mkdir(parents=True, exist_ok=True)
        for path in [out_json, work / "summary.txt", work / "build.log", work / "tests.log", work / "bench.log",
                     stream, raw, junit]:
            if path.exists():
                shutil.copy(path, dest / path.name)
    print(table(groups) if groups else "(no benchmark rows)")
    print(f"\nwrote {out_json}\n")
    print(summary)
    return 0 if all(s.status == "ok" for s in steps) else 1


def render(result: dict) -> str:
    """The summary table: steps, the design's GPU targets, the open questions."""
    v = result["versions"]
    commit = result["commit"]["id"][:10] + ("+dirty" if result["commit"]["dirty"] else "")
    head = " · ".join(str(x) for x in [result["device"], f"torch {v.get('torch')}", f"triton {v.get('triton')}",
                                       f"commit {commit}", f"sources {result['sources_sha256']}",
                                       f"{result['wall_s']:.0f} s"])
    dry = " (DRY RUN: tiny shapes on CPU, numbers mean nothing)" if result["dry_run"] else ""
    lines = ["=" * 100, f"gpu-check{dry}", head, "", "steps"]
    for s in result["steps"]:
        lines.append(f"  {s['name']:<8}{s['status']:<9}{s['seconds']:>7.1f} s  {s['detail']}")
    failing = result["tests"].get("failing") or []
    lines += [f"    failing: {name}" for name in failing[:10]]
    lines += ["", "GPU targets (docs/design.md#performance-targets), automatic backend"]
    lines.append(f"  {'target':<86}{'status'}")
    for t in result["targets"]:
        lines.append(f"  {t['text']:<86}{t['status']}")
        if "value" in t:
            extra = f", {t['vs_reference']:.1f}× vs reference" if "vs_reference" in t else ""
            best = f"; best: {t['best']} {t['best_value']:.3g}" if "best" in t else ""
            lines.append(f"    {t['provider']}: {t['ms']:.3g} ms against {t['baseline_ms']:.3g} ms: "
                         f"{t['value']:.3g} (target {t['threshold']:g}){extra}{best}")
    q = result["questions"]
    lines += ["", "open questions",
              f"  automatic order on CUDA: {q['auto_order']['verdict']}",
              *(f"    {c['op']}: cuda / triton = {c['ratio']:.2f}" for c in q["auto_order"]["groups"]),
              f"  float32 on tensor cores: {q['f32_split']['verdict']}",
              *(f"    {c['op']}: bf16x3 / ieee = {c['ratio']:.2f}" for c in q["f32_split"]["groups"]),
              f"  attention: {q['attention']['verdict']}", "=" * 100]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

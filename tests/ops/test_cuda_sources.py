"""The CUDA sources build without a GPU: every ``csrc/cuda/*.cu`` compiles with ``nvcc -c`` for
the oldest and newest architectures we target, warnings as errors; the C ABI header is valid C;
the torch-facing ``csrc/cuda_ops.cpp`` type-checks against this torch's headers. Skipped only
where the tool it needs (nvcc, a C/C++ compiler) is absent."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"
SOURCES = sorted((CSRC / "cuda").glob("*.cu"))
# CUDA 13 builds sm_75 and newer; the library targets Ampere (sm_80) to Hopper (sm_90).
ARCHS = ("80", "90")


def find_nvcc() -> str | None:
    cuda_home = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda"))
    found = shutil.which("nvcc") or (cuda_home / "bin/nvcc")
    return str(found) if Path(found).exists() else None


def find_cuda_include(nvcc: str | None) -> Path | None:
    """The toolkit's include folder: next to nvcc's bin/ (nvcc may be a link or a wrapper), or CUDA_HOME's."""
    homes = [Path(nvcc).resolve().parents[1]] if nvcc else []
    homes.append(Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")))
    return next((h / "include" for h in homes if (h / "include/cuda_runtime_api.h").exists()), None)


NVCC = find_nvcc()
CUDA_INCLUDE = find_cuda_include(NVCC)
needs_nvcc = pytest.mark.skipif(NVCC is None or CUDA_INCLUDE is None,
                                reason="nvcc or the CUDA headers not found (install the CUDA toolkit or set CUDA_HOME)")


def compile_ok(cmd: list[str]) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, f"{' '.join(cmd)}\n{out.stdout}{out.stderr}"


def test_sources_exist():
    assert {p.stem for p in SOURCES} >= {"knn_density", "dpc_delta", "dpc_cluster"}


@needs_nvcc
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_cu_compiles(source: Path, tmp_path: Path):
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in ARCHS]
    compile_ok([NVCC, "-c", "-std=c++17", "-O3", *gencode, "-Werror", "all-warnings", "-Xptxas", "-warn-spills",
                "-Xcompiler", "-Wall,-Wextra", "-I", str(CSRC), str(source), "-o", str(tmp_path / "kernel.o")])


@needs_nvcc
def test_c_abi_header_is_c(tmp_path: Path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    src = tmp_path / "abi.c"
    src.write_text('#include "cuda/kernels.h"\nint main(void) { return EMOLLM_BFLOAT16 == 2 ? 0 : 1; }\n')
    compile_ok([cc, "-std=c99", "-Wall", "-Werror", "-fsyntax-only", "-I", str(CSRC), "-I", str(CUDA_INCLUDE),
                str(src)])


@needs_nvcc
def test_cuda_ops_typechecks_against_torch(tmp_path: Path):
    """csrc/cuda_ops.cpp is built only with a CUDA torch; its use of the ATen/c10 API is checked
    here against the installed torch's headers. A CPU-only torch ships c10/cuda but not the header
    its build generates (cuda_cmake_macros.h), which only sets export macros: a stand-in is given."""
    cxx = shutil.which("c++") or shutil.which("g++")
    torch_include = Path(torch.__file__).parent / "include"
    if cxx is None or not (torch_include / "c10/cuda/CUDAStream.h").exists():
        pytest.skip("no C++ compiler, or torch ships no c10/cuda headers")
    stub = tmp_path / "c10/cuda/impl"
    stub.mkdir(parents=True)
    if not (torch_include / "c10/cuda/impl/cuda_cmake_macros.h").exists():
        (stub / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    system = [torch_include, torch_include / "torch/csrc/api/include", CUDA_INCLUDE, tmp_path]
    compile_ok([cxx, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-I", str(CSRC),
                *(f"-isystem{p}" for p in system), str(CSRC / "cuda_ops.cpp")])

"""Builds emollm._C with CMake (CMakeLists.txt). Flags from the environment:

EMOLLM_CUDA=auto|1|0   compile the CUDA kernels: auto = when torch has CUDA and nvcc is found
MAX_JOBS=N             parallel compile jobs (default: all cores)
TORCH_CUDA_ARCH_LIST   e.g. "9.0" (default: the visible GPU's, else 8.0;9.0)
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


def _cuda_home() -> Path | None:
    """The CUDA toolkit: $CUDA_HOME / $CUDA_PATH, /usr/local/cuda, or the folder above nvcc on PATH.
    Each must hold include/cuda_runtime.h: an nvcc on PATH may be a wrapper script elsewhere."""
    found = shutil.which("nvcc")
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda",
                  found and Path(found).resolve().parent.parent]
    return next((Path(c) for c in candidates if c and (Path(c) / "include/cuda_runtime.h").is_file()), None)


def _nvcc() -> Path:
    home = _cuda_home()
    return home / "bin/nvcc" if home else Path(shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc")


def _want_cuda() -> bool:
    mode = os.environ.get("EMOLLM_CUDA", "auto").lower()
    if mode in ("0", "off", "false", "no"):
        return False
    import torch

    available = torch.version.cuda is not None and _nvcc().exists()
    if mode in ("1", "on", "true", "yes") and not available:
        sys.exit("EMOLLM_CUDA=1 but torch has no CUDA or nvcc is missing")
    return available and any((ROOT / "csrc/cuda").glob("*.cu"))


def _cuda_archs() -> str:
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if not archs:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            archs = f"{major}.{minor}"
        else:
            archs = "8.0;9.0"
    return ";".join(a.replace(".", "").replace("+PTX", "") for a in archs.replace(" ", ";").split(";") if a)


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        import pybind11
        import torch.utils

        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        # One CMake tree per interpreter and torch: a cache configured for another environment
        # (make test-lower builds beside make test) would link the other torch.
        env_key = hashlib.sha1(f"{sys.executable}|{torch.__version__}".encode()).hexdigest()[:10]
        build_dir = Path(self.build_temp).resolve() / f"{ext.name}-{env_key}"
        build_dir.mkdir(parents=True, exist_ok=True)
        cuda = _want_cuda()
        args = [
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path};{pybind11.get_cmake_dir()}",
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DEMOLLM_WITH_CUDA={'ON' if cuda else 'OFF'}",
        ]
        if cuda:
            args.append(f"-DCMAKE_CUDA_ARCHITECTURES={_cuda_archs()}")
        if torch.version.cuda and (home := _cuda_home()):
            # A CUDA build of torch makes find_package(Torch) look for the toolkit even when the
            # extension is CPU-only; CMake guesses it from nvcc, which can be a wrapper elsewhere.
            args += [f"-DCMAKE_CUDA_COMPILER={home / 'bin/nvcc'}", f"-DCUDAToolkit_ROOT={home}",
                     f"-DCUDA_TOOLKIT_ROOT_DIR={home}"]
        elif cuda:
            args.append(f"-DCMAKE_CUDA_COMPILER={_nvcc()}")
        # cmake and ninja from pip live next to this Python, which need not be on PATH.
        env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
        cmake = shutil.which("cmake", path=env["PATH"])
        if cmake is None:
            sys.exit("cmake not found: `pip install cmake ninja pybind11` (or `make test`, which does it)")
        if shutil.which("ninja", path=env["PATH"]):
            args.append("-GNinja")
        jobs = os.environ.get("MAX_JOBS", str(os.cpu_count() or 1))
        subprocess.run([cmake, str(ROOT), *args], cwd=build_dir, check=True, env=env)
        subprocess.run([cmake, "--build", ".", "-j", jobs], cwd=build_dir, check=True, env=env)


setup(
    package_dir={"emollm": "emollm", "emollm.kernels": "kernels"},
    # Every package under emollm/ (a hand-kept list missed emollm.inference and emollm.serve), and
    # kernels/ as emollm.kernels. tests/packaging/test_wheel.py checks the wheel holds them all.
    packages=[*find_packages(include=["emollm", "emollm.*"]), "emollm.kernels"],
    ext_modules=[Extension("emollm._C", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
)

"""What a benchmark result was measured on: device, commit and versions.

Shared by ``conftest.py`` (recorded into the pytest-benchmark JSON at measurement time) and
``report.py`` (its fallback when a JSON lacks them). Results are compared across commits and
machines, so every file names all of these.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

import torch

from emollm._system import cpu_name

REPO = Path(__file__).resolve().parent.parent


def device_name(device: str = "cpu") -> str:
    """``"AMD EPYC, 2 cores"`` or the CUDA device's name, as a human reads it."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"{cpu_name()}, {os.cpu_count()} cores"


def file_safe(name: str) -> str:
    """``"AMD EPYC, 2 cores"`` -> ``"AMD-EPYC-2-cores"``: usable as a file name anywhere."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", name).strip("-.") or "unknown-device"


def git_commit() -> dict:
    """``{"id": <HEAD sha>, "dirty": bool}``; id is "unknown" outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()

    try:
        # Untracked files (results, scratch) do not change what was measured; edits to tracked ones do.
        return {"id": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.CalledProcessError):
        return {"id": "unknown", "dirty": None}


def describe(device: str = "cpu") -> dict:
    """Everything a result file records about where it came from."""
    return {
        "device": device_name(device),
        "bench_device": device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "commit": git_commit(),
    }

"""Running ``python -m emollm ...`` under ``torchrun`` from a test: CPU, gloo, a free port."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def torchrun(args: list[str], nproc: int = 2, timeout: float = 240, env: dict[str, str] | None = None,
             script: str | None = None) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node nproc -m emollm *args`` (or ``script *args``) in the
    repository root, on CPU (no GPU is visible, so every process joins a gloo group); raises with
    the processes' output when it fails or runs past ``timeout`` seconds."""
    target = [script] if script is not None else ["-m", "emollm"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               *target, *args]
    run_env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
               "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    done = subprocess.run(command, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"torchrun exited with {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n"
                             f"--- stderr\n{done.stderr[-8000:]}")
    return done

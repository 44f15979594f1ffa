"""The built wheel, installed the way a user installs it: into clean virtual environments, once
with the base dependencies only and once with every extra. ``make test-wheel`` builds the wheel
and runs this file (it is skipped elsewhere); the versions come from the lock file."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

WHEEL_DIR = os.environ.get("EMOLLM_WHEEL_DIR")
CONSTRAINTS = os.environ.get("EMOLLM_WHEEL_CONSTRAINTS")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not WHEEL_DIR, reason="`make test-wheel` builds and runs this")]

# One op on the compiled kernel, checked against the reference backend.
ONE_OP = """
import torch
from emollm import _extension, ops
assert _extension.C is not None, _extension.import_error
x = torch.randn(2, 96, 32, generator=torch.Generator().manual_seed(0))
with ops.use_backend("cpu"):
    got = ops.dpc_cluster(x, 8, 5)
with ops.use_backend("reference"):
    want = ops.dpc_cluster(x, 8, 5)
assert all(torch.equal(a, b) for a, b in zip(got, want)), "cpu and reference disagree"
print("dpc_cluster on cpu agrees with reference")
"""


def _run(*args, cwd, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=900)
    if check and proc.returncode:
        pytest.fail(f"{' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def wheel() -> Path:
    found = sorted(Path(WHEEL_DIR).glob("emollm-*.whl"))
    assert len(found) == 1, f"expected one emollm wheel in {WHEEL_DIR}, found {[p.name for p in found]}"
    return found[0].resolve()


def _environment(root: Path, requirement: str) -> Path:
    _run(sys.executable, "-m", "venv", str(root), cwd=root.parent)
    python = root / "bin" / "python"
    constraints = ["-c", str(Path(CONSTRAINTS).resolve())] if CONSTRAINTS else []
    _run(python, "-m", "pip", "install", "--quiet", *constraints, requirement, cwd=root.parent)
    return python


@pytest.mark.parametrize("extras", ["", "all"], ids=["base", "all-extras"])
def test_wheel_installs_and_runs(tmp_path, wheel, extras):
    python = _environment(tmp_path / "venv", f"{wheel}[{extras}]" if extras else str(wheel))
    work = tmp_path / "work"  # away from the source tree: the installed emollm must be the one imported
    work.mkdir()
    env = _run(python, "-m", "emollm", "env", cwd=work).stdout
    assert "emollm._C compiled extension: loaded" in env and str(tmp_path / "venv") in env
    assert ("transformers not installed" in " ".join(env.split())) == (not extras)
    assert "agrees with reference" in _run(python, "-c", ONE_OP, cwd=work).stdout

    synth = _run(python, "-m", "emollm", "data", "synth", "--out", "synth", "--train", "8", "--test", "4",
                 cwd=work, check=bool(extras))
    if extras:
        assert (work / "synth" / "train.jsonl").is_file()
    else:  # the data extra is missing: one line that names it, no traceback
        assert synth.returncode == 2
        assert synth.stderr.strip().splitlines() == [synth.stderr.strip()]
        assert "pip install 'emollm[data]'" in synth.stderr


def test_wheel_holds_every_package(wheel):
    # Every folder of emollm/ with an __init__.py, and kernels/ as emollm/kernels (a hand-kept list
    # once left out emollm.inference and emollm.serve).
    import zipfile

    root = Path(__file__).resolve().parents[2]
    want = {str(p.parent.relative_to(root)) for p in (root / "emollm").rglob("__init__.py")} | {"emollm/kernels"}
    want |= {f"emollm/kernels/{p.parent.relative_to(root / 'kernels')}".rstrip("/.")
             for p in (root / "kernels").rglob("__init__.py")}
    with zipfile.ZipFile(wheel) as zf:
        have = {str(Path(name).parent) for name in zf.namelist() if name.endswith("/__init__.py")}
    assert want <= have, f"packages missing from the wheel: {sorted(want - have)}"

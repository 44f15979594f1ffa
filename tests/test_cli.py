"""``python -m emollm env`` and ``emollm demo``: they run, and say what they should."""

import subprocess
import sys

import pytest
import torch

from emollm import _extension, cli, ops


def test_env_lists_every_backend_and_the_extension():
    out = subprocess.run([sys.executable, "-m", "emollm", "env"], capture_output=True, text=True, check=True).stdout
    assert "reference" in out
    for name, (ok, _) in ops.backend_status().items():
        # One line per backend, and its state as backend_status reports it.
        line = next(line for line in out.splitlines() if line.split()[:1] == [name])
        assert line.split()[1] == ("available" if ok else "missing")
    assert ("emollm._C compiled extension: loaded" in out) == (_extension.C is not None)


def test_demo_times_every_cpu_backend_and_agrees(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path), "--repeat", "1", "--small", "--device", "cpu"]) == 0
    table = (tmp_path / "timings.txt").read_text()
    rows = {line.split()[0] for line in table.splitlines() if line.strip()}
    expected = {b for b in ops.available_backends() if b not in ("triton", "cuda")}  # GPU-only ones
    assert "reference" in expected
    assert expected <= rows
    assert "all backends agree with reference" in table
    assert "timing reference" in capsys.readouterr().out  # per-backend progress


def test_demo_rejects_zero_repeat(tmp_path):
    with pytest.raises(SystemExit):
        cli.main(["demo", "--out", str(tmp_path), "--repeat", "0"])


def test_demo_reports_the_first_stage_that_differs():
    same = [torch.zeros(2, 8, dtype=torch.long), torch.ones(2, 4, dtype=torch.long)]
    other = [same[0].clone(), same[1].clone()]
    other[1][0, :3] = 2
    assert cli._agreement(same, [t.clone() for t in same]) == "agree"
    assert cli._agreement(other, same) == "DIFFER: stage 2, 3 of 8 tokens"

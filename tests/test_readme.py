"""Every ```python block of the README runs as written.

Each block runs on its own, in a fresh namespace, in a temporary working folder (a block that
writes a file writes it there). A block that cannot run here (one that needs a real 7B checkpoint,
say) must be marked by the line ``<!-- not-run: reason -->`` right before its fence; it is then
listed as skipped with that reason instead of run. No block of the README needs it today.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^(?:<!-- not-run: (?P<reason>.+?) -->\n)?```python\n(?P<code>.*?)^```", re.MULTILINE | re.DOTALL)


def readme_blocks() -> list:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    params = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start("code")) + 1
        marks = [pytest.mark.skip(reason=f"README.md:{line}: {match['reason']}")] if match["reason"] else []
        params.append(pytest.param(match["code"], line, id=f"README.md:{line}", marks=marks))
    return params


def test_the_readme_has_python_blocks():
    assert len(readme_blocks()) >= 5  # ops, MVP, LLaVA, the model, asking from Python


@pytest.mark.parametrize(("code", "line"), readme_blocks())
def test_readme_python_block_runs(code, line, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__readme__"})


def test_the_not_run_marker_is_read():
    sample = "<!-- not-run: needs vicuna-7b -->\n```python\nload_7b()\n```\n\n```python\nx = 1\n```\n"
    found = [(m["reason"], m["code"]) for m in BLOCK.finditer(sample)]
    assert found == [("needs vicuna-7b", "load_7b()\n"), (None, "x = 1\n")]

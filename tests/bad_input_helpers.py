"""Helpers of the bad-input tests: an unwritable folder, and stderr read for the one error line."""

import os
import re
import tempfile
from pathlib import Path

import pytest


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder nothing can be written in, also for root (who ignores permission bits): /sys."""
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o500)
        return folder
    try:
        fd, name = tempfile.mkstemp(dir="/sys")
    except OSError:
        return Path("/sys")
    os.close(fd)
    os.unlink(name)
    pytest.skip("no unwritable folder here")


def error_lines(err: str, prefix: str) -> list[str]:
    """The lines of ``err`` that start with ``prefix``, after checking that no traceback is there.

    transformers' logger keeps the stream it was made with; made under an earlier test's capture,
    it reports each later write to that closed stream as a "Logging error" block, which is the
    test harness's noise, not the command's output: such blocks are left out.
    """
    err = re.sub(r"--- Logging error ---.*?\nArguments: [^\n]*\n", "", err, flags=re.DOTALL)
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith(prefix)]

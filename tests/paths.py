"""Paths for tests of output checks."""

import os
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

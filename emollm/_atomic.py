"""Files that appear whole or not at all: written to a temporary file in the same folder, which then
replaces the target (``os.replace`` is atomic within one file system). A reader, or a run killed
mid-write, sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_text"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` to write to; on leaving without an error it replaces
    ``path``, on an error it is removed. The name keeps ``path``'s suffix (writers such as
    matplotlib pick the format from it) and holds the process id (concurrent writers never share it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """``path`` holding ``text`` (UTF-8), replaced atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)

"""Writing outputs safely: whole files or none, and output paths checked before any work starts.

Every file a command writes goes through :func:`atomic_write`: the bytes go to a temporary file in
the destination's folder, which is fsynced and renamed over the destination only when writing
succeeded. A kill or an error at any moment leaves either the old file or the new one, never a
part; the temporary file is removed on an error (a ``kill -9`` can leave one ``.NAME.*.tmp``
behind, which no reader picks up).

:func:`check_output_file` / :func:`check_output_dir` say in one line what is wrong with an output
path (a folder where a file is wanted, a file where a folder is wanted, a path under a file, a
folder that cannot be written) before a command spends time on its work; the CLI prints an
:class:`OutputPathError` without a traceback and exits with code 2. :class:`NewFolders` creates the
missing folders of an output and removes them again when the command fails, so a failed run
leaves no empty folder behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["NewFolders", "OutputPathError", "atomic_path", "atomic_write", "check_output_dir", "check_output_file",
           "write_json_atomic", "write_jsonl_atomic", "write_text_atomic"]


class OutputPathError(ValueError):
    """An output path that cannot be written; the message names it and says why."""


def _umask() -> int:
    # The process umask can only be read by setting it; it is put back at once.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Makes a rename in ``folder`` durable; not every filesystem lets a folder be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", *, encoding: str | None = "utf-8",
                 durable: bool = True) -> Iterator[IO[Any]]:
    """A file object whose content replaces ``path`` when the ``with`` block ends without an error.

    ``mode`` is ``"w"`` (text, ``encoding``) or ``"wb"``. The file keeps the mode bits of the file
    it replaces (a new file gets the usual ``0o666 & ~umask``, not ``mkstemp``'s ``0o600``).
    ``durable``: fsync the file and its folder, so the new content survives a power cut too; a
    kill cannot tear the file either way.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, mode, encoding=None if mode == "wb" else encoding) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        try:
            bits = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            bits = 0o666 & ~_umask()
        os.chmod(tmp, bits)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        _fsync_folder(path.parent)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` for writers that take a file name (safetensors, some image
    writers); it replaces ``path`` when the ``with`` block ends without an error and is removed on
    an error. The name is hidden (a leading dot), keeps ``path``'s suffix (writers pick the format
    from it) and is unique per call (concurrent writers never share it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str, *, durable: bool = True) -> Path:
    """Writes ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_write(path, durable=durable) as f:
        f.write(text)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, value: Any, *, indent: int | None = 2) -> Path:
    """Writes ``value`` as JSON (UTF-8, a final newline) to ``path`` atomically; returns the path."""
    return write_text_atomic(path, json.dumps(value, indent=indent, ensure_ascii=False) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[Any]) -> int:
    """Writes one JSON value per line to ``path`` atomically; returns how many lines."""
    n = 0
    with atomic_write(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (``Path.exists`` is False under a file too)."""
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _probe_writable(folder: Path, what: str) -> None:
    """Creates and removes a file in ``folder``: the only test that also holds for root, read-only
    mounts and ACLs (``os.access`` answers yes to root everywhere)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".emollm-write-test.", dir=folder)
    except OSError as e:
        raise OutputPathError(f"{what}: cannot write in {folder} ({e.strerror or e})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)


def _check_path_text(path: str | os.PathLike, what: str) -> Path:
    text = os.fspath(path)
    if not text:
        raise OutputPathError(f"{what}: the path is empty")
    if "\0" in text:
        raise OutputPathError(f"{what}: the path holds a NUL character")
    return Path(text)


def _check_folder_part(folder: Path, what: str) -> None:
    """``folder`` (an output's folder, maybe not there yet) can be created and written."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        kind = "a file" if existing.is_file() else "not a folder"
        raise OutputPathError(f"{what}: {existing} is {kind}, so nothing can be written under it")
    _probe_writable(existing, what)


def check_output_file(path: str | os.PathLike, *, what: str = "--out") -> Path:
    """Raises :class:`OutputPathError` unless ``path`` can be written as a regular file (created with
    its folders, or replaced); returns it as a ``Path``. ``what`` names the option in the message."""
    path = _check_path_text(path, what)
    label = f"{what} {path}"
    if path.is_dir():
        raise OutputPathError(f"{label}: is a folder; expected a file name")
    if os.path.lexists(path) and not path.is_file() and not path.is_symlink():
        raise OutputPathError(f"{label}: is not a regular file (a device, socket or pipe); expected a file name")
    _check_folder_part(path.parent, label)
    return path


def check_output_dir(path: str | os.PathLike, *, what: str = "--out") -> Path:
    """Raises :class:`OutputPathError` unless ``path`` is a writable folder or can be created as one;
    returns it as a ``Path``."""
    path = _check_path_text(path, what)
    label = f"{what} {path}"
    if os.path.lexists(path) and not path.is_dir():
        raise OutputPathError(f"{label}: is a file, not a folder")
    _check_folder_part(path, label)
    return path


class NewFolders:
    """Creates ``folder`` and its missing parents; :meth:`remove` takes back the ones it created
    that are still empty. As a context manager it removes them when the block raises.

        with NewFolders(out) as folders:
            ...   # an error here leaves no empty folder behind
    """

    def __init__(self, folder: str | os.PathLike, *, with_contents: bool = False):
        self.folder = Path(folder)
        self.with_contents = with_contents  # remove created folders even when files were written in them
        self.created: list[Path] = []

    def _missing(self) -> list[Path]:
        missing, path = [], self.folder
        while not os.path.lexists(path) and path != path.parent:
            missing.append(path)
            path = path.parent
        return missing[::-1]

    def make(self) -> Path:
        for path in self._missing():
            path.mkdir(exist_ok=True)
            self.created.append(path)
        return self.folder

    def expect(self) -> NewFolders:
        """Notes the missing folders without making them, for a library that will (so that
        :meth:`remove` takes them back if the run fails)."""
        self.created = self._missing()
        return self

    def remove(self) -> None:
        """Removes the folders this object created, deepest first, where they are empty (or with
        what is in them, for ``with_contents=True``: a folder the failed run made holds only its files)."""
        for path in reversed(self.created):
            with contextlib.suppress(OSError):
                if self.with_contents:
                    shutil.rmtree(path)
                else:
                    path.rmdir()
        self.created = []

    def __enter__(self) -> NewFolders:
        self.make()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.remove()

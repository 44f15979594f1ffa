"""Reading JSON-lines files (records, exemplar stores, predictions) with every problem at ``file:line``.

One reader for every JSONL file emollm reads, so they all treat bad input the same way:

- only regular files are read (a folder, a device such as ``/dev/zero`` or a pipe is refused
  instead of read forever);
- a UTF-8 byte-order mark on the first line is skipped; bytes that are not UTF-8 are reported at
  their line; ``\\r\\n`` line ends are accepted; blank lines are skipped;
- a line longer than :data:`MAX_LINE_BYTES` or nested deeper than :data:`MAX_DEPTH` is refused
  (one huge or deep line would otherwise cost unbounded memory or a ``RecursionError``);
  ``NaN`` / ``Infinity``, which are not JSON, are refused too;
- **the last line**: every writer ends every line with a newline, so a last line without one is
  either whole (it parses: it is data, like any other line) or torn by a kill in the middle of a
  write (it does not parse). A torn last line is an error unless the caller resumes a file it
  appends to (``drop_torn_tail=True``), which then drops it and records it in
  :attr:`JsonLines.torn_tail`.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_LINE_BYTES", "JsonLines", "json_depth"]

MAX_LINE_BYTES = 8 * 1024 * 1024  # a record is a few KB; an exemplar with a 4096-d embedding ~80 KB
MAX_DEPTH = 32  # records nest 3-4 levels (record > conversations > turn); meta a few more
_BOM = b"\xef\xbb\xbf"


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar is 0); iterative, so any depth is safe."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


class JsonLines:
    """Iterates ``(line number, JSON value)`` over the non-blank lines of ``path``.

    ``error``: the exception class raised for a bad line, called as ``error(message, path, line)``
    (:class:`~emollm.data.records.RecordError` or a subclass). ``drop_torn_tail``: a last line that
    has no newline and does not parse is left out (its number goes to :attr:`torn_tail`) instead of
    raising. A missing file raises ``FileNotFoundError``.
    """

    def __init__(self, path: str | os.PathLike, *, error: type[Exception] | None = None,
                 drop_torn_tail: bool = False, max_line_bytes: int = MAX_LINE_BYTES, max_depth: int = MAX_DEPTH):
        if error is None:
            from emollm.data.records import RecordError

            error = RecordError
        self.path, self.error = Path(path), error
        self.drop_torn_tail, self.max_line_bytes, self.max_depth = drop_torn_tail, max_line_bytes, max_depth
        self.torn_tail: int | None = None

    def _check_file(self) -> None:
        if not os.path.lexists(self.path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(self.path))
        if self.path.is_dir():
            raise self.error("is a folder, not a JSON-lines file", self.path)
        if not self.path.is_file():
            raise self.error("is not a regular file (a device, socket or pipe)", self.path)

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        self._check_file()
        with self.path.open("rb") as f:
            lineno = 0
            while raw := f.readline(self.max_line_bytes + 1):
                lineno += 1
                if len(raw) > self.max_line_bytes:
                    raise self.error(f"line longer than {self.max_line_bytes} bytes; is it a JSON-lines file?",
                                     self.path, lineno)
                whole = raw.endswith(b"\n")
                if lineno == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM):]
                value = self._parse(raw, lineno, last_without_newline=not whole)
                if value is _TORN:
                    self.torn_tail = lineno
                    return
                if value is not _BLANK:
                    yield lineno, value

    def _parse(self, raw: bytes, lineno: int, *, last_without_newline: bool) -> Any:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            if last_without_newline:
                return self._torn(lineno, "a character cut in half")
            raise self.error(f"not UTF-8 text (byte 0x{raw[e.start]:02x} at byte {e.start + 1} of the line); "
                             f"is it a JSON-lines file?", self.path, lineno) from None
        if not text.strip():
            return _BLANK
        try:
            value = json.loads(text, parse_constant=_no_constants)
        except json.JSONDecodeError as e:
            if last_without_newline:
                return self._torn(lineno, f"{e.msg} at column {e.colno}")
            raise self.error(f"not valid JSON ({e.msg} at column {e.colno})", self.path, lineno) from None
        except RecursionError:
            raise self.error(f"nested deeper than {self.max_depth} levels", self.path, lineno) from None
        except ValueError as e:  # NaN/Infinity, an integer of more than 4300 digits
            raise self.error(f"not valid JSON ({e})", self.path, lineno) from None
        if json_depth(value) > self.max_depth:
            raise self.error(f"nested deeper than {self.max_depth} levels", self.path, lineno)
        return value

    def _torn(self, lineno: int, why: str) -> Any:
        if self.drop_torn_tail:
            return _TORN
        raise self.error(f"the last line is cut off ({why}, no final newline): a write was interrupted",
                         self.path, lineno)


_BLANK, _TORN = object(), object()

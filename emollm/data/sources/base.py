"""What every source converter yields, and how the converters are found.

A converter module ``emollm/data/sources/<module>.py`` defines:

- ``NAME``: the ``--source`` name (``"caer-s"``, ...), ``TASKS``: the tasks it produces,
  ``SPLITS``: the split names it accepts, ``LABELS``: ``{task: [labels]}`` (lower-case, as
  written in an answer; yes/no tasks use :data:`emollm.data.records.YES_NO`);
- ``convert(root: Path, split: str) -> Iterator[SourceItem | BadItem]``: reads the dataset's own
  published layout under ``root`` (documented in the module docstring) and yields one
  :class:`SourceItem` per (sample, task), or a :class:`BadItem` for a sample it cannot use (missing
  media, unknown label, malformed line). Never drops a sample silently.

The common builder (``emollm data build``) turns items into :class:`~emollm.data.records.EmoRecord`
with a question template drawn with a seed, the placeholders and the label set.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any


@dataclasses.dataclass
class SourceItem:
    id: str                          # unique within the source and split, e.g. "dia3_utt1"
    task: str                        # one of emollm.data.records.TASKS
    label: str                       # a member of the module's LABELS[task]
    media: list[dict[str, str]]      # [{"type": "image"|"video"|"audio", "path": absolute or root-relative}]
    text: str | None = None          # utterance / tweet text / caption shown with the question
    accept: list[str] = dataclasses.field(default_factory=list)  # other correct labels (multi-label)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)  # e.g. {"bbox": [...], "speaker": ...}


@dataclasses.dataclass
class BadItem:
    path: str        # the annotation file (or media file) at fault
    line: int | None  # 1-based line/row/entry number in that file, when there is one
    reason: str      # "missing image img/123.jpg", "unknown label 'angry '", "malformed row: ..."


def csv_rows(
    path: Path, lines: Iterable[str], columns: Sequence[str]
) -> Iterator[tuple[int, dict[str, str]] | BadItem]:
    """``(line, row)`` per CSV row of ``lines`` (read from ``path``), or a :class:`BadItem` for a row
    with the wrong number of fields. ``line`` is the row's first line (quoted fields may span lines).

    Raises ``ValueError`` when the header lacks one of ``columns``.
    """
    reader = csv.DictReader(lines)
    try:
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}:1: header lacks column(s) {missing}; found {reader.fieldnames}")
        line = 1
        for row in reader:
            start, line = line + 1, reader.line_num
            if None in row or any(row[c] is None for c in columns):
                yield BadItem(str(path), start, f"malformed row: {len(reader.fieldnames)} columns expected")
                continue
            yield start, row
    except csv.Error as e:  # e.g. a field over the csv module's size limit: the file is not the dataset's
        raise ValueError(f"{path}:{reader.line_num}: not a readable CSV row ({e})") from None


def read_text(path: Path) -> str:
    """The UTF-8 text of an annotation file (a byte-order mark is skipped); ``ValueError`` naming the
    file and line when it is not UTF-8."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x})") from None


def read_json(path: Path) -> Any:
    """The JSON value of an annotation file; ``ValueError`` naming the file for text that is not
    UTF-8 or not JSON, or nests too deeply to parse."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise ValueError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as e:  # an integer of more than 4300 digits
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def unsafe_media_path(path: str) -> str | None:
    """Why a media path built from an annotation field cannot be used, or None. Such a path must
    stay inside the dataset folder: ``..`` parts or an absolute path would make the build (and later
    training, evaluation or an upload to a chat endpoint) read a file elsewhere on the machine."""
    if "\0" in path:
        return f"media path {path!r} holds a NUL character"
    if os.path.isabs(path) or PurePosixPath(path).is_absolute():
        return f"media path {path!r} is absolute; the dataset's paths are relative to its folder"
    if ".." in PurePosixPath(path.replace("\\", "/")).parts:
        return f"media path {path!r} leads out of the dataset folder ('..')"
    return None

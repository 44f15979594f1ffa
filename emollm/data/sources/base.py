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
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
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

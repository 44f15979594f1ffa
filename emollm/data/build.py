"""Build EmoBench records from one source's own layout: the engine of ``emollm data build``.

A converter (:mod:`emollm.data.sources`) yields :class:`~emollm.data.sources.base.SourceItem` s;
:func:`build` turns each into an :class:`~emollm.data.records.EmoRecord`::

    human: <video>\\n<audio>\\nJoey says: "Hey!"\\nWhich emotion does the video express? Choose one of: ...
    gpt:   surprise

- one placeholder line per media item, in the order of ``media``; then, for an image with a person
  box (``meta["bbox"]``, Emotic), a line naming the box; then the text, when there is one
  (``<Speaker> says: "..."`` with ``meta["speaker"]``, ``Transcript: "..."`` for video or audio,
  ``Text: "..."`` otherwise); then the question from :mod:`emollm.data.templates`, drawn from
  ``(seed, record id)``;
- id ``"{source}/{split}/{item.id}/{task}"``, label set ``LABELS[task]`` of the source, answer the
  item's label, ``accept`` its other correct labels;
- media paths relative to the folder of the output file (so the JSONL and the dataset can move
  together), or absolute with ``absolute=True``.

Bad items (the converter's, plus items whose media file is missing, whose label is not in the
label set, whose id repeats, or that break the record schema) are never dropped silently: without
``skip_bad`` the build writes nothing and raises :class:`BuildError` listing the first ones with
file and line; with ``skip_bad`` they are left out and counted in the :class:`BuildSummary`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType

from emollm._io import NewFolders, atomic_write, check_output_file
from emollm.data.records import PLACEHOLDERS, EmoRecord, RecordError, outside_root
from emollm.data.sources import get_source
from emollm.data.sources.base import BadItem, SourceItem
from emollm.data.templates import render_question

MAX_LISTED = 10  # bad items named in a BuildError; the rest are counted


def format_bad(bad: BadItem) -> str:
    """``file:line: reason`` (``file: reason`` when there is no line)."""
    where = bad.path if bad.line is None else f"{bad.path}:{bad.line}"
    return f"{where}: {bad.reason}"


class BuildError(ValueError):
    """The source has bad items and ``skip_bad`` was not given; ``bad`` holds all of them."""

    def __init__(self, source: str, split: str, bad: list[BadItem]):
        self.bad = bad
        lines = [f"{len(bad)} bad item(s) in {source}/{split}; nothing written (pass --skip-bad to leave them out):"]
        lines += [f"  {format_bad(b)}" for b in bad[:MAX_LISTED]]
        if len(bad) > MAX_LISTED:
            lines.append(f"  ... and {len(bad) - MAX_LISTED} more")
        super().__init__("\n".join(lines))


@dataclasses.dataclass
class BuildSummary:
    source: str
    split: str
    out: Path
    records: int = 0
    by_task: Counter = dataclasses.field(default_factory=Counter)
    skipped: list[BadItem] = dataclasses.field(default_factory=list)  # bad items left out (skip_bad)
    media_outside: bool = False  # some media path leads out of the output file's folder

    def describe(self) -> str:
        tasks = ", ".join(f"{task} {n}" for task, n in sorted(self.by_task.items())) or "none"
        text = f"wrote {self.records} record(s) of {self.source}/{self.split} to {self.out} ({tasks})"
        if self.skipped:
            text += f"; skipped {len(self.skipped)} bad item(s), the first:\n" + "\n".join(
                f"  {format_bad(b)}" for b in self.skipped[:MAX_LISTED])
        if self.media_outside:
            text += (f"\nnote: the media lie outside {self.out.parent}/; train, eval and prompts read them only with "
                     f"--allow-outside-media (or write --out inside the dataset folder)")
        return text


def _text_line(item: SourceItem, kinds: list[str]) -> str | None:
    if not item.text:
        return None
    if item.meta.get("speaker"):
        return f'{item.meta["speaker"]} says: "{item.text}"'
    return f'Transcript: "{item.text}"' if {"video", "audio"} & set(kinds) else f'Text: "{item.text}"'


def _bbox_line(item: SourceItem, kinds: list[str]) -> str | None:
    bbox = item.meta.get("bbox")
    if bbox is None or "image" not in kinds:
        return None
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox):
        raise RecordError(f"meta bbox must be 4 numbers [x1, y1, x2, y2], got {bbox!r}")
    x1, y1, x2, y2 = (round(v) for v in bbox)
    return f"Consider the person inside the box ({x1}, {y1}, {x2}, {y2}) (left, top, right, bottom, in pixels)."


def _media_path(path: str, root: Path, out_dir: Path, absolute: bool) -> tuple[Path, str]:
    """(the file on disk, the path written in the record). A path that leads out of the dataset's
    folder is refused: the converters check the paths they read, and this holds for any converter."""
    if not isinstance(path, str) or not path or "\0" in path:
        raise RecordError(f"bad media path {path!r}")
    if outside_root(path, root, follow_links=False):  # the fields' text; train, eval, prompts follow links
        raise RecordError(f"media path {path!r} leads out of the dataset folder {root}")
    file = Path(path) if os.path.isabs(path) else root / path
    written = file if absolute else Path(os.path.relpath(file, out_dir))
    return file, written.as_posix()


def make_record(item: SourceItem, *, source: str, split: str, label_set: list[str], root: Path, out_dir: Path,
                seed: int = 0, absolute: bool = False) -> EmoRecord:
    """The record of one item; :class:`RecordError` when a media file is missing or the schema breaks."""
    record_id = f"{source}/{split}/{item.id}/{item.task}"
    media = []
    for m in item.media:
        file, written = _media_path(m.get("path", ""), root, out_dir, absolute)
        if not file.is_file():
            raise RecordError(f"missing {m.get('type', 'media')} file {file} (item {item.id})")
        media.append({"type": m.get("type", ""), "path": written})
    kinds = [m["type"] for m in media]
    lines = [PLACEHOLDERS[kind] for kind in kinds if kind in PLACEHOLDERS]
    lines += [line for line in (_bbox_line(item, kinds), _text_line(item, kinds)) if line]
    lines.append(render_question(item.task, record_id, media=kinds, label_set=label_set,
                                 has_text=bool(item.text), seed=seed))
    return EmoRecord(
        id=record_id, task=item.task, source=source, split=split, media=media, text=item.text,
        label_set=list(label_set), answer=item.label, accept=list(item.accept), meta=dict(item.meta),
        conversations=[{"from": "human", "value": "\n".join(lines)}, {"from": "gpt", "value": item.label}],
    ).validate()


def _progress(items: Iterable, desc: str, enabled: bool | None) -> Iterable:
    """A tqdm bar over ``items`` (None: only on a terminal); plain ``items`` without tqdm."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, unit=" items", disable=None if enabled is None else not enabled)


def records_of(module: ModuleType, root: Path, split: str, out_dir: Path, *, seed: int = 0,
               tasks: Iterable[str] | None = None, absolute: bool = False) -> Iterator[EmoRecord | BadItem]:
    """The source's records in converter order, with a :class:`BadItem` in place of each bad one."""
    source, wanted = module.NAME, set(module.TASKS if tasks is None else tasks)
    seen: set[str] = set()
    for item in module.convert(root, split):
        if isinstance(item, BadItem):
            yield item
            continue
        where = str(root / (item.media[0]["path"] if item.media else ""))
        if item.task not in module.TASKS or item.task not in module.LABELS:
            yield BadItem(where, None, f"item {item.id}: task {item.task!r} is not one of {module.NAME}'s tasks")
            continue
        if item.task not in wanted:
            continue
        key = f"{item.id}/{item.task}"
        if key in seen:
            yield BadItem(where, None, f"duplicate item id {item.id!r} for task {item.task}")
            continue
        seen.add(key)
        try:
            yield make_record(item, source=source, split=split, label_set=module.LABELS[item.task], root=root,
                              out_dir=out_dir, seed=seed, absolute=absolute)
        except RecordError as e:
            yield BadItem(where, None, f"item {item.id} ({item.task}): {e.message}")


def build(source: str, root: str | os.PathLike, split: str, out: str | os.PathLike, *, seed: int = 0,
          skip_bad: bool = False, limit: int | None = None, tasks: Iterable[str] | None = None,
          absolute: bool = False, progress: bool | None = None) -> BuildSummary:
    """Writes the records of ``source``'s ``split`` under ``root`` to the JSONL file ``out``.

    ``limit``: stop after that many records. ``tasks``: only these of the source's tasks.
    The file is written to a temporary name and renamed at the end, so a failed build leaves no
    partial file (nor a folder made for it). Raises :class:`BuildError` on bad items unless
    ``skip_bad``; ``ValueError`` on bad arguments or an output path that cannot be written;
    ``FileNotFoundError`` when the source's annotation files are not under ``root``.
    """
    module = get_source(source)
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise ValueError(f"root {str(root)!r} is not a folder")
    if split not in module.SPLITS:
        raise ValueError(f"split {split!r} is not one of {source}'s splits {module.SPLITS}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if tasks is not None and (unknown := sorted(set(tasks) - set(module.TASKS))):
        raise ValueError(f"tasks {unknown} are not produced by {source}; it produces {module.TASKS}")
    if out.suffix != ".jsonl":
        raise ValueError(f"out must be a .jsonl file, got {str(out)!r}")
    check_output_file(out)

    summary, bad = BuildSummary(source, split, out), []
    # Written to a temporary file renamed at the end: a failed or killed build leaves no partial
    # file, and the folders it made for the output are removed again.
    with NewFolders(out.parent), atomic_write(out) as f:
        out_dir = out.parent.resolve()
        stream = records_of(module, root.resolve(), split, out_dir, seed=seed, tasks=tasks, absolute=absolute)
        for entry in _progress(stream, f"{source}/{split}", progress):
            if isinstance(entry, BadItem):
                bad.append(entry)
                continue
            f.write(json.dumps(entry.to_dict(), ensure_ascii=False) + "\n")
            summary.records += 1
            summary.by_task[entry.task] += 1
            summary.media_outside = summary.media_outside or any(
                outside_root(m["path"], out_dir) for m in entry.media)
            if limit is not None and summary.records >= limit:
                break
        if bad and not skip_bad:
            raise BuildError(source, split, bad)
    summary.skipped = bad
    return summary

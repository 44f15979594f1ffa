"""EmoBench records: one JSON object per line (docs/data.md).

A record is one question about one piece of media::

    {"id": "meld/test/dia3_utt1", "task": "emo-c", "source": "meld", "split": "test",
     "media": [{"type": "video", "path": "output_repeated_splits_test/dia3_utt1.mp4"},
               {"type": "audio", "path": "output_repeated_splits_test/dia3_utt1.mp4"}],
     "text": "Oh my God, he's lost it. He's totally lost it.",
     "label_set": ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"],
     "answer": "surprise", "accept": [],
     "conversations": [{"from": "human", "value": "<video>\\n<audio>\\nThe speaker says: ...\\nWhich emotion ...?"},
                       {"from": "gpt", "value": "surprise"}]}

- ``task``: one of :data:`TASKS`. ``emo-c`` is closed-set emotion (the question lists the label
  set), ``emo-o`` open-set emotion (the answer is free text, scored through a synonym lexicon),
  ``intent`` closed set, ``humor`` / ``hate`` / ``sarcasm`` yes/no (label set ``["yes", "no"]``).
- ``media``: in the order of the placeholders ``<image>``, ``<video>``, ``<audio>`` in the
  human turns (one placeholder per item). Relative paths are relative to the folder of the JSONL
  file that holds the record (:func:`resolve_media`).
- ``answer``: the ground-truth label (a member of ``label_set``); ``accept``: other labels that
  also count as correct (multi-label sources such as Emotic).
- ``conversations``: LLaVA-style turns, ``human`` then ``gpt``, alternating; the last ``gpt``
  turn is the target.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from emollm._io import atomic_write
from emollm.data.jsonl import JsonLines

TASKS = ("emo-c", "emo-o", "intent", "humor", "hate", "sarcasm")
MEDIA_TYPES = ("image", "video", "audio")
PLACEHOLDERS = {"image": "<image>", "video": "<video>", "audio": "<audio>"}
YES_NO = ("yes", "no")


class RecordError(ValueError):
    """A bad record: says which file and line (1-based) and what is wrong."""

    def __init__(self, message: str, path: str | os.PathLike | None = None, line: int | None = None):
        self.message, self.path, self.line = message, None if path is None else str(path), line
        where = "" if path is None else f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


class MediaOutsideError(RecordError):
    """A media path that leads out of the data folder (see :func:`check_media_root`)."""


@dataclasses.dataclass
class EmoRecord:
    id: str
    task: str
    source: str
    label_set: list[str]
    answer: str
    conversations: list[dict[str, str]]
    media: list[dict[str, str]] = dataclasses.field(default_factory=list)
    text: str | None = None
    split: str | None = None
    accept: list[str] = dataclasses.field(default_factory=list)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self) -> EmoRecord:
        """Raises :class:`RecordError` (no file/line) when the record breaks the schema: a field of
        the wrong JSON type is named, never passed on to fail later."""
        for name in ("id", "source"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise RecordError(f"{name!r} must be a non-empty string, got {_short(getattr(self, name))}")
        for name in ("text", "split"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise RecordError(f"{name!r} must be a string or absent, got {_short(getattr(self, name))}")
        if not isinstance(self.meta, dict):
            raise RecordError(f"'meta' must be an object, got {_short(self.meta)}")
        if not isinstance(self.answer, str):
            raise RecordError(f"'answer' must be a string, got {_short(self.answer)}")
        if not isinstance(self.task, str) or self.task not in TASKS:
            raise RecordError(f"unknown task {_short(self.task)}; expected one of {TASKS}")
        if (not isinstance(self.label_set, list) or not self.label_set
                or not all(isinstance(label, str) and label for label in self.label_set)
                or len(set(self.label_set)) != len(self.label_set)):
            raise RecordError(f"'label_set' must be a non-empty list of distinct labels, got {_short(self.label_set)}")
        if self.answer not in self.label_set:
            raise RecordError(f"answer {_short(self.answer)} is not in the label set {_short(self.label_set)}")
        if not isinstance(self.accept, list) or not all(isinstance(a, str) for a in self.accept):
            raise RecordError(f"'accept' must be a list of labels, got {_short(self.accept)}")
        bad = [a for a in self.accept if a not in self.label_set]
        if bad:
            raise RecordError(f"accepted labels {bad} are not in the label set")
        if not isinstance(self.media, list) or not all(isinstance(m, dict) for m in self.media):
            raise RecordError(f"'media' must be a list of objects, got {_short(self.media)}")
        for item in self.media:
            path = item.get("path")
            if item.get("type") not in MEDIA_TYPES or not isinstance(path, str) or not path or "\0" in path:
                raise RecordError(f"media item {_short(item)} needs a 'type' in {MEDIA_TYPES} and a 'path' "
                                  f"(a non-empty string)")
        turns = self.conversations
        if not isinstance(turns, list) or not turns or len(turns) % 2 or any(
            not isinstance(t, dict) or t.get("from") != ("human" if i % 2 == 0 else "gpt")
            or not isinstance(t.get("value"), str)
            for i, t in enumerate(turns)
        ):
            raise RecordError("'conversations' must alternate human/gpt turns with string values, ending with gpt")
        human = "".join(t["value"] for t in turns if t["from"] == "human")
        for kind, tag in PLACEHOLDERS.items():
            want = sum(1 for m in self.media if m["type"] == kind)
            got = human.count(tag)
            if got != want:
                raise RecordError(f"{got} {tag} placeholder(s) in the human turns but {want} {kind} media item(s)")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if v not in (None, [], {}) or k in ("media", "accept")}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EmoRecord:
        if not isinstance(d, dict):
            raise RecordError(f"a record must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [n for n in ("id", "task", "source", "label_set", "answer", "conversations") if n not in d]
        if missing:
            raise RecordError(f"missing field(s) {missing}")
        unknown = sorted(set(d) - names)
        if unknown:
            raise RecordError(f"unknown field(s) {unknown}")
        return cls(**d).validate()

    @property
    def question(self) -> str:
        """The first human turn."""
        return self.conversations[0]["value"]

    def media_of(self, kind: str) -> list[str]:
        return [m["path"] for m in self.media if m["type"] == kind]


def _short(value: Any, limit: int = 120) -> str:
    """``repr(value)`` cut to ``limit`` characters: a huge field must not flood an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def resolve_media(record: EmoRecord, base: str | os.PathLike) -> list[dict[str, str]]:
    """The record's media with relative paths made absolute against ``base`` (the JSONL's folder)."""
    base = Path(base)
    return [{**m, "path": str(m["path"] if os.path.isabs(m["path"]) else base / m["path"])} for m in record.media]


def outside_root(path: str, root: str | os.PathLike, *, follow_links: bool = True) -> bool:
    """Whether the media ``path`` (relative to ``root``, or absolute) leads out of ``root``.

    Two tests: the path's text (``..``, an absolute path elsewhere; an absolute path may name the
    folder by its linked or its real path), and, with ``follow_links``, where the path really
    leads once every symlink is resolved: a link inside the data folder to a file elsewhere (say
    ``img/a.png -> /etc/passwd``) leads out too. A data folder that is itself a link keeps working.
    """
    def inside(folder: str, target: str) -> bool:
        return os.path.commonpath([folder, target]) == folder

    real_root = os.path.realpath(root)
    folders = {os.path.normpath(os.path.abspath(root)), real_root}
    if not any(inside(folder, os.path.normpath(os.path.join(folder, path))) for folder in folders):
        return True
    return follow_links and not inside(real_root, os.path.realpath(os.path.join(real_root, path)))


def check_media_root(record: Any, root: str | os.PathLike) -> None:
    """Raises :class:`RecordError` (no file/line) when a media path of ``record`` (anything with
    EmoBench ``media``) leads out of ``root`` (the folder of its records file), by its text or
    through a symlink (:func:`outside_root`)."""
    for m in record.media:
        if outside_root(m["path"], root):
            how = "leads through a symlink out of" if not outside_root(m["path"], root, follow_links=False) else \
                "lies outside"
            raise MediaOutsideError(f"{m['type']} path {m['path']!r} {how} the data folder {root}; "
                                    f"pass --allow-outside-media if the records file is trusted")


def read_jsonl(path: str | os.PathLike, *, check_media: bool = False,
               confine_media: bool = False) -> Iterator[EmoRecord]:
    """Yields the records of ``path``; a bad line raises :class:`RecordError` with file and line.

    Bad lines are the reader's (:class:`~emollm.data.jsonl.JsonLines`: not UTF-8, not JSON, too
    long or deep, a cut-off last line), a record that breaks the schema, and an id seen on an
    earlier line. ``check_media``: also raise when a media file is not an existing regular file.
    ``confine_media``: also raise when a media path leads out of the file's folder (a records file
    from elsewhere must not make emollm read, or upload, arbitrary files).
    """
    for _, record in numbered_records(path, check_media=check_media, confine_media=confine_media):
        yield record


def numbered_records(path: str | os.PathLike, *, check_media: bool = False,
                     confine_media: bool = False) -> Iterator[tuple[int, EmoRecord]]:
    """:func:`read_jsonl` with each record's line number."""
    path = Path(path)
    root = path.absolute().parent
    seen: dict[str, int] = {}
    for lineno, value in JsonLines(path, error=RecordError):
        try:
            record = EmoRecord.from_dict(value)
            if confine_media:
                check_media_root(record, root)
        except RecordError as e:
            raise type(e)(e.message, path, lineno) from None
        except TypeError as e:  # wrong value types reaching the dataclass
            raise RecordError(str(e), path, lineno) from None
        if record.id in seen:
            raise RecordError(f"id {_short(record.id)} repeats line {seen[record.id]}", path, lineno)
        seen[record.id] = lineno
        if check_media:
            for m in resolve_media(record, path.parent):
                if not os.path.lexists(m["path"]):
                    raise RecordError(f"missing {m['type']} file {m['path']}", path, lineno)
                if not os.path.isfile(m["path"]):  # a folder, or a device such as /dev/zero: never ends
                    raise RecordError(f"{m['type']} path {m['path']} is not a regular file", path, lineno)
        yield lineno, record


def write_jsonl(records: Iterable[EmoRecord | dict], path: str | os.PathLike) -> int:
    """Writes records (validated) one per line, atomically (the file appears whole or not at all);
    returns how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with atomic_write(path) as f:
        for r in records:
            r = r if isinstance(r, EmoRecord) else EmoRecord.from_dict(r)
            f.write(json.dumps(r.validate().to_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n

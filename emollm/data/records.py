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
        """Raises :class:`RecordError` (no file/line) when the record breaks the schema."""
        if not self.id or not isinstance(self.id, str):
            raise RecordError("'id' must be a non-empty string")
        if self.task not in TASKS:
            raise RecordError(f"unknown task {self.task!r}; expected one of {TASKS}")
        if (not isinstance(self.label_set, list) or not self.label_set
                or not all(isinstance(label, str) and label for label in self.label_set)
                or len(set(self.label_set)) != len(self.label_set)):
            raise RecordError(f"'label_set' must be a non-empty list of distinct labels, got {self.label_set!r}")
        if self.answer not in self.label_set:
            raise RecordError(f"answer {self.answer!r} is not in the label set {self.label_set}")
        if not isinstance(self.accept, list):
            raise RecordError(f"'accept' must be a list of labels, got {self.accept!r}")
        bad = [a for a in self.accept if a not in self.label_set]
        if bad:
            raise RecordError(f"accepted labels {bad} are not in the label set")
        if not isinstance(self.media, list) or not all(isinstance(m, dict) for m in self.media):
            raise RecordError(f"'media' must be a list of objects, got {self.media!r}")
        for item in self.media:
            if item.get("type") not in MEDIA_TYPES or not item.get("path"):
                raise RecordError(f"media item {item!r} needs a 'type' in {MEDIA_TYPES} and a 'path'")
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


def resolve_media(record: EmoRecord, base: str | os.PathLike) -> list[dict[str, str]]:
    """The record's media with relative paths made absolute against ``base`` (the JSONL's folder)."""
    base = Path(base)
    return [{**m, "path": str(m["path"] if os.path.isabs(m["path"]) else base / m["path"])} for m in record.media]


def read_jsonl(path: str | os.PathLike, *, check_media: bool = False) -> Iterator[EmoRecord]:
    """Yields the records of ``path``; a malformed line raises :class:`RecordError` with file and line.

    ``check_media``: also raise when a media file does not exist.
    """
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(_text_lines(f, path), 1):
            if not line.strip():
                continue
            try:
                record = EmoRecord.from_dict(json.loads(line))
            except json.JSONDecodeError as e:
                raise RecordError(f"not valid JSON ({e.msg} at column {e.colno})", path, lineno) from None
            except RecordError as e:
                raise RecordError(e.message, path, lineno) from None
            except TypeError as e:  # wrong value types reaching the dataclass
                raise RecordError(str(e), path, lineno) from None
            if check_media:
                for m in resolve_media(record, path.parent):
                    if not os.path.exists(m["path"]):
                        raise RecordError(f"missing {m['type']} file {m['path']}", path, lineno)
            yield record


def _text_lines(f: Iterable[str], path: Path) -> Iterator[str]:
    """The lines of the text file ``f``; bytes that are not UTF-8 (a binary file passed by mistake)
    raise :class:`RecordError` naming the file and line instead of a ``UnicodeDecodeError``."""
    done = 0
    try:
        for line in f:
            yield line
            done += 1
    except UnicodeDecodeError as e:  # decoding goes by blocks: the bad byte is at or after this line
        raise RecordError(f"not UTF-8 text ({e.reason}) at or after line {done + 1}; is it a JSONL file?",
                          path) from None


def write_jsonl(records: Iterable[EmoRecord | dict], path: str | os.PathLike) -> int:
    """Writes records (validated) one per line; returns how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            r = r if isinstance(r, EmoRecord) else EmoRecord.from_dict(r)
            f.write(json.dumps(r.validate().to_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n

"""The EmoPrompt store: chain-of-thought exemplars, one JSON object per line (paper §4.4).

An exemplar is one EmoBench sample with a rationale that reasons from what is observable to the
ground-truth label (written by a strong MLLM that was shown the media *and* the label, see
:mod:`emollm.prompting.generate`)::

    {"id": "meld/train/dia7_utt2", "task": "emo-c", "source": "meld",
     "media": [{"type": "video", "path": "../meld/train/dia7_utt2.mp4"}],
     "question": "The speaker says: \\"You did what?\\"\\nWhich emotion does the speaker show? ...",
     "label": "surprise",
     "rationale": "The speaker's eyebrows shoot up and her mouth hangs open ... so she is surprised.",
     "embedding": [0.12, -0.40, ...], "meta": {"model": "gpt-4o"}}

- ``id``: the id of the record it was made from; unique in a store. Selection never returns the
  exemplar made from the query record itself, and generation skips ids already in the store.
- ``task``, ``source``, ``media``: as in :class:`~emollm.data.records.EmoRecord`. Relative media
  paths in the file are relative to the store file's folder; in memory they are absolute
  (:func:`load_store` resolves them, :func:`save_store` / :class:`ExemplarWriter` relativize them).
- ``question``: the record's first human turn without the ``<image>``/``<video>``/``<audio>``
  placeholders (an exemplar is inserted as text; a placeholder in it would claim media that the
  prompt does not carry).
- ``label``, ``rationale``: the answer and the reasoning that leads to it.
- ``embedding`` (optional): a vector for ``nearest`` selection; all embeddings of a store have one
  length. ``meta`` (optional): provenance such as the generating model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from emollm._io import NewFolders, atomic_write
from emollm.data.jsonl import JsonLines
from emollm.data.records import MEDIA_TYPES, PLACEHOLDERS, TASKS, RecordError, check_media_root

_PLACEHOLDER_RE = re.compile("|".join(re.escape(tag) for tag in PLACEHOLDERS.values()))
_REQUIRED = ("id", "task", "source", "question", "label", "rationale")


class StoreError(RecordError):
    """A bad exemplar: says which file and line (1-based) and what is wrong."""


def strip_placeholders(text: str) -> str:
    """``text`` without media placeholders, with the blank lines they leave behind removed."""
    lines = [line.strip() for line in _PLACEHOLDER_RE.sub("", text).splitlines()]
    return "\n".join(line for line in lines if line)


@dataclasses.dataclass
class Exemplar:
    id: str
    task: str
    source: str
    question: str
    label: str
    rationale: str
    media: list[dict[str, str]] = dataclasses.field(default_factory=list)
    embedding: list[float] | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self) -> Exemplar:
        """Raises :class:`StoreError` (no file/line) when the exemplar breaks the schema."""
        for name in _REQUIRED:
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise StoreError(f"{name!r} must be a non-empty string, got {value!r}")
        if self.task not in TASKS:
            raise StoreError(f"unknown task {self.task!r}; expected one of {TASKS}")
        for name in ("question", "rationale"):
            if _PLACEHOLDER_RE.search(getattr(self, name)):
                raise StoreError(f"{name!r} contains a media placeholder; exemplars are inserted as plain text")
        if not isinstance(self.media, list) or any(
            not isinstance(m, dict) or m.get("type") not in MEDIA_TYPES or not isinstance(m.get("path"), str)
            or not m["path"] or "\0" in m["path"] for m in self.media
        ):
            raise StoreError(f"'media' must be a list of {{'type': one of {MEDIA_TYPES}, 'path': str}}, "
                             f"got {self.media!r}")
        if self.embedding is not None:
            emb = self.embedding
            if (not isinstance(emb, list) or not emb
                    or any(isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) for v in emb)):
                raise StoreError("'embedding' must be a non-empty list of finite numbers")
        if not isinstance(self.meta, dict):
            raise StoreError(f"'meta' must be an object, got {type(self.meta).__name__}")
        return self

    @classmethod
    def from_dict(cls, d: Any) -> Exemplar:
        if not isinstance(d, dict):
            raise StoreError(f"an exemplar must be a JSON object, got {type(d).__name__}")
        missing = [n for n in _REQUIRED if n not in d]
        if missing:
            raise StoreError(f"missing field(s) {missing}")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise StoreError(f"unknown field(s) {unknown}")
        return cls(**d).validate()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if v not in (None, {}) or k in _REQUIRED}


def _media_to_file(media: list[dict[str, str]], folder: Path) -> list[dict[str, str]]:
    """Absolute paths made relative to ``folder`` (the store's), so a store moves with its data."""
    out = []
    for m in media:
        path = m["path"]
        if os.path.isabs(path):
            try:
                path = os.path.relpath(path, folder)
            except ValueError:  # another drive on Windows: keep it absolute
                pass
        out.append({**m, "path": path})
    return out


def _media_from_file(media: list[dict[str, str]], folder: Path) -> list[dict[str, str]]:
    return [{**m, "path": m["path"] if os.path.isabs(m["path"]) else os.path.normpath(folder / m["path"])}
            for m in media]


def _line(exemplar: Exemplar, folder: Path) -> str:
    d = exemplar.validate().to_dict()
    d["media"] = _media_to_file(exemplar.media, folder)
    return json.dumps(d, ensure_ascii=False) + "\n"


def iter_store(path: str | os.PathLike, *, drop_torn_tail: bool = False,
               confine_media: bool = False) -> Iterator[Exemplar]:
    """Yields the exemplars of ``path`` with absolute media paths.

    Raises :class:`StoreError` with file and line for a malformed line (see
    :class:`~emollm.data.jsonl.JsonLines`: not UTF-8, not JSON, too long or deep, a cut-off last
    line), a bad exemplar, a repeated id, or an embedding whose length differs from the first one's.
    ``drop_torn_tail``: a cut-off last line is left out instead (a store being resumed).
    ``confine_media``: a media path leading out of the store's folder is a bad line too.
    """
    yield from _StoreReader(path, drop_torn_tail=drop_torn_tail, confine_media=confine_media)


class _StoreReader:
    """:func:`iter_store`, keeping what the writer needs to know afterwards: the ids and whether a
    cut-off last line was left out."""

    def __init__(self, path: str | os.PathLike, *, drop_torn_tail: bool = False, confine_media: bool = False):
        self.path, self.confine_media = Path(path), confine_media
        self.lines = JsonLines(self.path, error=StoreError, drop_torn_tail=drop_torn_tail)

    def __iter__(self) -> Iterator[Exemplar]:
        folder = self.path.resolve().parent
        seen: dict[str, int] = {}
        dim: int | None = None
        for lineno, value in self.lines:
            try:
                exemplar = Exemplar.from_dict(value)
                if self.confine_media:
                    check_media_root(exemplar, folder)
            except (StoreError, RecordError, TypeError) as e:  # TypeError: wrong value types reaching the dataclass
                raise StoreError(getattr(e, "message", str(e)), self.path, lineno) from None
            if exemplar.id in seen:
                raise StoreError(f"id {exemplar.id!r} repeats line {seen[exemplar.id]}", self.path, lineno)
            seen[exemplar.id] = lineno
            if exemplar.embedding is not None:
                dim = dim or len(exemplar.embedding)
                if len(exemplar.embedding) != dim:
                    message = f"embedding has {len(exemplar.embedding)} values, earlier ones {dim}"
                    raise StoreError(message, self.path, lineno)
            exemplar.media = _media_from_file(exemplar.media, folder)
            yield exemplar


def load_store(path: str | os.PathLike, *, confine_media: bool = False) -> list[Exemplar]:
    """All exemplars of ``path`` (see :func:`iter_store` for the checks)."""
    return list(iter_store(path, confine_media=confine_media))


def save_store(exemplars: Iterable[Exemplar], path: str | os.PathLike) -> int:
    """Writes ``exemplars`` (validated, ids unique) to ``path``, replacing it atomically: on any
    error the old file is kept whole; returns how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.resolve().parent
    seen: set[str] = set()
    n = 0
    with atomic_write(path) as f:
        for exemplar in exemplars:
            if exemplar.id in seen:
                raise StoreError(f"id {exemplar.id!r} appears twice")
            seen.add(exemplar.id)
            f.write(_line(exemplar, folder))
            n += 1
    return n


def drop_partial_tail(path: str | os.PathLike) -> bool:
    """Readies a store for appending: cuts a last line torn by a kill (no newline, and it does not
    parse), and ends a whole last line that lacks its newline with one (it is data: the next
    append must not run into it). Returns whether a torn line was cut.

    Call it only on a file already read as a store (:class:`ExemplarWriter` does), so that a file
    that is not a store is never changed.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with path.open("rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return False
        f.seek(0)
        data = f.read()
        start = data.rfind(b"\n") + 1
        try:
            json.loads(data[start:].decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            f.truncate(start)
            return True
        f.write(b"\n")
    return False


class ExemplarWriter:
    """Appends exemplars to a store, one flushed and fsynced line each, so a killed run loses at
    most the line being written (which the next writer cuts, see :func:`drop_partial_tail`).

    Opening reads and checks the whole existing file first (:class:`StoreError` for a file that is
    not a store, which is then left exactly as it was); the file and its folders are created at
    the first :meth:`append`, so a run that writes nothing leaves nothing behind. Use as a context
    manager; ids already in the file are in :attr:`ids` and are refused.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.ids: set[str] = set()
        self.dropped_partial_line = False
        if os.path.lexists(self.path):
            reader = _StoreReader(self.path, drop_torn_tail=True)
            self.ids = {e.id for e in reader}
            self.dropped_partial_line = drop_partial_tail(self.path)
        self._file = None

    def _open(self):
        NewFolders(self.path.parent).make()
        return self.path.open("a", encoding="utf-8")

    def append(self, exemplar: Exemplar) -> None:
        if exemplar.id in self.ids:
            raise StoreError(f"id {exemplar.id!r} is already in the store", self.path)
        line = _line(exemplar, self.path.resolve().parent)  # validated before the file is touched
        if self._file is None:
            self._file = self._open()
        self._file.write(line)
        self._file.flush()
        os.fsync(self._file.fileno())
        self.ids.add(exemplar.id)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> ExemplarWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def append_exemplars(exemplars: Iterable[Exemplar], path: str | os.PathLike) -> int:
    """Appends ``exemplars`` to the store at ``path`` (created if missing); returns how many."""
    n = 0
    with ExemplarWriter(path) as writer:
        for exemplar in exemplars:
            writer.append(exemplar)
            n += 1
    return n

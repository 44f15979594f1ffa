"""EmoBench as a torch ``Dataset``: Vicuna v1 conversation text + loaded media per record.

The text format is Vicuna v1 (FastChat ``vicuna_v1``, the chat template of the EmoLLM tokenizers)::

    {system} USER: {human 1} ASSISTANT: {gpt 1}</s>USER: {human 2} ASSISTANT: {gpt 2}</s>

:func:`prompt_text` is everything up to the final ``ASSISTANT:`` (what the model is asked at
evaluation time); :func:`conversation_text` is the whole conversation (what it is trained on,
every answer followed by the EOS ``</s>``). Samples are dicts, turned into model inputs and
labels by :class:`emollm.data.collator.EmoBenchCollator`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from torch.utils.data import Dataset

from emollm.data.jsonl import JsonLines
from emollm.data.media import MAX_FRAMES, SAMPLING_RATE, load_audio, load_image, load_video
from emollm.data.records import (
    MEDIA_TYPES,
    PLACEHOLDERS,
    EmoRecord,
    RecordError,
    check_media_root,
    read_jsonl,
    resolve_media,
)

__all__ = ["EOS", "SYSTEM", "EmoBenchDataset", "InstructionDataset", "InstructionRecord", "check_media_files",
           "conversation_text", "load_media", "prompt_text", "read_instructions"]

SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")
EOS = "</s>"


class Conversational(Protocol):
    """What the text and media functions need of a record (EmoRecord and InstructionRecord have it)."""

    conversations: list[dict[str, str]]
    media: list[dict[str, str]]


def _turns(record: Conversational, exemplar: str | None) -> list[str]:
    values = [t["value"] for t in record.conversations]
    if exemplar:
        values[0] = f"{exemplar.strip()}\n{values[0]}"
    return values


def prompt_text(record: Conversational, exemplar: str | None = None) -> str:
    """The Vicuna v1 conversation of every turn but the final gpt answer, ending with ``"ASSISTANT:"``.

    ``exemplar``: an EmoPrompt chain-of-thought exemplar, put on its own line at the start of the
    first human turn (before any media placeholder).
    """
    values = _turns(record, exemplar)
    text = SYSTEM + " "
    for i in range(0, len(values) - 2, 2):
        text += f"USER: {values[i]} ASSISTANT: {values[i + 1]}{EOS}"
    return text + f"USER: {values[-2]} ASSISTANT:"


def conversation_text(record: Conversational, exemplar: str | None = None) -> tuple[str, list[str]]:
    """``(text, answers)``: the whole Vicuna v1 conversation (``prompt_text`` + ``" " + answer + "</s>"``)
    and the gpt turns in order, which the collator leaves unmasked."""
    answers = [t["value"] for t in record.conversations[1::2]]
    return f"{prompt_text(record, exemplar)} {answers[-1]}{EOS}", answers


def load_media(record: Conversational, base_dir: str | os.PathLike, *, fps: float = 1.0,
               max_frames: int = MAX_FRAMES, sampling_rate: int = SAMPLING_RATE) -> dict[str, list]:
    """The record's media, loaded, in record (= placeholder) order, ready for ``EmoLLMProcessor``.

    Returns ``{"images": [PIL RGB], "videos": [[PIL RGB frames]], "audio": [float32 [T] at
    sampling_rate]}``; relative paths are taken against ``base_dir`` (the JSONL's folder).
    Video frames: ``fps`` per second, uniformly ``max_frames`` beyond that (:mod:`emollm.data.media`).
    """
    out: dict[str, list] = {"images": [], "videos": [], "audio": []}
    for item in resolve_media(record, base_dir):
        if item["type"] == "image":
            out["images"].append(load_image(item["path"]))
        elif item["type"] == "video":
            out["videos"].append(load_video(item["path"], fps=fps, max_frames=max_frames))
        else:
            out["audio"].append(load_audio(item["path"], rate=sampling_rate))
    return out


@dataclasses.dataclass
class InstructionRecord:
    """A general (non-emotion) instruction example: LLaVA-style ``conversations`` and optional
    ``media`` as in EmoBench records; LLaVA's single ``"image"`` / ``"video"`` path is accepted too."""

    id: str
    conversations: list[dict[str, str]]
    media: list[dict[str, str]] = dataclasses.field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Any) -> InstructionRecord:
        if not isinstance(d, dict) or "conversations" not in d:
            raise RecordError("an instruction record must be a JSON object with 'conversations'")
        media = d.get("media", [])
        if not isinstance(media, list) or not all(isinstance(m, dict) for m in media):
            raise RecordError(f"'media' must be a list of objects, got {type(media).__name__}")
        media = media + [{"type": kind, "path": d[kind]} for kind in ("image", "video") if kind in d]
        record = cls(str(d.get("id", "")), d["conversations"], media)
        turns = record.conversations
        if not isinstance(turns, list) or not turns or len(turns) % 2 or any(
            not isinstance(t, dict) or t.get("from") != ("human" if i % 2 == 0 else "gpt")
            or not isinstance(t.get("value"), str) for i, t in enumerate(turns)
        ):
            raise RecordError("'conversations' must alternate human/gpt turns with string values, ending with gpt")
        if any(m.get("type") not in MEDIA_TYPES or not isinstance(m.get("path"), str) or not m["path"]
               or "\0" in m["path"] for m in media):
            raise RecordError(f"media items need a 'type' in {MEDIA_TYPES} and a 'path', got {media}")
        human = "".join(t["value"] for t in turns[::2])
        for kind, tag in PLACEHOLDERS.items():
            want = sum(m["type"] == kind for m in media)
            if human.count(tag) != want:
                raise RecordError(f"{human.count(tag)} {tag} placeholder(s) but {want} {kind} media item(s)")
        return record


def read_instructions(path: str | os.PathLike, *, confine_media: bool = False) -> list[InstructionRecord]:
    """The :class:`InstructionRecord` s of a JSONL file (one per line) or of a JSON array of them, as
    LLaVA publishes its instruction data (e.g. ``llava_v1_5_mix665k.json``); a bad record raises
    :class:`RecordError` with file and line (JSONL, see :class:`~emollm.data.jsonl.JsonLines`) or
    record index (array). ``confine_media``: a media path leading out of the file's folder is a bad
    record too."""
    if not Path(path).is_file():
        raise RecordError("not a regular file (or no such file)", path)
    if _starts_with_bracket(path):
        return _read_instruction_array(path, confine_media=confine_media)
    records = []
    root = Path(path).absolute().parent
    for lineno, value in JsonLines(path, error=RecordError):
        try:
            record = InstructionRecord.from_dict(value)
            if confine_media:
                check_media_root(record, root)
        except RecordError as e:
            raise type(e)(e.message, path, lineno) from None
        if not record.id:
            record.id = f"{Path(path).stem}/{lineno}"
        records.append(record)
    return records


def _starts_with_bracket(path: str | os.PathLike) -> bool:
    """Whether the first byte after a BOM and white space is ``[``. Read as bytes: a file that is not
    UTF-8 goes on to the JSON-lines reader, which names its line."""
    with Path(path).open("rb") as f:
        head = f.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    return head.startswith(b"[")


def _read_instruction_array(path: str | os.PathLike, *, confine_media: bool = False) -> list[InstructionRecord]:
    try:
        items = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise RecordError(f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})", path) from None
    except (UnicodeDecodeError, RecursionError) as e:
        raise RecordError(f"not readable as UTF-8 JSON ({type(e).__name__})", path) from None
    if not isinstance(items, list):
        raise RecordError(f"a JSON array of conversations expected, got {type(items).__name__}", path)
    records = []
    root = Path(path).absolute().parent
    for index, item in enumerate(items):
        try:
            records.append(InstructionRecord.from_dict(item))
            if confine_media:
                check_media_root(records[-1], root)
        except RecordError as e:
            name = f" (id {item.get('id')!r})" if isinstance(item, dict) and "id" in item else ""
            raise RecordError(f"record {index}{name}: {e.message}", path) from None
        if not records[-1].id:
            records[-1].id = f"{Path(path).stem}/{index}"
    return records


def check_media_files(records: Sequence[Conversational], base_dir: str | os.PathLike, path: str | os.PathLike,
                      folder_flag: str | None = None) -> None:
    """Raises :class:`RecordError` naming the first record whose media file does not exist
    (relative paths taken against ``base_dir``; ``folder_flag`` names the option that set it,
    ``None``: the file's own folder)."""
    for index, record in enumerate(records):
        for item in resolve_media(record, base_dir):
            if not os.path.exists(item["path"]):
                where = folder_flag or "the file's folder"
                against = f" (relative paths are taken against {where} {base_dir})"
                raise RecordError(f"record {index} (id {record.id!r}): missing {item['type']} file "
                                  f"{item['path']}{against}", path)


class _ConversationDataset(Dataset):
    """Records + the folder their media paths are relative to; ``dataset[i]`` loads record i's media."""

    def __init__(self, records: Sequence[Conversational], base_dir: str | os.PathLike, *, fps: float = 1.0,
                 max_frames: int = MAX_FRAMES, sampling_rate: int = SAMPLING_RATE):
        if not records:
            raise ValueError(f"no records to train on (base_dir {base_dir})")
        self.records, self.base_dir = list(records), Path(base_dir)
        self.fps, self.max_frames, self.sampling_rate = fps, max_frames, sampling_rate

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """``{"id", "text", "answers", "images", "videos", "audio"}`` (see :func:`conversation_text`
        and :func:`load_media`)."""
        record = self.records[index]
        text, answers = conversation_text(record)
        media = load_media(record, self.base_dir, fps=self.fps, max_frames=self.max_frames,
                           sampling_rate=self.sampling_rate)
        return {"id": record.id, "text": text, "answers": answers, **media}


class EmoBenchDataset(_ConversationDataset):
    """The EmoBench records of a JSONL file (validated by :func:`read_jsonl`), media resolved
    against the file's folder. Every media file is checked up front: a JSONL moved without its
    media fails here with file and line, not hours into a run."""

    records: list[EmoRecord]

    def __init__(self, path: str | os.PathLike, **kwargs: Any):
        super().__init__(_nonempty(list(read_jsonl(path, check_media=True)), path), Path(path).parent, **kwargs)


class InstructionDataset(_ConversationDataset):
    """General instruction data (:func:`read_instructions`: JSONL, or a JSON array as LLaVA
    publishes it), for the ``mix`` and ``sequential`` training strategies. Relative media paths
    are taken against ``image_folder`` (LLaVA's ``--image_folder``) when given, else against the
    file's folder; every media file is checked up front."""

    def __init__(self, path: str | os.PathLike, *, image_folder: str | os.PathLike | None = None, **kwargs: Any):
        records = _nonempty(read_instructions(path), path)
        base_dir = Path(image_folder) if image_folder is not None else Path(path).parent
        check_media_files(records, base_dir, path, "--image-folder" if image_folder is not None else None)
        super().__init__(records, base_dir, **kwargs)


def _nonempty(records: list, path: str | os.PathLike) -> list:
    if not records:
        raise ValueError(f"{path}: no records to train on (the file is empty)")
    return records

"""SMILE (Hyun et al., NAACL 2024): why an audience laughs, on sitcom and TED clips.

Layout read (SMILE v.2 of github.com/postech-ami/SMILE-Dataset, unpacked under ``root``, with
``videos/SMILE_videos.zip`` extracted in place)::

    root/annotations/data_split.json
    root/annotations/GT_laughter_reason.json
    root/videos/video_clips/<clip id>.mp4

``data_split.json`` is a JSON object from split name to a list of clip ids. Its key names are not
documented beyond "key index for train, validation, test split", so ``train`` and ``test`` are read
from keys of those names and ``val`` from the one of ``val``, ``valid``, ``validation``, ``dev`` that is
there. Sitcom clip ids contain an underscore (``"1_80"``); TED ids do not and may be JSON numbers
(``1402``): ids are compared as strings. ``GT_laughter_reason.json`` maps each clip id to one
free-text explanation of the laughter. ``multimodal_textual_representation.json`` and the
per-utterance ``video_segments`` are not read.

Mapping:

- id: the clip id; task ``humor``, a yes/no question about the clip; media: the clip as ``video`` and
  as ``audio`` (its soundtrack), no text (Table 1: video + audio);
- the answer is always ``yes``. SMILE has no negatives: every clip was cut to end in audience
  laughter, and its annotation is the reason for that laughter. Calling earlier utterances or other
  clips "not humorous" would invent labels the dataset does not give, so none are made up here: a
  balanced humor set needs ``no`` samples from another source. The explanation is kept in
  ``meta["laughter_reason"]`` (a ground-truth rationale for EmoPrompt) and the clip's origin in
  ``meta["video_type"]`` (``sitcom`` or ``ted``, from the underscore rule of SMILE's README).

Bad samples, reported as :class:`BadItem`: in ``data_split.json`` (with the 1-based position in the
split's id list) an id that is not a string or integer, a repeated id, an id without an entry in
``GT_laughter_reason.json``, a missing clip; in ``GT_laughter_reason.json`` (with the 1-based entry
number) a reason that is not a non-empty string. A missing annotation file, a file that is not a JSON
object, or a split that is not a list of ids raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emollm.data.records import YES_NO
from emollm.data.sources.base import BadItem, SourceItem, read_json, unsafe_media_path

NAME = "smile"
TASKS = ("humor",)
SPLITS = ("train", "val", "test")
LABELS = {"humor": list(YES_NO)}

_SPLIT_KEYS = {"train": ("train",), "val": ("val", "valid", "validation", "dev"), "test": ("test",)}


def convert(root: str | Path, split: str) -> Iterator[SourceItem | BadItem]:
    """Yields one ``humor`` item per clip id of ``split`` in ``data_split.json``, or a :class:`BadItem`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} for {NAME}, got {split!r}")
    root = Path(root)
    split_path = root / "annotations" / "data_split.json"
    reason_path = root / "annotations" / "GT_laughter_reason.json"
    ids = _split_ids(_read_object(split_path), split, split_path)
    reasons = _read_object(reason_path)
    entry_number = {key: n for n, key in enumerate(reasons, 1)}
    seen: set[str] = set()
    for position, raw_id in enumerate(ids, 1):
        yield _clip_item(raw_id, root, reasons, seen, split_at=(str(split_path), position),
                         reason_path=str(reason_path), reason_entry=entry_number)


def _clip_item(raw_id: Any, root: Path, reasons: dict[str, Any], seen: set[str], *, split_at: tuple[str, int],
               reason_path: str, reason_entry: dict[str, int]) -> SourceItem | BadItem:
    """One item; faults are reported at the id's place in the split (``split_at``), a bad reason at its entry."""
    if type(raw_id) not in (str, int) or not str(raw_id).strip():
        return BadItem(*split_at, f"malformed clip id {raw_id!r}: expected a string or an integer")
    clip_id = str(raw_id).strip()
    if clip_id in seen:
        return BadItem(*split_at, f"duplicate clip id {clip_id}")
    seen.add(clip_id)
    if clip_id not in reasons:
        return BadItem(*split_at, f"clip {clip_id} has no entry in {Path(reason_path).name}")
    reason = reasons[clip_id]
    if not isinstance(reason, str) or not reason.strip():
        return BadItem(reason_path, reason_entry[clip_id], f"malformed laughter reason for {clip_id}: {reason!r}")
    video = f"videos/video_clips/{clip_id}.mp4"
    if (unsafe := unsafe_media_path(clip_id)) is not None:
        return BadItem(*split_at, unsafe)
    if not (root / video).is_file():
        return BadItem(*split_at, f"missing video {video}")
    return SourceItem(id=clip_id, task="humor", label="yes",
                      media=[{"type": "video", "path": video}, {"type": "audio", "path": video}],
                      meta={"laughter_reason": reason.strip(), "video_type": "sitcom" if "_" in clip_id else "ted"})


def _read_object(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{NAME}: no annotation file {path} (expected SMILE v.2's annotations/ under root)")
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object keyed by clip id or split, got {type(data).__name__}")
    return data


def _split_ids(splits: dict[str, Any], split: str, path: Path) -> list[Any]:
    keys = [k for k in _SPLIT_KEYS[split] if k in splits]
    if len(keys) != 1:
        found = "none" if not keys else f"several: {keys}"
        raise ValueError(f"{path}: split {split!r} needs exactly one of the keys {_SPLIT_KEYS[split]}, found {found}")
    ids = splits[keys[0]]
    if not isinstance(ids, list):
        raise ValueError(f"{path}: split {keys[0]!r} must be a list of clip ids, got {type(ids).__name__}")
    return ids

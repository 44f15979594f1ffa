"""MMSD2.0 (Qin et al., ACL 2023): multimodal sarcasm detection on tweets (text + image).

Layout read (the ``data/`` folder of github.com/JoeYing1019/MMSD2.0 is ``root``)::

    root/text_json_final/train.json  valid.json  test.json
    root/dataset_image/<image_id>.jpg

Each ``.json`` is one JSON array of objects ``{"image_id": 915657464401580032, "text": "whew ... that
extra <num> miles ...", "label": 1}``; ``image_id`` is the tweet id (a JSON integer, read exactly),
``text`` the tweet with MMSD2.0's own placeholders (``<user>``, ``<num>``) kept as published,
``label`` 1 = sarcastic, 0 = not. ``text_json_final`` is MMSD2.0; the original MMSD labels
(``text_json_clean``) are not read.

Mapping:

- split ``train`` / ``valid`` / ``test`` reads ``train.json`` / ``valid.json`` / ``test.json``;
- id: the ``image_id`` as a decimal string; task ``sarcasm``; label 1 -> ``yes``, 0 -> ``no``;
- media: the image; text: the tweet. Paper Table 1 lists text, video and audio for "MMSD", which is
  the video corpus MUStARD's repository name; MMSD2.0 (the paper's reference [49]) has text and one
  image per sample, and that is what is kept.

Bad samples, reported as :class:`BadItem` with the ``.json`` and the 1-based entry number in its array:
an entry that is not an object or lacks a key, a non-integer ``image_id``, a non-string ``text``, a label
other than 0/1, a repeated ``image_id``, a missing image. A missing file, or one that is not a JSON
array, raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emollm.data.records import YES_NO
from emollm.data.sources.base import BadItem, SourceItem, read_json

NAME = "mmsd2"
TASKS = ("sarcasm",)
SPLITS = ("train", "valid", "test")  # MMSD2.0's own names
LABELS = {"sarcasm": list(YES_NO)}

_ANSWERS = {1: "yes", 0: "no"}


def convert(root: str | Path, split: str) -> Iterator[SourceItem | BadItem]:
    """Yields one ``sarcasm`` item per entry of ``split``'s JSON array under ``root``, or a :class:`BadItem`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} for {NAME}, got {split!r}")
    root = Path(root)
    path = root / "text_json_final" / f"{split}.json"
    entries = _read_array(path)
    seen: set[str] = set()
    for number, entry in enumerate(entries, 1):
        yield _entry_item(entry, root, path, number, seen)


def _read_array(path: Path) -> list[Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{NAME}: no annotation file {path} (expected MMSD2.0's text_json_final under root)")
    entries = read_json(path)
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a JSON array of samples, got {type(entries).__name__}")
    return entries


def _entry_item(entry: Any, root: Path, path: Path, number: int, seen: set[str]) -> SourceItem | BadItem:
    def bad(reason: str) -> BadItem:
        return BadItem(str(path), number, reason)

    if not isinstance(entry, dict) or not {"image_id", "text", "label"} <= entry.keys():
        return bad(f"malformed entry {_short(entry)}: expected an object with image_id, text and label")
    image_id, text, label = entry["image_id"], entry["text"], entry["label"]
    if isinstance(image_id, str) and image_id.isdigit():
        image_id = int(image_id)
    if type(image_id) is not int:
        return bad(f"malformed entry: image_id {image_id!r} is not an integer tweet id")
    if not isinstance(text, str):
        return bad(f"malformed entry {image_id}: text {text!r} is not a string")
    if type(label) is not int or label not in _ANSWERS:  # type(): True/1.0 are not labels
        return bad(f"unknown label {label!r} for {image_id}; expected 1 (sarcastic) or 0")
    sample_id = str(image_id)
    if sample_id in seen:
        return bad(f"duplicate image_id {sample_id}")
    seen.add(sample_id)
    image = f"dataset_image/{sample_id}.jpg"
    if not (root / image).is_file():
        return bad(f"missing image {image}")
    return SourceItem(id=sample_id, task="sarcasm", label=_ANSWERS[label], media=[{"type": "image", "path": image}],
                      text=text.strip() or None)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

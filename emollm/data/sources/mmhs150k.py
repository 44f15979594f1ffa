"""MMHS150K (Gomez et al., WACV 2020): multimodal hate speech on tweets (text + image).

Layout read (the unpacked ``MMHS150K`` release is ``root``)::

    root/MMHS150K_GT.json
    root/splits/train_ids.txt  val_ids.txt  test_ids.txt
    root/img_resized/<tweet id>.jpg
    root/img_txt/<tweet id>.json          (only for images in which OCR found text)

``MMHS150K_GT.json`` is one JSON object keyed by tweet id: ``{"1114679353714016256": {"img_url": ...,
"labels": [4, 1, 3], "tweet_url": ..., "tweet_text": "...", "labels_str": ["Religion", "Racist",
"Homophobe"]}, ...}``, one label per annotator (three), 0 = NotHate, 1 = Racist, 2 = Sexist,
3 = Homophobe, 4 = Religion, 5 = OtherHate. A split file lists one tweet id per line.
``img_txt/<id>.json`` is ``{"img_text": "..."}``.

Mapping:

- split ``train`` / ``val`` / ``test`` reads ``splits/{train,val,test}_ids.txt``;
- id: the tweet id; task ``hate``, a yes/no question. The answer is the majority of the three
  annotators on hate vs. not hate: ``yes`` when at least two labels are non-zero, whatever the
  categories (``[1, 2, 0]`` is ``yes``: two annotators saw hate, of different kinds), else ``no``.
  The three votes are kept in ``meta["annotator_labels"]`` (lower-case category names);
- media: the image; text: the tweet text as published (URLs and mentions kept); the OCR text of the
  image, where there is one, goes to ``meta["image_text"]``. Matches Table 1 (text + image).

Bad samples, reported as :class:`BadItem`: in the split file (with its 1-based line) an id that is not a
number, one listed twice, one missing from ``MMHS150K_GT.json``, a missing image; in
``MMHS150K_GT.json`` (with the 1-based entry number in the object) an entry that is not an object, has
no string ``tweet_text``, or whose ``labels`` are not three integers in 0..5; a present but unreadable
``img_txt`` file (with no line). A missing annotation or split file, or a ground-truth file that is not
a JSON object, raises.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emollm.data.records import YES_NO
from emollm.data.sources.base import BadItem, SourceItem, read_json, read_text

NAME = "mmhs150k"
TASKS = ("hate",)
SPLITS = ("train", "val", "test")  # MMHS150K's own names
LABELS = {"hate": list(YES_NO)}
CATEGORIES = ("nothate", "racist", "sexist", "homophobe", "religion", "otherhate")  # index = MMHS150K label id

_GT = "MMHS150K_GT.json"
_ANNOTATORS = 3


def convert(root: str | Path, split: str) -> Iterator[SourceItem | BadItem]:
    """Yields one ``hate`` item per tweet id in ``split``'s id list under ``root``, or a :class:`BadItem`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} for {NAME}, got {split!r}")
    root = Path(root)
    gt_path, split_path = root / _GT, root / "splits" / f"{split}_ids.txt"
    for path in (gt_path, split_path):
        if not path.is_file():
            raise FileNotFoundError(f"{NAME}: no annotation file {path} (expected the MMHS150K release under root)")
    gt = _read_object(gt_path)
    entry_number = {key: n for n, key in enumerate(gt, 1)}
    seen: set[str] = set()
    with io.StringIO(read_text(split_path)) as f:
        for lineno, line in enumerate(f, 1):
            tweet_id = line.strip()
            if not tweet_id:
                continue
            if not tweet_id.isdigit():
                yield BadItem(str(split_path), lineno, f"malformed line: {tweet_id!r} is not a tweet id")
            elif tweet_id in seen:
                yield BadItem(str(split_path), lineno, f"duplicate tweet id {tweet_id}")
            elif tweet_id not in gt:
                yield BadItem(str(split_path), lineno, f"tweet id {tweet_id} has no entry in {_GT}")
            else:
                seen.add(tweet_id)
                yield _tweet_item(tweet_id, gt[tweet_id], root, gt_at=(str(gt_path), entry_number[tweet_id]),
                                  split_at=(str(split_path), lineno))


def _read_object(path: Path) -> dict[str, Any]:
    gt = read_json(path)
    if not isinstance(gt, dict):
        raise ValueError(f"{path}: expected a JSON object keyed by tweet id, got {type(gt).__name__}")
    return gt


def _tweet_item(tweet_id: str, entry: Any, root: Path, *, gt_at: tuple[str, int],
                split_at: tuple[str, int]) -> SourceItem | BadItem:
    """One item; a fault in the ground-truth entry is reported at ``gt_at``, a missing image at ``split_at``."""
    if not isinstance(entry, dict):
        return BadItem(*gt_at, f"malformed entry {tweet_id}: expected an object, got {type(entry).__name__}")
    text, votes = entry.get("tweet_text"), entry.get("labels")
    if not isinstance(text, str):
        return BadItem(*gt_at, f"malformed entry {tweet_id}: tweet_text {text!r} is not a string")
    if (not isinstance(votes, list) or len(votes) != _ANNOTATORS
            or any(type(v) is not int or not 0 <= v < len(CATEGORIES) for v in votes)):
        return BadItem(*gt_at, f"unknown labels {votes!r} for {tweet_id}: expected {_ANNOTATORS} integers in 0..5")
    image = f"img_resized/{tweet_id}.jpg"
    if not (root / image).is_file():
        return BadItem(*split_at, f"missing image {image}")
    meta: dict[str, Any] = {"annotator_labels": [CATEGORIES[v] for v in votes]}
    ocr = root / "img_txt" / f"{tweet_id}.json"
    if ocr.is_file():
        image_text = _read_ocr(ocr)
        if isinstance(image_text, BadItem):
            return image_text
        meta["image_text"] = image_text
    answer = "yes" if sum(v != 0 for v in votes) * 2 > _ANNOTATORS else "no"
    return SourceItem(id=tweet_id, task="hate", label=answer, media=[{"type": "image", "path": image}],
                      text=text.strip() or None, meta=meta)


def _read_ocr(path: Path) -> str | BadItem:
    try:
        data = read_json(path)
    except ValueError as e:
        return BadItem(str(path), None, f"malformed OCR file: {str(e).removeprefix(f'{path}: ')}")
    if not isinstance(data, dict) or not isinstance(data.get("img_text"), str):
        return BadItem(str(path), None, "malformed OCR file: expected an object with a string 'img_text'")
    return data["img_text"]

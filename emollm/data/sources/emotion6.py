"""Emotion6 (Peng et al., CVPR 2015): 1980 Flickr images with an evoked-emotion distribution.

Layout read (``--root`` is the unpacked ``Emotion6`` folder)::

    ROOT/ground_truth.txt            tab-separated, a header line, then one line per image
    ROOT/images/<keyword>/<n>.jpg    <keyword>: the search keyword (anger, disgust, fear, joy, sadness, surprise)

``ground_truth.txt`` columns (the dataset's readme)::

    [image_filename] [valence] [arousal] [prob. anger] [prob. disgust] [prob. fear] [prob. joy]
    [prob. sadness] [prob. surprise] [prob. neutral]
    disgust/1.jpg  2.5  3.8  0.133333  0.7  0  0.0666667  0.1  0  0

``image_filename`` is relative to ``images/``; valence and arousal are on 1-9.

Choices:

- Label: the emotion of highest probability over the seven columns (neutral included); labels
  tied at the maximum other than the first (in column order) go to ``accept``. The
  distribution goes to ``meta["distribution"]``, valence and arousal to ``meta``.
- Splits: Emotion6 has no official split. ``train`` and ``test`` are a fixed 2:1 split by a
  hash of the image filename (the paper samples 1.3k train and 0.6k test), the same on every
  machine; ``all`` is every image. A malformed line, or one whose file name leads out of the
  dataset folder, is reported in every split, since its split cannot be trusted.
- Every image gives one item per task, ``emo-c`` and ``emo-o``; id ``<keyword>-<n>``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from emollm.data.sources.base import BadItem, SourceItem, read_text, unsafe_media_path

NAME = "emotion6"
TASKS = ("emo-c", "emo-o")
SPLITS = ("train", "test", "all")
EMOTIONS = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")  # column order of the file
LABELS = {task: list(EMOTIONS) for task in TASKS}
ANNOTATIONS = "ground_truth.txt"
IMAGE_DIR = "images"
NUM_COLUMNS = 3 + len(EMOTIONS)


def split_of(filename: str) -> str:
    """``"test"`` for a third of the images, ``"train"`` for the rest, by a stable hash of the name."""
    digest = hashlib.sha256(filename.encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") % 3 == 0 else "train"


def _parse_line(fields: list[str]) -> tuple[float, float, list[float]]:
    """(valence, arousal, probabilities) of one line; ValueError when malformed."""
    if len(fields) != NUM_COLUMNS:
        raise ValueError(f"malformed line: {len(fields)} tab-separated fields, expected {NUM_COLUMNS}")
    try:
        numbers = [float(x) for x in fields[1:]]
    except ValueError:
        raise ValueError(f"malformed line: non-numeric value among {fields[1:]}") from None
    if not all(math.isfinite(x) for x in numbers):
        raise ValueError(f"malformed line: non-finite value among {fields[1:]}")
    probs = numbers[2:]
    if any(p < 0 for p in probs) or max(probs) <= 0:
        raise ValueError(f"malformed line: the probabilities {probs} must be non-negative, not all zero")
    return numbers[0], numbers[1], probs


def convert(root: Path, split: str) -> Iterator[SourceItem | BadItem]:
    """Items of ``ROOT/ground_truth.txt`` in ``split``, one per image and task."""
    root = Path(root)
    path = root / ANNOTATIONS
    if not path.is_file():
        raise FileNotFoundError(f"Emotion6 annotations not found: {path}")
    lines = read_text(path).splitlines()
    for lineno, line in enumerate(lines[1:], 2):  # line 1 is the header
        if not line.strip():
            continue
        fields = [x.strip() for x in line.rstrip("\t").split("\t")]
        try:
            valence, arousal, probs = _parse_line(fields)
        except ValueError as e:  # reported in every split: a malformed line's split cannot be trusted
            yield BadItem(str(path), lineno, str(e))
            continue
        filename = fields[0]
        if (unsafe := unsafe_media_path(filename)) is not None:  # in every split too: never a usable line
            yield BadItem(str(path), lineno, unsafe)
            continue
        if split != "all" and split_of(filename) != split:
            continue
        image = f"{IMAGE_DIR}/{filename}"
        if not (root / image).is_file():
            yield BadItem(str(path), lineno, f"missing image {image}")
            continue
        top = max(probs)
        tied = [e for e, p in zip(EMOTIONS, probs, strict=True) if p == top]
        name = PurePosixPath(filename)
        meta = {"valence": valence, "arousal": arousal,
                "distribution": dict(zip(EMOTIONS, probs, strict=True))}
        for task in TASKS:
            yield SourceItem(id=f"{name.parent.name}-{name.stem}" if name.parent.name else name.stem, task=task,
                             label=tied[0], accept=tied[1:], media=[{"type": "image", "path": image}], meta=dict(meta))

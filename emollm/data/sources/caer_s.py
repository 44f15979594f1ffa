"""CAER-S (Lee et al., ICCV 2019): frames of TV shows, 7 emotion classes, no annotation file.

Layout read (``--root`` is the unpacked CAER-S folder)::

    ROOT/train/<Emotion>/<id>.png
    ROOT/test/<Emotion>/<id>.png

The label is the class folder's name: Anger, Disgust, Fear, Happy, Neutral, Sad, Surprise
(matched case-insensitively; "Angry", the spelling in some copies, is read as anger). Labels
are the CAER paper's names, lower-cased.

Choices:

- Images are the files with an image extension (.png, .jpg, .jpeg, .bmp); hidden files (names
  starting with ".", e.g. ``.DS_Store``) are skipped. Any other file in a class folder, any file
  directly under the split folder, and every file under an unknown class folder is reported as
  a bad item, so nothing is dropped silently.
- Every image gives one item per task, ``emo-c`` and ``emo-o``; id ``<label>-<file stem>``.
  Items come sorted by class, then file name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from emollm.data.sources.base import BadItem, SourceItem

NAME = "caer-s"
TASKS = ("emo-c", "emo-o")
SPLITS = ("train", "test")
EMOTIONS = ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")
LABELS = {task: list(EMOTIONS) for task in TASKS}
FOLDER_LABELS = {**{e: e for e in EMOTIONS}, "angry": "anger"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def convert(root: Path, split: str) -> Iterator[SourceItem | BadItem]:
    """Items of ``ROOT/<split>/<Emotion>/*``, one per image and task."""
    root = Path(root)
    split_dir = root / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"CAER-S split folder not found: {split_dir} (expected {split}/<Emotion>/<id>.png)")
    for entry in sorted(split_dir.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            yield BadItem(str(entry), None, f"file outside a class folder; expected {split}/<Emotion>/<id>.png")
            continue
        label = FOLDER_LABELS.get(entry.name.lower())
        for image in sorted(p for p in entry.iterdir() if not p.name.startswith(".")):
            if label is None:
                yield BadItem(str(image), None, f"unknown label folder {entry.name!r}; expected one of {EMOTIONS}")
            elif not image.is_file() or image.suffix.lower() not in IMAGE_SUFFIXES:
                yield BadItem(str(image), None, f"not an image file (expected {', '.join(IMAGE_SUFFIXES)})")
            else:
                path = image.relative_to(root).as_posix()
                for task in TASKS:
                    yield SourceItem(id=f"{label}-{image.stem}", task=task, label=label,
                                     media=[{"type": "image", "path": path}])

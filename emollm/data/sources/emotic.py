"""EMOTIC (Kosti et al., 2017/2019): people in context, 26 discrete emotion categories plus VAD.

Layout read (``--root`` is the EMOTIC data folder)::

    ROOT/emotic/<Folder>/<Filename>          the images: Folder is e.g. "mscoco/images", "framesdb/images",
                                             "emodb_small/images", "ade20k/images"
    ROOT/emotic_pre/{train,val,test}.csv     the annotations, one row per annotated person

The CSVs are the per-person tables that the widely used EMOTIC baseline (Tandon-A/emotic,
``mat2py.py``) writes from the official ``Annotations/Annotations.mat`` (its default output folder
is ``emotic_pre``). Columns::

    Index, Folder, Filename, Image Size, BBox, Categorical_Labels, Continuous_Labels, Gender, Age
    0, mscoco/images, COCO_val2014_000000562243.jpg, "[640, 640]", "[86, 58, 564, 628]",
       "['Disconnection', 'Doubt/Confusion']", "[5, 3, 9]", Male, Adult

``BBox`` is the person's body box ``[x1, y1, x2, y2]`` in pixels, ``Categorical_Labels`` the
person's categories (for val/test: the annotators' combined list), ``Continuous_Labels``
valence, arousal, dominance on 1-10. List cells are Python literals.

Choices:

- Multi-label: the answer is the first category as listed in the row; the other listed
  categories go to ``accept`` (also counted correct). Categories are lower-cased as written
  ("doubt/confusion", "disquietment").
- The image is the whole scene; the person's box goes to ``meta["bbox"]`` and the builder
  names it in the question. VAD goes to ``meta["vad"]``, gender and age to ``meta``.
- Every person gives one item per task, ``emo-c`` and ``emo-o``; id ``<image stem>-<Index>``.
"""

from __future__ import annotations

import ast
import io
from collections.abc import Iterator
from pathlib import Path

from emollm.data.sources.base import BadItem, SourceItem, csv_rows, read_text, unsafe_media_path

NAME = "emotic"
TASKS = ("emo-c", "emo-o")
SPLITS = ("train", "val", "test")
CATEGORIES = (
    "affection", "anger", "annoyance", "anticipation", "aversion", "confidence", "disapproval", "disconnection",
    "disquietment", "doubt/confusion", "embarrassment", "engagement", "esteem", "excitement", "fatigue", "fear",
    "happiness", "pain", "peace", "pleasure", "sadness", "sensitivity", "suffering", "surprise", "sympathy",
    "yearning",
)
LABELS = {task: list(CATEGORIES) for task in TASKS}
COLUMNS = ("Index", "Folder", "Filename", "BBox", "Categorical_Labels", "Continuous_Labels")
IMAGE_DIR = "emotic"
ANNOTATION_DIR = "emotic_pre"


def _literal_list(cell: str, column: str, length: int | None = None) -> list:
    """A list cell such as ``"[86, 58, 564, 628]"``; ValueError naming the column otherwise."""
    try:
        value = ast.literal_eval(cell)
    except (ValueError, SyntaxError):
        raise ValueError(f"malformed {column} {cell!r}: expected a list literal") from None
    if not isinstance(value, (list, tuple)) or (length is not None and len(value) != length):
        want = "a list" if length is None else f"a list of {length} values"
        raise ValueError(f"malformed {column} {cell!r}: expected {want}")
    return list(value)


def _parse_row(row: dict[str, str]) -> tuple[list[str], list[float], list[float]]:
    """(categories in order, bbox, vad) of one CSV row; ValueError on anything malformed."""
    names = _literal_list(row["Categorical_Labels"], "Categorical_Labels")
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"Categorical_Labels {row['Categorical_Labels']!r} must be a non-empty list of names")
    categories = list(dict.fromkeys(n.strip().lower() for n in names))
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown:
        raise ValueError(f"unknown label(s) {unknown}; EMOTIC's 26 categories are {list(CATEGORIES)}")
    bbox = _literal_list(row["BBox"], "BBox", 4)
    vad = _literal_list(row["Continuous_Labels"], "Continuous_Labels", 3)
    if not all(isinstance(v, (int, float)) for v in bbox + vad):
        raise ValueError(f"BBox {row['BBox']!r} and Continuous_Labels {row['Continuous_Labels']!r} must be numbers")
    return categories, bbox, vad


def convert(root: Path, split: str) -> Iterator[SourceItem | BadItem]:
    """Items of ``ROOT/emotic_pre/<split>.csv``, one per person and task."""
    root = Path(root)
    path = root / ANNOTATION_DIR / f"{split}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"EMOTIC annotations not found: {path} (expected {ANNOTATION_DIR}/{split}.csv)")
    for row in csv_rows(path, io.StringIO(read_text(path), newline=""), COLUMNS):
        if isinstance(row, BadItem):
            yield row
            continue
        start, row = row
        try:
            categories, bbox, vad = _parse_row(row)
        except ValueError as e:
            yield BadItem(str(path), start, str(e))
            continue
        image = f"{IMAGE_DIR}/{row['Folder'].strip()}/{row['Filename'].strip()}"
        if (unsafe := unsafe_media_path(f"{row['Folder'].strip()}/{row['Filename'].strip()}")) is not None:
            yield BadItem(str(path), start, unsafe)
            continue
        if not (root / image).is_file():
            yield BadItem(str(path), start, f"missing image {image}")
            continue
        meta = {"bbox": bbox, "vad": vad}
        meta.update({k.lower(): row[k].strip() for k in ("Gender", "Age") if row.get(k)})
        item_id = f"{Path(row['Filename'].strip()).stem}-{row['Index'].strip()}"
        for task in TASKS:
            yield SourceItem(id=item_id, task=task, label=categories[0], media=[{"type": "image", "path": image}],
                             accept=categories[1:], meta=dict(meta))

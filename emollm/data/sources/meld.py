"""MELD (Poria et al., ACL 2019): utterances of the TV show Friends, 7 emotions, video + audio + text.

Layout read (``--root`` is the unpacked ``MELD.Raw`` folder, with its split archives unpacked)::

    ROOT/train_sent_emo.csv  ROOT/train_splits/dia{Dialogue_ID}_utt{Utterance_ID}.mp4
    ROOT/dev_sent_emo.csv    ROOT/dev_splits_complete/dia{D}_utt{U}.mp4
    ROOT/test_sent_emo.csv   ROOT/output_repeated_splits_test/dia{D}_utt{U}.mp4

CSV columns: ``Sr No., Utterance, Speaker, Emotion, Sentiment, Dialogue_ID, Utterance_ID, Season,
Episode, StartTime, EndTime``; Emotion is one of anger, disgust, fear, joy, neutral, sadness,
surprise.

Choices:

- Media: the clip as ``video`` and the same mp4 as ``audio`` (the loader takes its audio track),
  in that order; the utterance is the record's text, the speaker goes to ``meta["speaker"]``
  (the builder writes "<Speaker> says: ..."), with sentiment, season, episode and times.
- Text: the original CSVs hold eight Windows-1252 punctuation codes as C1 control characters
  (fixed upstream in declare-lab/MELD PR #28, "’" was "\\x92"); they are mapped to the intended
  characters, so both versions of the files give the same text. A file that is not UTF-8 is read
  as Windows-1252.
- Every utterance gives one item per task, ``emo-c`` and ``emo-o``; id ``dia{D}_utt{U}``.
  Clips known to be absent from the release (e.g. train ``dia125_utt3``) are reported as missing.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

from emollm.data.sources.base import BadItem, SourceItem, csv_rows

NAME = "meld"
TASKS = ("emo-c", "emo-o")
SPLITS = ("train", "dev", "test")
EMOTIONS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
LABELS = {task: list(EMOTIONS) for task in TASKS}
CLIP_DIRS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
COLUMNS = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID")
_C1_PUNCTUATION = str.maketrans({"\x85": "…", "\x91": "‘", "\x92": "’", "\x93": "“", "\x94": "”", "\x96": "–",
                                 "\x97": "—", "\xa0": " "})


def read_text(path: Path) -> str:
    """The CSV's text with the Windows-1252 punctuation codes mapped (see the module docstring)."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252", errors="strict")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            byte = data[e.start]
            raise ValueError(f"{path}:{line}: neither UTF-8 nor Windows-1252 text (byte 0x{byte:02x})") from None
    return text.translate(_C1_PUNCTUATION)


def _int(row: dict[str, str], column: str) -> int:
    value = (row[column] or "").strip()
    if not value.isdigit():
        raise ValueError(f"malformed {column} {row[column]!r}: expected a non-negative integer")
    return int(value)


def convert(root: Path, split: str) -> Iterator[SourceItem | BadItem]:
    """Items of ``ROOT/<split>_sent_emo.csv``, one per utterance and task."""
    root = Path(root)
    path = root / f"{split}_sent_emo.csv"
    if not path.is_file():
        raise FileNotFoundError(f"MELD annotations not found: {path}")
    for row in csv_rows(path, io.StringIO(read_text(path), newline=""), COLUMNS):
        if isinstance(row, BadItem):
            yield row
            continue
        start, row = row
        emotion = row["Emotion"].strip().lower()
        if emotion not in EMOTIONS:
            yield BadItem(str(path), start, f"unknown label {row['Emotion']!r}; expected one of {EMOTIONS}")
            continue
        try:
            dialogue, utterance = _int(row, "Dialogue_ID"), _int(row, "Utterance_ID")
        except ValueError as e:
            yield BadItem(str(path), start, str(e))
            continue
        item_id = f"dia{dialogue}_utt{utterance}"
        clip = f"{CLIP_DIRS[split]}/{item_id}.mp4"
        if not (root / clip).is_file():
            yield BadItem(str(path), start, f"missing video {clip}")
            continue
        meta = {"speaker": row["Speaker"].strip(), "sentiment": row["Sentiment"].strip().lower()}
        meta.update({k.lower(): row[k].strip() for k in ("Season", "Episode", "StartTime", "EndTime") if row.get(k)})
        text = row["Utterance"].strip() or None
        for task in TASKS:
            yield SourceItem(id=item_id, task=task, label=emotion, text=text, meta=dict(meta),
                             media=[{"type": "video", "path": clip}, {"type": "audio", "path": clip}])

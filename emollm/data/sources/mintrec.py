"""MIntRec (Zhang et al., ACM MM 2022): multimodal intent recognition on clips of the TV series Superstore.

Layout read (the release of github.com/thuiar/MIntRec, unpacked under ``root``)::

    root/train.tsv  root/dev.tsv  root/test.tsv
    root/raw_data/<season>/<episode>/<clip>.mp4       e.g. raw_data/S04/E16/164.mp4

Each ``.tsv`` is tab-separated, unquoted, with a header row whose first five columns are
``season  episode  clip  text  label`` (``S04  E16  164  hey, so i couldn't find ...  Ask for help``);
further columns, as in some re-releases, are ignored. One row is one utterance.

Mapping:

- split ``train`` / ``dev`` / ``test`` reads ``train.tsv`` / ``dev.tsv`` / ``test.tsv``;
- id ``<season>_<episode>_<clip>`` (``S04_E16_164``), MIntRec's own sample index;
- task ``intent``; label = the MIntRec intent name lower-cased (``"Ask for help"`` -> ``"ask for help"``);
  the label set is MIntRec's 20 fine-grained intents, spelled as in its label list (``apologise``;
  ``apologize``, the README's spelling, is accepted as the same label);
- media: the clip as ``video`` and as ``audio`` (the soundtrack of the same ``.mp4``); text: the utterance.
  Paper Table 1 marks MIntRec as image-only; the released data are video clips with sound and a
  transcript, so all three are kept.

Bad samples, reported as :class:`BadItem` with the ``.tsv`` and its 1-based line: a row with fewer than
five fields or an empty index field, an unknown intent, a repeated index, a missing clip file.
A missing ``.tsv`` or a header that is not MIntRec's raises.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

from emollm.data.sources.base import BadItem, SourceItem, read_text, unsafe_media_path

NAME = "mintrec"
TASKS = ("intent",)
SPLITS = ("train", "dev", "test")  # MIntRec's own names
INTENTS = (
    "complain", "praise", "apologise", "thank", "criticize", "agree", "taunt", "flaunt", "joke", "oppose",
    "comfort", "care", "inform", "advise", "arrange", "introduce", "leave", "prevent", "greet", "ask for help",
)
LABELS = {"intent": list(INTENTS)}

_HEADER = ("season", "episode", "clip", "text", "label")
_ALIASES = {"apologize": "apologise"}  # the README spells it with a z, the annotation files with an s


def convert(root: str | Path, split: str) -> Iterator[SourceItem | BadItem]:
    """Yields one ``intent`` item per row of ``split``'s ``.tsv`` under ``root``, or a :class:`BadItem`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} for {NAME}, got {split!r}")
    root = Path(root)
    path = root / f"{split}.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"{NAME}: no annotation file {path} (expected MIntRec's {split}.tsv under root)")
    seen: set[str] = set()
    with io.StringIO(read_text(path), newline="") as f:
        _check_header(f.readline().rstrip("\r\n").split("\t"), path)
        for lineno, line in enumerate(f, 2):
            if line.strip():
                yield _row_item(line.rstrip("\r\n").split("\t"), root, path, lineno, seen)


def _check_header(fields: list[str], path: Path) -> None:
    got = tuple(f.strip().lower() for f in fields[: len(_HEADER)])
    if got != _HEADER:
        raise ValueError(f"{path}: header {fields!r} is not MIntRec's; expected the columns {_HEADER} first")


def _row_item(fields: list[str], root: Path, path: Path, lineno: int, seen: set[str]) -> SourceItem | BadItem:
    if len(fields) < len(_HEADER):
        return BadItem(str(path), lineno, f"malformed row: {len(fields)} tab-separated field(s), expected 5")
    season, episode, clip, text, label = (f.strip() for f in fields[: len(_HEADER)])
    if not (season and episode and clip):
        return BadItem(str(path), lineno, f"malformed row: empty season/episode/clip in {fields[:3]!r}")
    intent = _ALIASES.get(label.lower(), label.lower())
    if intent not in INTENTS:
        return BadItem(str(path), lineno, f"unknown label {label!r}; expected one of MIntRec's 20 intents")
    sample_id = f"{season}_{episode}_{clip}"
    if sample_id in seen:
        return BadItem(str(path), lineno, f"duplicate sample {sample_id}")
    seen.add(sample_id)
    video = f"raw_data/{season}/{episode}/{clip}.mp4"
    if (unsafe := unsafe_media_path(f"{season}/{episode}/{clip}")) is not None:
        return BadItem(str(path), lineno, unsafe)
    if not (root / video).is_file():
        return BadItem(str(path), lineno, f"missing video {video}")
    media = [{"type": "video", "path": video}, {"type": "audio", "path": video}]
    return SourceItem(id=sample_id, task="intent", label=intent, media=media, text=text or None)

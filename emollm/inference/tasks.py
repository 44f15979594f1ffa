"""The EmoBench tasks a single question can be scored as, with a default label set for each."""

from __future__ import annotations

from collections.abc import Sequence

from emollm.data.records import TASKS, YES_NO
from emollm.data.sources.meld import EMOTIONS
from emollm.data.sources.mintrec import INTENTS
from emollm.evaluation.parse import parse_answer

__all__ = ["TASKS", "default_labels", "parse_label"]


def default_labels(task: str) -> list[str]:
    """The label set an answer is parsed against when none is given: yes/no for ``humor``,
    ``hate``, ``sarcasm``; MIntRec's 20 intents for ``intent``; MELD's seven emotions (Ekman's six
    and neutral) for ``emo-c`` and ``emo-o``."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if task in ("humor", "hate", "sarcasm"):
        return list(YES_NO)
    return list(INTENTS) if task == "intent" else list(EMOTIONS)


def parse_label(answer: str, task: str, labels: Sequence[str] | None = None) -> str | None:
    """The label ``answer`` names (the rules of ``emollm eval``: :func:`emollm.evaluation.parse_answer`)."""
    return parse_answer(answer, task, list(labels) if labels is not None else default_labels(task))

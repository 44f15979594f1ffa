"""Accuracy of parsed answers: per task, per source, per (task, source), overall micro and macro.

A *prediction* is a dict, one line of ``predictions.jsonl``::

    {"id": "meld/test/dia3_utt1", "task": "emo-c", "source": "meld",
     "label_set": ["anger", ..., "surprise"], "answer": "surprise", "accept": [],
     "output": "The speaker sounds surprised.", "parsed": "surprise", "correct": true}

It is correct iff ``parsed`` is the ``answer`` or one of ``accept`` (multi-label sources); an
unparseable answer (``parsed`` is ``None``) is wrong and listed. *Micro* accuracy is over all
predictions (larger tasks weigh more, as the paper's "Overall" in Table 2); *macro* is the mean of
the per-task accuracies. *Chance* is the mean of ``1/|label_set|`` over a group's predictions: the
accuracy of a uniform random guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from emollm.data.records import TASKS, EmoRecord
from emollm.evaluation.parse import parse_answer

__all__ = ["compute_metrics", "is_correct", "make_prediction", "rescore"]

REQUIRED = ("id", "task", "source", "label_set", "answer", "output")


def is_correct(parsed: str | None, answer: str, accept: Sequence[str] = ()) -> bool:
    """Whether a parsed label counts: it is the answer or an accepted label; ``None`` never does."""
    return parsed is not None and (parsed == answer or parsed in accept)


def make_prediction(record: EmoRecord, output: str) -> dict[str, Any]:
    """The prediction for ``record`` given the model's decoded ``output`` (parsed and scored)."""
    parsed = parse_answer(output, record.task, record.label_set)
    return {"id": record.id, "task": record.task, "source": record.source, "label_set": list(record.label_set),
            "answer": record.answer, "accept": list(record.accept), "output": output, "parsed": parsed,
            "correct": is_correct(parsed, record.answer, record.accept)}


def _checked(pred: Any, index: int) -> Mapping[str, Any]:
    if not isinstance(pred, Mapping):
        raise TypeError(f"prediction {index} must be a mapping, got {type(pred).__name__}")
    missing = [key for key in REQUIRED if key not in pred]
    if missing:
        raise ValueError(f"prediction {index} (id {pred.get('id')!r}) lacks field(s) {missing}")
    if pred["task"] not in TASKS:
        raise ValueError(f"prediction {index} (id {pred['id']!r}) has unknown task {pred['task']!r}")
    return pred


def rescore(pred: Mapping[str, Any], index: int = 0) -> dict[str, Any]:
    """``pred`` with ``parsed`` and ``correct`` recomputed from its ``output`` by today's parser."""
    pred = _checked(pred, index)
    parsed = parse_answer(pred["output"], pred["task"], pred["label_set"])
    accept = pred.get("accept") or []
    return {**pred, "accept": list(accept), "parsed": parsed, "correct": is_correct(parsed, pred["answer"], accept)}


class _Tally:
    def __init__(self) -> None:
        self.count = self.correct = self.unparseable = 0
        self.chance_sum = 0.0

    def add(self, pred: Mapping[str, Any], correct: bool) -> None:
        self.count += 1
        self.correct += correct
        self.unparseable += pred.get("parsed") is None
        self.chance_sum += 1.0 / len(pred["label_set"])

    def as_dict(self) -> dict[str, Any]:
        return {"accuracy": self.correct / self.count, "count": self.count, "correct": self.correct,
                "unparseable": self.unparseable, "chance": self.chance_sum / self.count}


def compute_metrics(predictions: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Accuracy of ``predictions`` (correctness recomputed from ``parsed``, ``answer`` and ``accept``;
    a stored ``correct`` field is not trusted). Returns::

        {"overall": {"micro", "macro", "count", "correct", "unparseable", "chance"},
         "tasks": {task: {"accuracy", "count", "correct", "unparseable", "chance",
                          "sources": {source: {...same keys...}}}},   # tasks in TASKS order
         "sources": {source: {...same keys...}},                       # sorted by name
         "unparseable": [{"id", "task", "source", "output"}, ...]}     # in input order

    Accuracies are fractions in [0, 1]. Raises ``ValueError`` when there is no prediction.
    """
    overall, tasks, sources, pairs = _Tally(), {}, {}, {}
    unparseable = []
    for index, pred in enumerate(predictions):
        pred = _checked(pred, index)
        correct = is_correct(pred.get("parsed"), pred["answer"], pred.get("accept") or [])
        task, source = pred["task"], pred["source"]
        for tally in (overall, tasks.setdefault(task, _Tally()), sources.setdefault(source, _Tally()),
                      pairs.setdefault((task, source), _Tally())):
            tally.add(pred, correct)
        if pred.get("parsed") is None:
            unparseable.append({"id": pred["id"], "task": task, "source": source, "output": pred["output"]})
    if not overall.count:
        raise ValueError("predictions is empty: nothing to score")

    per_task = {}
    for task in (t for t in TASKS if t in tasks):
        per_task[task] = tasks[task].as_dict()
        per_task[task]["sources"] = {s: pairs[(task, s)].as_dict() for s in sorted(s for t, s in pairs if t == task)}
    total = overall.as_dict()
    return {
        "overall": {"micro": total["accuracy"], "macro": sum(t["accuracy"] for t in per_task.values()) / len(per_task),
                    "count": total["count"], "correct": total["correct"], "unparseable": total["unparseable"],
                    "chance": total["chance"]},
        "tasks": per_task,
        "sources": {s: sources[s].as_dict() for s in sorted(sources)},
        "unparseable": unparseable,
    }

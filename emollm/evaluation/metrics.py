"""Scores of parsed answers: per task, per source, per (task, source), overall micro and macro accuracy;
per group also macro- and weighted-F1, per-class precision and recall, and bootstrap intervals.

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

import numpy as np

from emollm.data.records import TASKS, EmoRecord
from emollm.evaluation.parse import parse_answer
from emollm.evaluation.scores import (
    bootstrap,
    bootstrap_accuracy,
    class_scores,
    confusion,
    interval,
    label_pair,
    resample_rng,
)

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


class _Group:
    """The predictions of one group (a task, a source, a task's source), as scikit-learn label pairs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.y_true: list[str] = []
        self.y_pred: list[str] = []
        self.correct: list[bool] = []
        self.unparseable = 0
        self.chance_sum = 0.0

    def add(self, pred: Mapping[str, Any], correct: bool) -> None:
        y_true, y_pred = label_pair(pred.get("parsed"), pred["answer"], pred.get("accept") or [])
        self.y_true.append(y_true)
        self.y_pred.append(y_pred)
        self.correct.append(correct)
        self.unparseable += pred.get("parsed") is None
        self.chance_sum += 1.0 / len(pred["label_set"])

    def as_dict(self, bootstrap_spec: Mapping[str, Any] | None, with_confusion: bool = False,
                ) -> tuple[dict[str, Any], np.ndarray | None]:
        """The group's scores (with its confusion matrix if asked), and its resampled accuracies
        (``None`` without a bootstrap)."""
        count = len(self.correct)
        scores = class_scores(self.y_true, self.y_pred)
        out = {"accuracy": scores["accuracy"], "count": count, "correct": sum(self.correct),
               "unparseable": self.unparseable, "chance": self.chance_sum / count,
               "macro_f1": scores["macro_f1"], "weighted_f1": scores["weighted_f1"], "classes": scores["classes"]}
        if with_confusion:
            out["confusion"] = confusion(self.y_true, self.y_pred)
        if not bootstrap_spec:
            return out, None
        resampled = bootstrap(self.y_true, self.y_pred, bootstrap_spec["resamples"],
                              resample_rng(bootstrap_spec["seed"], self.name))
        out["ci"] = {name: interval(values, bootstrap_spec["confidence"]) for name, values in resampled.items()}
        return out, resampled["accuracy"]


def compute_metrics(predictions: Iterable[Mapping[str, Any]], *, resamples: int = 1000, seed: int = 0,
                    confidence: float = 0.95) -> dict[str, Any]:
    """Scores of ``predictions`` (correctness recomputed from ``parsed``, ``answer`` and ``accept``;
    a stored ``correct`` field is not trusted). Returns::

        {"overall": {"micro", "macro", "count", "correct", "unparseable", "chance", "ci"},
         "tasks": {task: {GROUP, "confusion", "sources": {source: {GROUP}}}},   # in TASKS order
         "sources": {source: {GROUP}},                              # sorted by name
         "unparseable": [{"id", "task", "source", "output"}, ...],  # in input order
         "bootstrap": {"resamples", "seed", "confidence", "method"}}

    where GROUP is ``accuracy, count, correct, unparseable, chance, macro_f1, weighted_f1,
    classes: {label: {precision, recall, f1, support}}, ci: {accuracy, macro_f1, weighted_f1}``
    (see :mod:`emollm.evaluation.scores`); a task's ``confusion`` is ``{"labels", "matrix"}``
    (:func:`~emollm.evaluation.scores.confusion`). ``ci`` holds ``[lo, hi]`` percentile intervals at
    ``confidence`` from ``resamples`` bootstrap resamples of each group (seeded by ``seed`` and the
    group's name: the same predictions give the same intervals); ``resamples=0`` leaves out every
    ``ci`` and ``"bootstrap"``. The overall micro interval resamples all predictions; the macro one
    averages the tasks' resampled accuracies (each task resampled on its own).

    F1 is per task and source only: the tasks' label sets differ (a "yes" for hate is not a "yes"
    for humor), so no F1 is pooled over tasks. Scores are fractions in [0, 1]. Raises
    ``ValueError`` when there is no prediction.
    """
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 0:
        raise ValueError(f"resamples must be an integer >= 0, got {resamples!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    spec = {"resamples": resamples, "seed": seed, "confidence": confidence, "method": "percentile"} \
        if resamples else None
    overall, tasks, sources, pairs = _Group("overall"), {}, {}, {}
    unparseable = []
    for index, pred in enumerate(predictions):
        pred = _checked(pred, index)
        correct = is_correct(pred.get("parsed"), pred["answer"], pred.get("accept") or [])
        task, source = pred["task"], pred["source"]
        for group in (overall, tasks.setdefault(task, _Group(f"task:{task}")),
                      sources.setdefault(source, _Group(f"source:{source}")),
                      pairs.setdefault((task, source), _Group(f"pair:{task}/{source}"))):
            group.add(pred, correct)
        if pred.get("parsed") is None:
            unparseable.append({"id": pred["id"], "task": task, "source": source, "output": pred["output"]})
    if not overall.correct:
        raise ValueError("predictions is empty: nothing to score")

    per_task, task_resampled = {}, []
    for task in (t for t in TASKS if t in tasks):
        per_task[task], resampled = tasks[task].as_dict(spec, with_confusion=True)
        task_resampled.append(resampled)
        per_task[task]["sources"] = {s: pairs[(task, s)].as_dict(spec)[0]
                                     for s in sorted(s for t, s in pairs if t == task)}
    count = len(overall.correct)
    total = {"micro": sum(overall.correct) / count,
             "macro": sum(t["accuracy"] for t in per_task.values()) / len(per_task),
             "count": count, "correct": sum(overall.correct), "unparseable": overall.unparseable,
             "chance": overall.chance_sum / count}
    if spec:
        micro = bootstrap_accuracy(overall.correct, resamples, resample_rng(seed, overall.name))
        total["ci"] = {"micro": interval(micro, confidence),
                       "macro": interval(np.mean(task_resampled, axis=0), confidence)}
    return {
        "overall": total,
        "tasks": per_task,
        "sources": {s: sources[s].as_dict(spec)[0] for s in sorted(sources)},
        "unparseable": unparseable,
        **({"bootstrap": spec} if spec else {}),
    }

"""Classification scores of one group of predictions (a task, a source, or a task's source), with
scikit-learn: accuracy, macro-F1, weighted-F1, per-class precision / recall / F1 / support, and a
seeded percentile bootstrap interval on the accuracy and both F1s.

The community conventions this follows: MELD and MER results are compared in weighted F1
(scikit-learn's ``f1_score(average="weighted")``, the support-weighted mean of the per-class F1),
intent and detection tasks in macro-F1 and accuracy.

How a prediction becomes a ``(y_true, y_pred)`` pair:

- ``y_pred`` is the parsed label; an unparseable answer is :data:`UNPARSEABLE`, which is not a
  class: it scores as a miss for the true class and adds no column to the F1s;
- ``y_true`` is the record's answer, or the parsed label when that is one of the record's
  ``accept`` labels (multi-label sources such as Emotic: naming any of the true labels is right).

So ``accuracy_score(y_true, y_pred)`` is exactly the fraction of correct predictions. The classes
of a group are the labels that occur in its ``y_true`` or ``y_pred`` (scikit-learn's default),
without :data:`UNPARSEABLE`.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["UNPARSEABLE", "bootstrap", "bootstrap_accuracy", "class_scores", "confusion", "interval", "label_pair",
           "resample_rng"]

UNPARSEABLE = "(unparseable)"
# Resamples stacked into one scikit-learn call hold at most this many predictions (memory bound).
_STACK_LIMIT = 2_000_000


def label_pair(parsed: str | None, answer: str, accept: Sequence[str]) -> tuple[str, str]:
    """``(y_true, y_pred)`` of one prediction (see the module docstring)."""
    if parsed is None:
        return answer, UNPARSEABLE
    return (parsed if parsed in accept else answer), parsed


def _classes(y_true: Sequence[str], y_pred: Sequence[str]) -> list[str]:
    return sorted((set(y_true) | set(y_pred)) - {UNPARSEABLE})


def class_scores(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, Any]:
    """``{"accuracy", "macro_f1", "weighted_f1", "classes": {label: {"precision", "recall", "f1",
    "support"}}}`` of one group, by scikit-learn (``zero_division=0``: a class never predicted has
    precision 0)."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    labels = _classes(y_true, y_pred)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None,
                                                                     zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "classes": {label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                    for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)},
    }


def confusion(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, Any]:
    """``{"labels": [K], "matrix": [K][K] counts}`` by scikit-learn's ``confusion_matrix``: rows are
    true labels, columns predicted ones; :data:`UNPARSEABLE` is the last label when a prediction is
    unparseable (its row is empty: no answer is unparseable)."""
    from sklearn.metrics import confusion_matrix

    labels = _classes(y_true, y_pred) + ([UNPARSEABLE] if UNPARSEABLE in y_pred else [])
    with warnings.catch_warnings():  # a group with one class gives a 1x1 matrix, and that is right
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)
        matrix = confusion_matrix(y_true, y_pred, labels=labels)
    return {"labels": labels, "matrix": matrix.tolist()}


def resample_rng(seed: int, group: str) -> np.random.Generator:
    """The generator of one group's resamples: seeded by ``seed`` and the group's name, so a group's
    interval depends on its own predictions only (not on which other groups were scored first)."""
    return np.random.default_rng([seed, zlib.crc32(group.encode("utf-8"))])


def bootstrap(y_true: Sequence[str], y_pred: Sequence[str], resamples: int,
              rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The accuracy, macro-F1 and weighted-F1 of ``resamples`` bootstrap resamples (``n`` draws with
    replacement from the group's ``n`` predictions): ``{"accuracy", "macro_f1", "weighted_f1"}``,
    each ``[resamples]`` float64.

    Each resample's F1s are scikit-learn's on that resample, its classes being those that occur in
    it. Many resamples are scored in one ``precision_recall_fscore_support`` call: resample ``b``'s
    classes are renumbered ``b * (K + 1) + k``, so no true label of one resample can meet a
    prediction of another, and the per-class scores come out as ``[resamples, K]``.
    """
    from sklearn.metrics import precision_recall_fscore_support

    labels = _classes(y_true, y_pred)
    k = len(labels)
    code = {label: i for i, label in enumerate(labels)} | {UNPARSEABLE: k}  # k: a code no class has
    t = np.array([code[y] for y in y_true], dtype=np.int64)
    p = np.array([code[y] for y in y_pred], dtype=np.int64)
    n = t.size
    out = {name: np.empty(resamples) for name in ("accuracy", "macro_f1", "weighted_f1")}
    step = max(1, _STACK_LIMIT // n)
    for start in range(0, resamples, step):
        b = min(step, resamples - start)
        idx = rng.integers(0, n, size=(b, n))
        offset = (np.arange(b, dtype=np.int64) * (k + 1))[:, None]
        tb, pb = t[idx] + offset, p[idx] + offset  # [b, n]
        stacked_labels = (np.arange(k)[None, :] + offset).ravel()
        _, _, f1, support = precision_recall_fscore_support(tb.ravel(), pb.ravel(), labels=stacked_labels,
                                                            average=None, zero_division=0)
        f1, support = f1.reshape(b, k), support.reshape(b, k)
        predicted = np.bincount(pb.ravel(), minlength=b * (k + 1)).reshape(b, k + 1)[:, :k]
        present = (support > 0) | (predicted > 0)  # the classes of this resample
        out["accuracy"][start:start + b] = (tb == pb).mean(axis=1)
        out["macro_f1"][start:start + b] = (f1 * present).sum(axis=1) / present.sum(axis=1)
        out["weighted_f1"][start:start + b] = (f1 * support).sum(axis=1) / support.sum(axis=1)
    return out


def interval(values: np.ndarray, confidence: float) -> list[float]:
    """The percentile interval ``[lo, hi]`` holding the central ``confidence`` share of ``values``."""
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return [float(lo), float(hi)]


def bootstrap_accuracy(correct: Sequence[bool], resamples: int, rng: np.random.Generator) -> np.ndarray:
    """The accuracy of ``resamples`` bootstrap resamples of the correctness flags ``correct``, ``[resamples]``
    (for the overall accuracy, whose predictions span tasks with different label sets)."""
    flags = np.asarray(correct, dtype=np.float64)
    out = np.empty(resamples)
    step = max(1, _STACK_LIMIT // flags.size)
    for start in range(0, resamples, step):
        b = min(step, resamples - start)
        out[start:start + b] = flags[rng.integers(0, flags.size, size=(b, flags.size))].mean(axis=1)
    return out

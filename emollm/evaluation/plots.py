"""Evaluation charts (matplotlib, Agg canvas, no pyplot window): ``accuracy.png`` (accuracy per task
with its bootstrap interval and chance level) and ``confusion-<task>.png`` (one confusion matrix per
task, scikit-learn's ``ConfusionMatrixDisplay``). Each PNG is written atomically."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from emollm._io import atomic_path
from emollm.data.records import TASKS

__all__ = ["TASK_NAMES", "plot_accuracy", "plot_confusion"]

TASK_NAMES = {"emo-c": "Emo-C", "emo-o": "Emo-O", "intent": "Intention", "hate": "Hate", "humor": "Humor",
              "sarcasm": "Sarcasm"}
_VALUES_UP_TO = 20  # a matrix with more classes than this shows colours only: the numbers would overlap


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    return Path(path)


def plot_accuracy(metrics: Mapping[str, Any], path: str | os.PathLike, *, title: str = "EmoBench accuracy") -> Path:
    """A bar chart of accuracy per task (and overall micro) with each bar's chance level and, where
    ``metrics`` has them, its bootstrap interval as an error bar; PNG."""
    tasks = metrics["tasks"]
    overall = metrics["overall"]
    names = [TASK_NAMES[t] for t in TASKS if t in tasks] + ["Overall"]
    groups = [tasks[t] for t in TASKS if t in tasks]
    acc = [100 * g["accuracy"] for g in groups] + [100 * overall["micro"]]
    chance = [g["chance"] for g in groups] + [overall["chance"]]
    cis = [g["ci"]["accuracy"] for g in groups if "ci" in g]
    if "ci" in overall:
        cis.append(overall["ci"]["micro"])
    fig = _figure(1.2 * len(names) + 2, 4)
    ax = fig.add_subplot()
    xs = range(len(names))
    errors = None
    if len(cis) == len(names):  # [2, bars]: distances below and above each bar's top
        errors = [[a - 100 * lo for a, (lo, _) in zip(acc, cis, strict=True)],
                  [100 * hi - a for a, (_, hi) in zip(acc, cis, strict=True)]]
    bars = ax.bar(xs, acc, width=0.6, color=["#4c72b0"] * (len(names) - 1) + ["#55a868"], yerr=errors,
                  capsize=4, error_kw={"elinewidth": 1, "ecolor": "#333333"})
    ax.bar_label(bars, labels=[f"{a:.1f}" for a in acc], padding=2, fontsize=8)
    for x, c in zip(xs, chance, strict=True):
        ax.hlines(100 * c, x - 0.4, x + 0.4, colors="#c44e52", linestyles="--", linewidth=1.5,
                  label="chance (1/|label set|)" if x == 0 else None)
    ax.set_xticks(list(xs), names)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%)" + (", 95% bootstrap interval" if errors else ""))
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)  # outside: bars may reach the top
    return _save(fig, path)


def plot_confusion(confusion: Mapping[str, Any], path: str | os.PathLike, *, title: str) -> Path:
    """The confusion matrix ``{"labels": [K], "matrix": [K][K]}`` (rows: true label, columns:
    predicted; from :func:`~emollm.evaluation.scores.confusion`) as counts; PNG."""
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    labels: Sequence[str] = confusion["labels"]
    matrix = np.asarray(confusion["matrix"])
    side = min(4 + 0.45 * len(labels), 24)
    fig = _figure(side + 1, side)
    ax = fig.add_subplot()
    display = ConfusionMatrixDisplay(matrix, display_labels=list(labels))
    display.plot(ax=ax, include_values=len(labels) <= _VALUES_UP_TO, xticks_rotation="vertical", colorbar=True,
                 values_format="d", cmap="Blues")
    ax.set_title(title)
    return _save(fig, path)

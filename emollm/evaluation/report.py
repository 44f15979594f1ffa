"""Evaluation outputs: ``metrics.json``, a Table-2-style ``report.md``, ``accuracy.png`` and one
``confusion-<task>.png`` per task.

``report.md`` opens with the paper's Table 2 row (Emo-C, Emo-O, Intention, Hate, Humor, Sarcasm,
Overall; accuracy in %, "Overall" the micro accuracy as in the paper) and the row of its 95%
bootstrap intervals; then one row per task with its sources under it (accuracy, macro-F1,
weighted-F1, each with its interval; correct/count, unparseable, chance), the same per source over
all its tasks, per task the per-class precision / recall / F1 / support with the confusion matrix,
and the unparseable answers (the first ``max_unparseable``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from emollm._io import write_json_atomic, write_text_atomic
from emollm.data.records import TASKS
from emollm.evaluation.plots import TASK_NAMES, plot_accuracy, plot_confusion

__all__ = ["TABLE2_ORDER", "TASK_NAMES", "format_report", "plot_accuracy", "write_report"]

TABLE2_ORDER = ("emo-c", "emo-o", "intent", "hate", "humor", "sarcasm")  # the paper's column order
_OUTPUT_CHARS = 200  # an unparseable answer is cut to this length in report.md


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _ci(group: Mapping[str, Any], name: str) -> str:
    """`` [lo, hi]`` in %, or nothing when the metrics have no intervals."""
    if "ci" not in group:
        return ""
    lo, hi = group["ci"][name]
    return f" [{100 * lo:.1f}, {100 * hi:.1f}]"


def _cell(text: str) -> str:
    """``text`` as one Markdown table cell: one line, control characters as spaces, pipes escaped,
    cut to ``_OUTPUT_CHARS``."""
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if len(text) > _OUTPUT_CHARS:
        text = text[: _OUTPUT_CHARS - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|") or "(empty)"


def _row(name: str, m: Mapping[str, Any]) -> str:
    scores = " | ".join(_pct(m[key]) + _ci(m, key) for key in ("accuracy", "macro_f1", "weighted_f1"))
    return f"| {name} | {scores} | {m['correct']} / {m['count']} | {m['unparseable']} | {_pct(m['chance'])} |"


_GROUP_HEADER = ["| {} | accuracy (%) | macro-F1 (%) | weighted-F1 (%) | correct / count | unparseable | chance (%) |",
                 "|---|---:|---:|---:|---:|---:|---:|"]


def _table2(metrics: Mapping[str, Any]) -> list[str]:
    tasks, overall = metrics["tasks"], metrics["overall"]
    lines = ["## Table 2 (accuracy, %)", "",
             "| | " + " | ".join(TASK_NAMES[t] for t in TABLE2_ORDER) + " | Overall |",
             "|---|" + "---:|" * (len(TABLE2_ORDER) + 1),
             "| accuracy | " + " | ".join(_pct(tasks[t]["accuracy"]) if t in tasks else "–" for t in TABLE2_ORDER)
             + f" | {_pct(overall['micro'])} |"]
    if "ci" in overall:
        lines.append("| 95% interval | " + " | ".join(_ci(tasks[t], "accuracy").strip() if t in tasks else "–"
                                                     for t in TABLE2_ORDER) + f" | {_ci(overall, 'micro').strip()} |")
    lines += ["", f"Overall is the micro accuracy over all {overall['count']} answers; the macro accuracy (mean over "
              f"the {len(tasks)} tasks present) is {_pct(overall['macro'])}{_ci(overall, 'macro')}. "
              "A task without answers shows –."]
    spec = metrics.get("bootstrap")
    if spec:
        lines += ["", f"Intervals: {100 * spec['confidence']:g}% {spec['method']} bootstrap over {spec['resamples']} "
                  f"resamples of each group's answers (seed {spec['seed']}). Two results whose intervals overlap "
                  "widely are not shown to differ by this test set."]
    return lines


def _classes(task: str, m: Mapping[str, Any], image: str | None) -> list[str]:
    lines = [f"### {TASK_NAMES[task]}", "", "| class | precision (%) | recall (%) | F1 (%) | support |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {_cell(label)} | {_pct(c['precision'])} | {_pct(c['recall'])} | {_pct(c['f1'])} | {c['support']} |"
              for label, c in m["classes"].items()]
    if image is not None:
        lines += ["", f"![{TASK_NAMES[task]} confusion matrix (rows: true label, columns: predicted)]({image})"]
    return [*lines, ""]


def format_report(metrics: Mapping[str, Any], *, title: str = "EmoBench evaluation",
                  meta: Mapping[str, Any] | None = None, max_unparseable: int = 50, image: str | None = None,
                  confusion_images: Mapping[str, str] | None = None) -> str:
    """The Markdown report for ``metrics`` (from :func:`~emollm.evaluation.metrics.compute_metrics`);
    ``meta`` (model, data, ...) is listed under the title; ``image``, the accuracy chart's relative
    path, is shown under the tables, ``confusion_images`` (task -> relative path) under each task's
    classes."""
    if max_unparseable < 0:
        raise ValueError(f"max_unparseable must be >= 0, got {max_unparseable}")
    tasks, overall = metrics["tasks"], metrics["overall"]
    lines = [f"# {title}", ""]
    lines += [f"- {key}: {value}" for key, value in (meta or {}).items()]
    lines += ["", *_table2(metrics), "", "## Per task and source", "", _GROUP_HEADER[0].format("task / source"),
              _GROUP_HEADER[1]]
    for task in (t for t in TASKS if t in tasks):
        lines.append(_row(f"**{TASK_NAMES[task]}**", tasks[task]))
        lines += [_row(f"&nbsp;&nbsp;{source}", m) for source, m in tasks[task]["sources"].items()]
    lines.append(f"| **Overall (micro)** | {_pct(overall['micro'])}{_ci(overall, 'micro')} | | | "
                 f"{overall['correct']} / {overall['count']} | {overall['unparseable']} | {_pct(overall['chance'])} |")
    lines.append(f"| **Overall (macro)** | {_pct(overall['macro'])}{_ci(overall, 'macro')} | | | | | |")
    lines += ["", "F1 is computed per task and source only (the tasks' label sets differ); an unparseable answer "
              "is a miss for its true class and adds no class. Intervals in brackets."]
    if image is not None:
        lines += ["", f"![accuracy per task, dashed: chance]({image})"]
    lines += ["", "## Per source (all its tasks)", "", _GROUP_HEADER[0].format("source"), _GROUP_HEADER[1]]
    lines += [_row(source, m) for source, m in metrics["sources"].items()]
    lines += ["", "## Per class", ""]
    for task in (t for t in TASKS if t in tasks):
        lines += _classes(task, tasks[task], (confusion_images or {}).get(task))

    unparseable = metrics["unparseable"]
    lines += [f"## Unparseable answers ({len(unparseable)})", ""]
    if not unparseable:
        lines.append("None: every answer named a label.")
    else:
        shown = unparseable[:max_unparseable]
        if len(shown) < len(unparseable):
            lines += [f"The first {len(shown)} of {len(unparseable)}; all are in metrics.json.", ""]
        lines += ["| id | task | output |", "|---|---|---|"]
        lines += [f"| {_cell(u['id'])} | {u['task']} | {_cell(u['output'])} |" for u in shown]
    return "\n".join(lines) + "\n"


def _plots(metrics: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """``accuracy.png`` and ``confusion-<task>.png``; none (with a warning) without matplotlib."""
    try:
        paths = {"plot": plot_accuracy(metrics, out / "accuracy.png")}
        for task, m in metrics["tasks"].items():
            if "confusion" in m:
                paths[f"confusion-{task}"] = plot_confusion(m["confusion"], out / f"confusion-{task}.png",
                                                            title=f"{TASK_NAMES[task]}: confusion matrix")
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "matplotlib":
            raise
        warnings.warn("no charts drawn: matplotlib is missing (pip install 'emollm[eval]')", stacklevel=3)
        return {}
    return paths


def write_report(metrics: Mapping[str, Any], out_dir: str | os.PathLike, *, meta: Mapping[str, Any] | None = None,
                 max_unparseable: int = 50, plot: bool = True) -> dict[str, Path]:
    """Writes ``metrics.json``, ``report.md`` and (with matplotlib, unless ``plot=False``)
    ``accuracy.png`` and ``confusion-<task>.png`` into ``out_dir``, each atomically; returns their
    paths by kind ("metrics", "report", "plot", "confusion-<task>")."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {**({"meta": dict(meta)} if meta else {}), **metrics}
    paths = {"metrics": write_json_atomic(out / "metrics.json", payload)}
    charts = _plots(metrics, out) if plot else {}
    confusion_images = {key.removeprefix("confusion-"): p.name for key, p in charts.items() if key != "plot"}
    report = format_report(metrics, meta=meta, max_unparseable=max_unparseable,
                           image=charts["plot"].name if "plot" in charts else None, confusion_images=confusion_images)
    paths["report"] = write_text_atomic(out / "report.md", report)
    return {**paths, **charts}

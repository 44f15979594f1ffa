"""Evaluation outputs: ``metrics.json``, a Table-2-style ``report.md`` and ``accuracy.png``.

``report.md`` opens with the paper's Table 2 row (Emo-C, Emo-O, Intention, Hate, Humor, Sarcasm,
Overall; accuracy in %, "Overall" the micro accuracy as in the paper), then one row per task with
its sources under it (accuracy, correct/count, unparseable, chance), and the unparseable answers
(the first ``max_unparseable``). The chart draws each task's accuracy as a bar with its chance
level (mean ``1/|label set|``) as a line across the bar.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from emollm._io import atomic_write, write_json_atomic, write_text_atomic
from emollm.data.records import TASKS

__all__ = ["TASK_NAMES", "format_report", "plot_accuracy", "write_report"]

TASK_NAMES = {"emo-c": "Emo-C", "emo-o": "Emo-O", "intent": "Intention", "hate": "Hate", "humor": "Humor",
              "sarcasm": "Sarcasm"}
TABLE2_ORDER = ("emo-c", "emo-o", "intent", "hate", "humor", "sarcasm")  # the paper's column order
_OUTPUT_CHARS = 200  # an unparseable answer is cut to this length in report.md


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _cell(text: str) -> str:
    """``text`` as one Markdown table cell: one line, control characters as spaces, pipes escaped,
    cut to ``_OUTPUT_CHARS``."""
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if len(text) > _OUTPUT_CHARS:
        text = text[: _OUTPUT_CHARS - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|") or "(empty)"


def _row(name: str, m: Mapping[str, Any]) -> str:
    return (f"| {name} | {_pct(m['accuracy'])} | {m['correct']} / {m['count']} | {m['unparseable']} | "
            f"{_pct(m['chance'])} |")


def format_report(metrics: Mapping[str, Any], *, title: str = "EmoBench evaluation",
                  meta: Mapping[str, Any] | None = None, max_unparseable: int = 50, image: str | None = None) -> str:
    """The Markdown report for ``metrics`` (from :func:`~emollm.evaluation.metrics.compute_metrics`);
    ``meta`` (model, data, ...) is listed under the title; ``image``, a chart's relative path, is shown
    under the tables."""
    if max_unparseable < 0:
        raise ValueError(f"max_unparseable must be >= 0, got {max_unparseable}")
    tasks, overall = metrics["tasks"], metrics["overall"]
    lines = [f"# {title}", ""]
    lines += [f"- {key}: {value}" for key, value in (meta or {}).items()]
    lines += ["", "## Table 2 (accuracy, %)", "",
              "| " + " | ".join(TASK_NAMES[t] for t in TABLE2_ORDER) + " | Overall |",
              "|" + "---:|" * (len(TABLE2_ORDER) + 1),
              "| " + " | ".join(_pct(tasks[t]["accuracy"]) if t in tasks else "–" for t in TABLE2_ORDER)
              + f" | {_pct(overall['micro'])} |", "",
              f"Overall is the micro accuracy over all {overall['count']} answers; the macro accuracy (mean over "
              f"the {len(tasks)} tasks present) is {_pct(overall['macro'])}. A task without answers shows –.", "",
              "## Per task and source", "",
              "| task / source | accuracy (%) | correct / count | unparseable | chance (%) |",
              "|---|---:|---:|---:|---:|"]
    for task in (t for t in TASKS if t in tasks):
        lines.append(_row(f"**{TASK_NAMES[task]}**", tasks[task]))
        lines += [_row(f"&nbsp;&nbsp;{source}", m) for source, m in tasks[task]["sources"].items()]
    micro = {**overall, "accuracy": overall["micro"]}
    lines.append(_row("**Overall (micro)**", micro))
    lines.append(f"| **Overall (macro)** | {_pct(overall['macro'])} | | | |")
    if image is not None:
        lines += ["", f"![accuracy per task, dashed: chance]({image})"]

    unparseable = metrics["unparseable"]
    lines += ["", f"## Unparseable answers ({len(unparseable)})", ""]
    if not unparseable:
        lines.append("None: every answer named a label.")
    else:
        shown = unparseable[:max_unparseable]
        if len(shown) < len(unparseable):
            lines += [f"The first {len(shown)} of {len(unparseable)}; all are in metrics.json.", ""]
        lines += ["| id | task | output |", "|---|---|---|"]
        lines += [f"| {_cell(u['id'])} | {u['task']} | {_cell(u['output'])} |" for u in shown]
    return "\n".join(lines) + "\n"


def plot_accuracy(metrics: Mapping[str, Any], path: str | os.PathLike, *, title: str = "EmoBench accuracy") -> Path:
    """A bar chart of accuracy per task (and overall micro) with each bar's chance level; PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = metrics["tasks"]
    names = [TASK_NAMES[t] for t in TASKS if t in tasks] + ["Overall"]
    groups = [tasks[t] for t in TASKS if t in tasks] + [{"accuracy": metrics["overall"]["micro"],
                                                         "chance": metrics["overall"]["chance"]}]
    acc = [100 * g["accuracy"] for g in groups]
    fig = Figure(figsize=(1.2 * len(names) + 2, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = range(len(names))
    bars = ax.bar(xs, acc, width=0.6, color=["#4c72b0"] * (len(names) - 1) + ["#55a868"])
    ax.bar_label(bars, labels=[f"{a:.1f}" for a in acc], padding=2, fontsize=8)
    for x, g in zip(xs, groups, strict=True):
        ax.hlines(100 * g["chance"], x - 0.4, x + 0.4, colors="#c44e52", linestyles="--", linewidth=1.5,
                  label="chance (1/|label set|)" if x == 0 else None)
    ax.set_xticks(list(xs), names)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)  # outside: bars may reach the top
    path = Path(path)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    return path


def write_report(metrics: Mapping[str, Any], out_dir: str | os.PathLike, *, meta: Mapping[str, Any] | None = None,
                 max_unparseable: int = 50, plot: bool = True) -> dict[str, Path]:
    """Writes ``metrics.json``, ``report.md`` and (with matplotlib, unless ``plot=False``)
    ``accuracy.png`` into ``out_dir``; returns their paths by kind ("metrics", "report", "plot")."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": out / "metrics.json", "report": out / "report.md"}
    payload = {**({"meta": dict(meta)} if meta else {}), **metrics}
    write_json_atomic(paths["metrics"], payload)
    if plot:
        try:
            paths["plot"] = plot_accuracy(metrics, out / "accuracy.png")
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] != "matplotlib":
                raise
            warnings.warn("accuracy.png not drawn: matplotlib is missing (pip install 'emollm[eval]')", stacklevel=2)
    image = paths["plot"].name if "plot" in paths else None
    report = format_report(metrics, meta=meta, max_unparseable=max_unparseable, image=image)
    write_text_atomic(paths["report"], report)
    return paths

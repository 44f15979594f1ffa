"""``loss.csv`` and ``loss.png`` in ``--output``: the training loss as the run goes.

The rows come from the Trainer's log history (step, epoch, loss, learning rate, gradient norm),
which a resumed run restores from its checkpoint, so the files always cover the whole run. They
are rewritten whole (atomically) by process 0: ``loss.csv`` at most every ``every`` seconds while
the Trainer logs and at each checkpoint, ``loss.png`` at most every ``every`` seconds at a
checkpoint (drawing takes a fraction of a second), and both at the end.
"""

from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from emollm._io import atomic_path, write_text_atomic

__all__ = ["COLUMNS", "LossLog", "loss_rows", "plot_loss"]

COLUMNS = ("step", "epoch", "loss", "learning_rate", "grad_norm")


def loss_rows(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The training-loss entries of a Trainer log history (not the final summary), as rows of
    :data:`COLUMNS`."""
    return [{"step": h["step"], **{c: h.get(c) for c in COLUMNS[1:]}} for h in log_history if "loss" in h]


def plot_loss(rows: list[dict[str, Any]], path: str | os.PathLike, *, title: str = "training loss") -> Path:
    """Loss against step (and its running mean over 10 logs, when there are more than 10); PNG."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps = np.array([r["step"] for r in rows])
    loss = np.array([r["loss"] for r in rows], dtype=float)
    fig = Figure(figsize=(7, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(steps, loss, color="#4c72b0", linewidth=1, alpha=0.6 if len(rows) > 10 else 1, label="loss")
    if len(rows) > 10:
        smooth = np.convolve(loss, np.ones(10) / 10, mode="valid")
        ax.plot(steps[9:], smooth, color="#c44e52", linewidth=2, label="mean of the last 10 logs")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (answer tokens)")
    ax.set_title(title)
    ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    return Path(path)


class LossLog(TrainerCallback):
    """Keeps ``output/loss.csv`` and ``output/loss.png`` up to date (see the module docstring)."""

    def __init__(self, output: str | os.PathLike, every: float = 30.0):
        self.output, self.every = Path(output), every
        self._last = self._last_plot = 0.0

    def write(self, log_history: list[dict[str, Any]], plot: bool = True) -> None:
        rows = loss_rows(log_history)
        if not rows:
            return
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(self.output / "loss.csv", text.getvalue())
        self._last = time.monotonic()
        if plot:
            self._last_plot = self._last
            try:
                plot_loss(rows, self.output / "loss.png")
            except ModuleNotFoundError as e:  # matplotlib is optional for training
                if (e.name or "").split(".")[0] != "matplotlib":
                    raise

    def on_log(self, args, state, control, **kwargs):
        if state.is_world_process_zero and time.monotonic() - self._last >= self.every:
            self.write(state.log_history, plot=False)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.write(state.log_history, plot=time.monotonic() - self._last_plot >= self.every)

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.write(state.log_history)

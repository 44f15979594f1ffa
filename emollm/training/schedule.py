"""The order in which training sees its samples, per strategy (paper §5.3, Table 4).

- ``emo``: EmoBench only, reshuffled every epoch;
- ``mix``: EmoBench and general instruction data shuffled together, every epoch;
- ``sequential``: all epochs of the general data first, then all epochs of EmoBench (each
  reshuffled per epoch): objective knowledge first, then the emotional tasks.

The epochs are unrolled into one fixed, seeded order (:class:`ScheduledDataset`) that the
Trainer walks sequentially. That makes the run reproducible and its resumption exact: after an
interruption the Trainer skips the batches already seen in this one order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch.utils.data import Dataset

from emollm.training.config import STRATEGIES

__all__ = ["EMO", "GENERAL", "ScheduledDataset", "schedule"]

EMO, GENERAL = 0, 1  # which dataset a scheduled index points into


def _epochs(source: int, size: int, epochs: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    return [(source, int(i)) for _ in range(epochs) for i in rng.permutation(size)]


def schedule(strategy: str, num_emo: int, num_general: int, epochs: int, seed: int) -> list[tuple[int, int]]:
    """The training order: a list of ``(EMO | GENERAL, index)`` covering ``epochs`` epochs."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if num_emo < 1:
        raise ValueError(f"num_emo must be >= 1, got {num_emo}")
    if strategy != "emo" and num_general < 1:
        raise ValueError(f"strategy {strategy!r} needs general data (num_general >= 1), got {num_general}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    rng = np.random.default_rng(seed)
    if strategy == "emo":
        return _epochs(EMO, num_emo, epochs, rng)
    if strategy == "sequential":
        return _epochs(GENERAL, num_general, epochs, rng) + _epochs(EMO, num_emo, epochs, rng)
    pool = [(EMO, i) for i in range(num_emo)] + [(GENERAL, i) for i in range(num_general)]
    return [pool[int(j)] for _ in range(epochs) for j in rng.permutation(len(pool))]


class ScheduledDataset(Dataset):
    """``datasets[source][index]`` for each ``(source, index)`` of ``order``, in that order."""

    def __init__(self, datasets: Sequence[Dataset | None], order: Sequence[tuple[int, int]]):
        self.datasets, self.order = list(datasets), list(order)

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int):
        source, index = self.order[i]
        return self.datasets[source][index]

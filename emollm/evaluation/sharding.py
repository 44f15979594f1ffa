"""Data-parallel evaluation: ``torchrun --nproc-per-node N -m emollm eval ...`` answers the records
in N processes and writes one ``predictions.jsonl``, in record order, as one process would.

Each process takes one contiguous share of the records (accelerate's ``split_between_processes``:
the first ``len % N`` shares hold one record more), answers it into its own shard file
``predictions.rank<r>.jsonl`` (one line per record, flushed after every batch), and waits for the
others; process 0 then merges the shards in record order, checks that every record has exactly
one prediction, writes ``predictions.jsonl`` atomically and removes the shards. Greedy decoding
answers a record the same in any batch (left padding), so the merged file and its metrics equal
one process's.

Resumption works across process counts: ``--resume`` keeps every answer found in
``predictions.jsonl`` and in any shard left by an interrupted run (with however many processes),
and each process answers only the missing records of its share.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from emollm._io import write_text_atomic
from emollm.data.records import EmoRecord

__all__ = ["PREDICTIONS", "answered", "is_main_process", "merge_shards", "process_state", "shard_path", "shards"]

PREDICTIONS = "predictions.jsonl"
_SHARD_GLOB = "predictions.rank*.jsonl"
# How long a process waits for the slowest one at the end (its share may hold longer videos).
_BARRIER_TIMEOUT = timedelta(hours=2)


def is_main_process() -> bool:
    """Whether this is process 0 of a ``torchrun`` / ``accelerate launch`` job (or the only process);
    read from the environment, so it holds before any process group exists."""
    return os.environ.get("RANK", "0") == "0"


def process_state(device: str | None):
    """accelerate's ``PartialState`` for this process: under ``torchrun`` it joins the process group
    (NCCL on GPUs; gloo on CPU, also when ``device`` is ``"cpu"`` on a GPU machine) and owns the
    device ``cuda:<local rank>``; alone it is a one-process state."""
    import torch
    from accelerate import PartialState

    cpu = (device is not None and torch.device(device).type == "cpu") or not torch.cuda.is_available()
    return PartialState(cpu=cpu, timeout=_BARRIER_TIMEOUT)


def shard_path(out: Path, rank: int) -> Path:
    return Path(out) / f"predictions.rank{rank}.jsonl"


def shards(out: Path) -> list[Path]:
    return sorted(Path(out).glob(_SHARD_GLOB))


def answered(out: Path, records: Sequence[EmoRecord]) -> dict[str, dict[str, Any]]:
    """The predictions of ``records`` already in ``out/predictions.jsonl`` or in a shard of an
    interrupted run, by id (a line cut off by a kill is dropped)."""
    from emollm.evaluation.predict import read_predictions

    wanted = {r.id for r in records}
    found: dict[str, dict[str, Any]] = {}
    for path in [Path(out) / PREDICTIONS, *shards(out)]:
        if path.is_file():
            found.update((p["id"], p) for p in read_predictions(path) if p.get("id") in wanted)
    return found


def merge_shards(out: Path, records: Sequence[EmoRecord], world_size: int) -> list[dict[str, Any]]:
    """Process 0's last step: the shards of ranks ``0..world_size-1`` merged into
    ``out/predictions.jsonl`` in the order of ``records``; every shard (also stale ones of an
    earlier run with more processes) is then removed. Raises ``RuntimeError`` when a record has
    no prediction or two."""
    import json

    from emollm.evaluation.predict import read_predictions

    by_id: dict[str, dict[str, Any]] = {}
    for rank in range(world_size):
        for pred in read_predictions(shard_path(out, rank)):
            if pred["id"] in by_id:
                raise RuntimeError(f"record {pred['id']!r} was answered twice (shard of rank {rank})")
            by_id[pred["id"]] = pred
    missing = [r.id for r in records if r.id not in by_id]
    if missing:
        raise RuntimeError(f"{len(missing)} record(s) have no prediction after all processes finished, "
                           f"e.g. {missing[0]!r}")
    merged = [by_id[r.id] for r in records]
    write_text_atomic(Path(out) / PREDICTIONS, "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in merged))
    for path in shards(out):
        path.unlink()
    return merged


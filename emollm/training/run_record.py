"""``train_config.json``: what a run in ``--output`` was asked to do, what each part of it used, and
whether it finished; and the checks made before a rerun continues from old checkpoints.

The file holds the settings at its top level (as :meth:`TrainConfig.to_dict`, so it loads back as
a config) and two more keys::

    {"model": ..., "lr": ..., ...,                      # the settings of the latest part
     "status": "running" | "finished",
     "parts": [{"settings": {...}, "from_step": 0, "to_step": 600, "processes": 4,
                "versions": {"emollm": ..., "torch": ..., "transformers": ..., "peft": ..., "accelerate": ...},
                "started": "2026-11-27T18:00:00+00:00", "ended": ... | null}, ...]}

A rerun of the same command continues the last part's checkpoints; one whose run finished says
so and does nothing; one with other settings is refused (:class:`SettingsChanged`) unless
``--resume-with-changes`` is given, and its part then records the new settings.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path
from typing import Any

from emollm._io import write_text_atomic
from emollm.training.config import TrainConfig

__all__ = ["RECORD", "RunFinished", "SettingsChanged", "changed_settings", "check_rerun", "finish_part",
           "read_record", "start_part"]

RECORD = "train_config.json"
# Settings that change how a run is watched or stored, not what it computes: a rerun may change them.
_FREE = {"output", "resume", "resume_with_changes", "save_steps", "save_total_limit", "logging_steps", "num_workers",
         "feature_cache"}


class RunFinished(Exception):
    """The run in ``--output`` finished with these settings: there is nothing to resume."""


class SettingsChanged(ValueError):
    """``--output`` holds checkpoints of a run with other settings."""


def read_record(output: str | Path) -> dict[str, Any] | None:
    """The ``train_config.json`` of ``output``, or ``None`` when there is none (or it is not one)."""
    path = Path(output) / RECORD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unreadable, not UTF-8, not JSON
        return None
    return record if isinstance(record, dict) else None


def _settings(record: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return {k: v for k, v in record.items() if k in names}


def changed_settings(record: dict[str, Any], config: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """``{name: (recorded, now)}`` for every setting that changes what the run computes."""
    recorded, now = _settings(record), config.to_dict()
    return {name: (recorded.get(name), value) for name, value in now.items()
            if name not in _FREE and name in recorded and recorded[name] != value}


def check_rerun(config: TrainConfig, has_checkpoint: bool) -> None:
    """Raises :class:`RunFinished` or :class:`SettingsChanged` when rerunning ``config`` over what
    ``config.output`` holds should not simply continue (see the module docstring)."""
    record = read_record(config.output)
    if record is None or not config.resume:
        return
    changes = changed_settings(record, config)
    if changes and not config.resume_with_changes and (has_checkpoint or record.get("status") == "finished"):
        listed = ", ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in sorted(changes.items()))
        raise SettingsChanged(f"{config.output} holds a run with other settings ({listed}); continue it anyway "
                              "with --resume-with-changes, start over with --no-resume, or pick another --output")
    if record.get("status") == "finished" and not changes:
        step = (record.get("parts") or [{}])[-1].get("to_step")
        raise RunFinished(f"{config.output} holds a finished run ({step} steps) with these settings: nothing to do "
                          "(--no-resume trains it again from the start)")


def _versions() -> dict[str, str | None]:
    from emollm.cli import OPTIONAL_PACKAGES, installed_version

    return {"emollm": installed_version("emollm"), "torch": installed_version("torch"),
            **{name: installed_version(*dists) for name, dists in OPTIONAL_PACKAGES.items()
               if name in ("transformers", "peft", "accelerate")}}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def start_part(config: TrainConfig, from_step: int, processes: int) -> None:
    """Records the start of a part (process 0): the settings, the step it starts from, versions."""
    record = read_record(config.output) if config.resume else None
    parts = list((record or {}).get("parts", []))
    parts.append({"settings": config.to_dict(), "from_step": from_step, "to_step": None, "processes": processes,
                  "versions": _versions(), "started": _now(), "ended": None})
    _write(config, "running", parts)


def finish_part(config: TrainConfig, to_step: int) -> None:
    """Records the end of the current part and marks the run finished (process 0)."""
    parts = list((read_record(config.output) or {}).get("parts", [])) or [{"settings": config.to_dict()}]
    parts[-1] = {**parts[-1], "to_step": to_step, "ended": _now()}
    _write(config, "finished", parts)


def _write(config: TrainConfig, status: str, parts: list[dict[str, Any]]) -> None:
    record = {**config.to_dict(), "status": status, "parts": parts}
    write_text_atomic(Path(config.output) / RECORD, json.dumps(record, indent=2) + "\n")

"""Settings files and setting values: the YAML of ``train --config`` and ``eval --config`` read, and
each value type-checked, in one place, so that every bad file or value ends in one line naming it."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

__all__ = ["MAX_COUNT", "ConfigError", "check_setting", "read_settings"]

# The largest count setting (epochs, batch size, steps, records, ...) accepted: more than any run
# reaches, and past 2**63 the samplers and batching fail in a traceback.
MAX_COUNT = 10**9


class ConfigError(ValueError):
    """A settings file that cannot be read, or a setting of the wrong type or out of range."""


def read_settings(path: str | os.PathLike, flag: str = "--config") -> dict[str, Any]:
    """The YAML mapping at ``path``, keys with ``-`` written as ``_``. Raises :class:`ConfigError`
    naming the file for a missing file, a folder, bytes that are not UTF-8, YAML that does not
    parse (with its line) and a document that is not a mapping of named settings."""
    file = Path(path)
    if not file.is_file():
        what = "a folder, not a file" if file.is_dir() else "not a regular file" if file.exists() else "no such file"
        raise ConfigError(f"{flag} {path}: {what}")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{flag} {path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})"
                          ) from None
    import yaml

    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or " ".join(str(e).split())
        raise ConfigError(f"{flag} {where}: not valid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{flag} {path}: nested too deeply to be a settings file") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{flag} {path}: expected a mapping of settings, got {type(loaded).__name__}")
    bad = next((k for k in loaded if not isinstance(k, str)), None)
    if bad is not None:
        raise ConfigError(f"{flag} {path}: setting names are words, got {bad!r}")
    return {k.replace("-", "_"): v for k, v in loaded.items()}


_KINDS = {"int": "an integer", "float": "a finite number", "bool": "true or false", "str": "a string"}


def check_setting(name: str, value: Any, annotation: str) -> Any:
    """``value`` if it is of the type ``annotation`` names (``"int"``, ``"float | None"``, ...: the
    text of a dataclass field's annotation), else :class:`ConfigError` naming ``name`` and the
    type. A bool is no number, a number no bool; a float must be finite. A number YAML reads as a
    string (PyYAML reads ``2e-5``, without a dot, so) is taken as the number for a float setting."""
    kinds = [k.strip() for k in annotation.split("|")]
    if value is None and "None" in kinds:
        return None
    if "bool" in kinds and isinstance(value, bool):
        return value
    if "int" in kinds and isinstance(value, int) and not isinstance(value, bool):
        return value
    if "float" in kinds and not isinstance(value, bool):
        number = _number(value)
        if number is not None and math.isfinite(number):
            return number
    if "str" in kinds and isinstance(value, str):
        return value
    wanted = " or ".join(_KINDS[k] for k in kinds if k in _KINDS) + (" or null" if "None" in kinds else "")
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise ConfigError(f"{name} must be {wanted}, got {shown}")


def _number(value: Any) -> float | None:
    if not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except (ValueError, OverflowError):  # not a number; an integer beyond any float
        return None

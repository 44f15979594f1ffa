"""One converter per EmoBench source (paper Table 1), each reading that dataset's own layout.

``SOURCES`` maps a ``--source`` name to its converter module; modules are imported on first use
(:func:`get_source`), so a broken or missing converter affects only its own source.
"""

from __future__ import annotations

import importlib
from types import ModuleType

SOURCES: dict[str, str] = {
    "emotic": "emollm.data.sources.emotic",
    "caer-s": "emollm.data.sources.caer_s",
    "meld": "emollm.data.sources.meld",
    "emotion6": "emollm.data.sources.emotion6",
    "mintrec": "emollm.data.sources.mintrec",
    "smile": "emollm.data.sources.smile",
    "mmhs150k": "emollm.data.sources.mmhs150k",
    "mmsd2": "emollm.data.sources.mmsd2",
}


def get_source(name: str) -> ModuleType:
    """The converter module of source ``name`` (see :mod:`emollm.data.sources.base` for its interface)."""
    if name not in SOURCES:
        raise ValueError(f"unknown source {name!r}; expected one of: {', '.join(SOURCES)}")
    module = importlib.import_module(SOURCES[name])
    if getattr(module, "NAME", None) != name:
        raise ValueError(f"{module.__name__}.NAME is {getattr(module, 'NAME', None)!r}, expected {name!r}")
    return module

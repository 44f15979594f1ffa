"""Asking a trained EmoLLM one question about one file: media decoding, the prompt, streaming.

:class:`Session` loads a model once; :meth:`Session.ask` returns a :class:`Reply` whose iteration
streams the answer; :func:`load_media_files` decodes an image, a video and an audio clip (a broken
file raises :class:`MediaError`, one line). ``emollm ask`` (:mod:`emollm.inference.cli`) and
``emollm serve`` (:mod:`emollm.serve`) are built on them.
"""

import importlib

# Imported on first use: `emollm ask`'s argument parser (emollm.inference.cli) loads with the base
# dependencies only, and the model's (transformers) when a question is asked.
_WHERE = {"Media": "media", "MediaError": "media", "load_media_files": "media", "build_prompt": "prompt",
          "human_turn": "prompt", "Reply": "session", "Session": "session", "default_labels": "tasks",
          "parse_label": "tasks"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value

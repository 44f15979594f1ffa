"""Asking a trained EmoLLM one question about one file: media decoding, the prompt, streaming.

:class:`Session` loads a model once; :meth:`Session.ask` returns a :class:`Reply` whose iteration
streams the answer; :func:`load_media_files` decodes an image, a video and an audio clip (a broken
file raises :class:`MediaError`, one line). ``emollm ask`` (:mod:`emollm.inference.cli`) and
``emollm serve`` (:mod:`emollm.serve`) are built on them.
"""

from emollm.inference.media import Media, MediaError, load_media_files
from emollm.inference.prompt import build_prompt, human_turn
from emollm.inference.session import Reply, Session
from emollm.inference.tasks import default_labels, parse_label

__all__ = ["Media", "MediaError", "Reply", "Session", "build_prompt", "default_labels", "human_turn",
           "load_media_files", "parse_label"]

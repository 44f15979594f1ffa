"""Token-by-token text out of ``model.generate``: generation runs in a worker thread and hands each
new token to a queue; the caller's thread decodes and yields the text as it grows."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from transformers.generation.streamers import BaseStreamer

__all__ = ["TokenQueue", "generate_in_thread", "text_deltas"]

_END = object()


class TokenQueue(BaseStreamer):
    """A ``generate(streamer=...)`` target: the first ``put`` is the prompt (skipped), every later
    one the new token(s) of a step, ``[1]`` or ``[1, 1]`` for a batch of one."""

    def __init__(self):
        self.items: queue.Queue = queue.Queue()
        self._prompt_seen = False

    def put(self, value) -> None:
        if value.dim() > 1 and value.shape[0] > 1:
            raise ValueError("streaming supports a batch of one")
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.items.put(value.reshape(-1).tolist())

    def end(self) -> None:
        self.items.put(_END)

    def fail(self, error: BaseException) -> None:
        self.items.put(error)

    def __iter__(self) -> Iterator[list[int]]:
        """The token ids of each step as they come; re-raises an error of the generating thread."""
        while True:
            item = self.items.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


def generate_in_thread(generate: Callable[..., Any], **kwargs: Any) -> tuple[TokenQueue, threading.Thread]:
    """Start ``generate(streamer=queue, **kwargs)`` in a daemon thread; an exception ends the stream
    and is raised by the queue's iterator."""
    tokens = TokenQueue()

    def run() -> None:
        try:
            generate(streamer=tokens, **kwargs)
        except BaseException as e:  # handed to the consuming thread, which raises it
            tokens.fail(e)

    thread = threading.Thread(target=run, name="emollm-generate", daemon=True)
    thread.start()
    return tokens, thread


def text_deltas(token_steps: Iterator[list[int]], decode: Callable[[list[int]], str]) -> Iterator[str]:
    """The new text after each step: the decoding of all ids so far, minus what was already given.
    A trailing U+FFFD (a multi-byte character cut between tokens) is held back until it completes."""
    ids: list[int] = []
    shown = ""
    for step in token_steps:
        ids += step
        text = decode(ids)
        if text.endswith("\ufffd") or len(text) <= len(shown):
            continue
        yield text[len(shown):]
        shown = text
    final = decode(ids)
    if len(final) > len(shown):  # a held-back character that never completed
        yield final[len(shown):]

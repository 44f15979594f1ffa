"""The one prompt format: what ``emollm train`` trains on, ``emollm eval`` asks, and ``emollm ask`` /
``emollm serve`` send.

Vicuna v1 (FastChat ``vicuna_v1``) with its system prompt, the media placeholders first, each on
its own line, then the question::

    A chat between a curious user and an artificial intelligence assistant. The assistant gives
    helpful, detailed, and polite answers to the user's questions. USER: <image>
    How does this person feel? ASSISTANT:

:func:`build_prompt` makes it through :func:`emollm.data.dataset.prompt_text`, the function
training and evaluation use, so the formats cannot drift apart; it is also what the EmoLLM
processors' chat template renders (tests check both).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from emollm.data.dataset import prompt_text
from emollm.data.records import PLACEHOLDERS

__all__ = ["MEDIA_KINDS", "build_prompt", "human_turn"]

MEDIA_KINDS = tuple(PLACEHOLDERS)  # ("image", "video", "audio"): the order placeholders are written in


def human_turn(question: str, kinds: Sequence[str] = ()) -> str:
    """The user's turn: one placeholder line per media item (``kinds`` in order), then ``question``,
    as EmoBench records write it (``"<image>\\n<audio>\\nWhich emotion ...?"``)."""
    unknown = [k for k in kinds if k not in PLACEHOLDERS]
    if unknown:
        raise ValueError(f"media kinds must be among {MEDIA_KINDS}, got {unknown}")
    if not question.strip():
        raise ValueError("the question is empty")
    return "".join(PLACEHOLDERS[k] + "\n" for k in kinds) + question.strip()


@dataclass
class _Turns:
    """The part of a record that :func:`prompt_text` reads: its conversation."""

    conversations: list[dict[str, str]]
    media: list[dict[str, str]] = field(default_factory=list)


def build_prompt(question: str, kinds: Sequence[str] = (), exemplar: str | None = None) -> str:
    """The full prompt for one question about media of ``kinds`` (e.g. ``["image"]``), ending with
    ``"ASSISTANT:"``. ``exemplar``: an EmoPrompt chain-of-thought exemplar, put on its own line at
    the start of the user's turn, before the placeholders (as training and evaluation put it)."""
    turns = _Turns([{"from": "human", "value": human_turn(question, kinds)}, {"from": "gpt", "value": ""}])
    return prompt_text(turns, exemplar)

"""Batches of :class:`~emollm.data.dataset.EmoBenchDataset` samples -> EmoLLM inputs with labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import BatchFeature

__all__ = ["IGNORE_INDEX", "EmoBenchCollator"]

IGNORE_INDEX = -100  # torch cross-entropy's ignore_index, which the transformers losses use


class EmoBenchCollator:
    """One ``processor`` call per batch (right padding), plus ``labels`` ``[B,L]`` int64 that are
    ``-100`` everywhere except on the tokens of the assistant answers and the EOS after each.

    How answers are found: the conversation text ends every answer with the EOS token and holds
    no other EOS (a sample where the counts differ raises), so answer ``j`` is the tokens whose
    characters lie in the ``len(" " + answer_j)`` characters just before the ``j``-th EOS. This
    works on the character offsets of any fast tokenizer and is not fooled by BPE merges across
    the prompt/answer boundary: a token that straddles it starts inside the prompt and stays masked.
    """

    def __init__(self, processor):
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is None or not getattr(tokenizer, "is_fast", False):
            raise TypeError("processor must carry a fast tokenizer (character offsets are needed to find the answers)")
        if tokenizer.eos_token_id is None:
            raise ValueError("processor.tokenizer has no eos_token_id; answers are found by the EOS that ends them")
        self.processor = processor
        self.eos_token_id = tokenizer.eos_token_id

    def __call__(self, samples: Sequence[dict[str, Any]]) -> BatchFeature:
        if not samples:
            raise ValueError("samples must hold at least one sample")
        texts = [s["text"] for s in samples]
        media = {key: [item for s in samples for item in s.get(key, [])] for key in ("images", "videos", "audio")}
        batch = self.processor(text=texts, images=media["images"] or None, videos=media["videos"] or None,
                               audio=media["audio"] or None, padding=True, padding_side="right",
                               return_offsets_mapping=True, return_tensors="pt")
        offsets = batch.pop("offset_mapping")
        batch["labels"] = self.labels(batch["input_ids"], batch["attention_mask"], offsets,
                                      [s["answers"] for s in samples], [s.get("id", i) for i, s in enumerate(samples)])
        return batch

    def labels(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, offsets: torch.Tensor,
               answers: Sequence[Sequence[str]], ids: Sequence[Any]) -> torch.Tensor:
        """``input_ids`` / ``attention_mask`` ``[B,L]``, ``offsets`` ``[B,L,2]`` (character spans in the
        expanded text) -> labels ``[B,L]``: ``input_ids`` on answer and EOS tokens, -100 elsewhere."""
        labels = torch.full_like(input_ids, IGNORE_INDEX)
        for row in range(input_ids.shape[0]):
            real = attention_mask[row].bool()  # where pad == eos, padding must not count as an EOS
            eos = ((input_ids[row] == self.eos_token_id) & real).nonzero().flatten().tolist()
            if len(eos) != len(answers[row]):
                raise ValueError(f"sample {ids[row]!r}: {len(eos)} EOS tokens in its text but {len(answers[row])} "
                                 "answers; the text must end each answer with EOS and hold no other EOS string")
            starts = offsets[row, :, 0]
            for position, answer in zip(eos, answers[row], strict=True):
                first_char = int(starts[position]) - len(" " + answer)
                span = (starts >= first_char) & real
                span[position + 1:] = False
                labels[row, span] = input_ids[row, span]
        return labels

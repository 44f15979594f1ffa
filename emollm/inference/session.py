"""Ask a loaded EmoLLM one question about one image, video and/or audio clip, and stream the answer.

    session = Session.load("runs/emollm")                  # or "emollm-tiny"; cuda + bf16 where there is a GPU
    reply = session.ask("How does she feel?", load_media_files(image="face.jpg"))
    for piece in reply:                                    # the answer, token by token
        print(piece, end="", flush=True)
    reply.answer, reply.label, reply.timings

Decoding is greedy unless ``temperature > 0``, so the same question gets the same answer. The
prompt is :func:`emollm.inference.prompt.build_prompt`, the format training uses. ``emollm ask``
and ``emollm serve`` both run through here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from emollm.evaluation.parse import check_label_set
from emollm.inference.media import Media
from emollm.inference.prompt import build_prompt
from emollm.inference.stream import generate_in_thread, text_deltas
from emollm.inference.tasks import default_labels, parse_label

__all__ = ["Reply", "Session", "default_device", "resolve_dtype"]


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str) -> str:
    """``"auto"`` -> ``"bfloat16"`` on CUDA, ``"float32"`` elsewhere; other names unchanged."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if torch.device(device).type == "cuda" else "float32"


@dataclass
class Reply:
    """One answer being generated. Iterate it for the text pieces as they come; afterwards
    ``answer`` (the whole text, stripped), ``label`` (the parsed label when a ``task`` was given),
    ``timings`` (seconds: ``preprocess``, ``first_token``, ``generate``; ``new_tokens``,
    ``tokens_per_s`` after the first token) are set. Iterating a finished reply gives its answer."""

    prompt: str
    task: str | None = None
    labels: Sequence[str] | None = None
    answer: str | None = None
    label: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    _pieces: Iterator[str] | None = None

    def __iter__(self) -> Iterator[str]:
        if self._pieces is None:
            if self.answer is not None:
                yield self.answer
            return
        pieces, self._pieces = self._pieces, None
        text = ""
        for piece in pieces:
            text += piece
            yield piece
        self.answer = text.strip()
        if self.task is not None:
            self.label = parse_label(self.answer, self.task, self.labels)

    def wait(self) -> Reply:
        """Run to the end without consuming the pieces; returns self."""
        for _ in self:
            pass
        return self


class Session:
    """A model and its processor, loaded once, answering one question at a time."""

    def __init__(self, model, processor, *, name: str = "model", load_s: float = 0.0):
        self.model, self.processor, self.name, self.load_s = model.eval(), processor, name, load_s
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype

    @classmethod
    def load(cls, spec: str, *, device: str | None = None, dtype: str = "auto",
             base_model: str | None = None) -> Session:
        """A named set-up (``emollm-tiny``), a folder saved by ``emollm train`` / ``save_pretrained``,
        or a peft adapter folder (over ``base_model`` or its recorded base)."""
        from emollm.evaluation.cli import load_model

        device = device or default_device()
        start = time.perf_counter()
        model, processor = load_model(spec, device=device, dtype=resolve_dtype(dtype, device), base_model=base_model)
        return cls(model, processor, name=spec, load_s=time.perf_counter() - start)

    def inputs(self, prompt: str, media: Media) -> dict[str, torch.Tensor]:
        """The processor's batch of one for ``prompt`` and ``media``, on the model's device, floats in its dtype."""
        rate = self.processor.feature_extractor.sampling_rate
        batch = self.processor(text=[prompt], sampling_rate=rate, return_tensors="pt", **media.processor_inputs())
        return {k: v.to(device=self.device, dtype=self.dtype) if v.is_floating_point() else v.to(self.device)
                for k, v in batch.items()}

    def ask(self, question: str, media: Media | None = None, *, exemplar: str | None = None, task: str | None = None,
            labels: Sequence[str] | None = None, max_new_tokens: int = 64, temperature: float = 0.0,
            top_p: float = 1.0, seed: int = 0) -> Reply:
        """Start answering ``question`` about ``media``; returns a :class:`Reply` to iterate.

        ``exemplar``: EmoPrompt text put before the question. ``task`` (an EmoBench task) makes the
        reply parse its answer to a label of ``labels`` (default: the task's usual label set,
        :func:`~emollm.inference.tasks.default_labels`). ``temperature`` 0 is greedy decoding;
        above 0 samples with ``top_p``, seeded by ``seed``.
        """
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        from emollm.inference.cli import MIN_TEMPERATURE

        if not (math.isfinite(temperature) and (temperature == 0 or temperature >= MIN_TEMPERATURE)):
            raise ValueError(f"temperature must be 0 (greedy) or a finite number >= {MIN_TEMPERATURE}, "
                             f"got {temperature}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {top_p}")
        media = media or Media()
        if task is not None and labels is None:
            labels = default_labels(task)
        if task is not None:
            check_label_set(task, labels)  # here, not after the answer is generated
        prompt = build_prompt(question, media.kinds, exemplar)
        reply = Reply(prompt=prompt, task=task, labels=labels)
        reply._pieces = self._stream(reply, prompt, media, max_new_tokens, temperature, top_p, seed)
        return reply

    def _generate_kwargs(self, max_new_tokens: int, temperature: float, top_p: float) -> dict[str, Any]:
        tokenizer = self.processor.tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {
            "do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        return {"max_new_tokens": max_new_tokens, "num_beams": 1, "pad_token_id": pad, **sampling}

    def _stream(self, reply: Reply, prompt: str, media: Media, max_new_tokens: int, temperature: float,
                top_p: float, seed: int) -> Iterator[str]:
        start = time.perf_counter()
        inputs = self.inputs(prompt, media)
        reply.timings["preprocess"] = time.perf_counter() - start
        if temperature > 0:
            torch.manual_seed(seed)
        start = time.perf_counter()
        # no_grad, not inference_mode: the cpu backend's C++ ops refuse inference tensors.
        tokens, thread = generate_in_thread(torch.no_grad()(self.model.generate), **inputs,
                                            **self._generate_kwargs(max_new_tokens, temperature, top_p))
        count, first = 0, None

        def timed_steps():
            nonlocal count, first
            for step in tokens:
                if first is None:
                    first = time.perf_counter() - start
                count += len(step)
                yield step

        decode = self.processor.tokenizer.decode
        try:
            yield from text_deltas(timed_steps(), lambda ids: decode(ids, skip_special_tokens=True))
        finally:
            thread.join()
        total = time.perf_counter() - start
        reply.timings.update(first_token=first if first is not None else total, generate=total, new_tokens=count)
        decode_s = total - (first or total)
        reply.timings["tokens_per_s"] = (count - 1) / decode_s if count > 1 and decode_s > 0 else 0.0

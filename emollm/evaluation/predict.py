"""Greedy answers of a model to EmoBench records, parsed and scored, written as they come.

Each batch: the Vicuna v1 prompt of every record (:func:`emollm.data.dataset.prompt_text`, with an
EmoPrompt exemplar when a selector is given), its media (:func:`emollm.data.dataset.load_media`),
one processor call with left padding (so every prompt ends where generation starts), one greedy
``model.generate``, the new tokens decoded and parsed (:func:`emollm.evaluation.parse_answer`).
Predictions go to ``predictions.jsonl`` one line per record after every batch; ``resume=True``
keeps the lines already there and answers only the records they lack, so an interrupted run
continues where it stopped.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from emollm._io import NewFolders, write_jsonl_atomic
from emollm.data.dataset import load_media, prompt_text
from emollm.data.jsonl import JsonLines
from emollm.data.records import TASKS, EmoRecord, RecordError
from emollm.evaluation.metrics import make_prediction

__all__ = ["CutOffLineWarning", "ExemplarSource", "predict", "read_predictions"]

# An EmoPrompt exemplar per record: a function of the record (e.g. ExemplarSelector.exemplar_text)
# or a mapping from record id; None / a missing id means no exemplar.
ExemplarSource = Callable[[EmoRecord], str | None] | Mapping[str, str]


# The type of each field a prediction may have (``None``: the field may be null), checked when a
# file is read so that a wrong type is reported at its line instead of failing inside the metrics.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "task": (str,), "source": (str,), "label_set": (list,), "answer": (str,),
    "accept": (list, type(None)), "output": (str,), "parsed": (str, type(None)), "correct": (bool, type(None)),
}


def _check_prediction(pred: Any) -> None:
    """Raises :class:`RecordError` (no file/line) for a prediction of the wrong shape or field types."""
    if not isinstance(pred, dict):
        raise RecordError(f"a prediction must be a JSON object, got {type(pred).__name__}")
    if not isinstance(pred.get("id"), str) or not pred["id"]:
        raise RecordError(f"a prediction needs an 'id' (a non-empty string), got {pred.get('id')!r:.80}")
    for name, types in _FIELD_TYPES.items():
        if name in pred and not isinstance(pred[name], types):
            raise RecordError(f"field {name!r} must be {' or '.join(_TYPE_NAMES[t] for t in types)}, "
                              f"got {type(pred[name]).__name__}")
    if "task" in pred and pred["task"] not in TASKS:
        raise RecordError(f"unknown task {pred['task']!r:.80}; expected one of {TASKS}")
    for name in ("label_set", "accept"):
        if isinstance(pred.get(name), list) and not all(isinstance(v, str) for v in pred[name]):
            raise RecordError(f"field {name!r} must be a list of strings")
    if pred.get("label_set") == []:
        raise RecordError("field 'label_set' must not be empty")


_TYPE_NAMES = {str: "a string", list: "a list", bool: "true or false", type(None): "null"}


class CutOffLineWarning(UserWarning):
    """A predictions file ended in a line cut off by a kill; it was left out."""


def read_predictions(path: str | os.PathLike, *, warn: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """The predictions of a ``predictions.jsonl``; a bad line raises :class:`RecordError` (a
    ``ValueError``) with file and line: not JSON, not an object, a field of the wrong type, an id
    seen before (it would be scored twice).

    A last line without a newline is read like any other when it parses; when it does not, it is
    the line a killed run was writing: it is left out and ``warn`` (default: ``warnings.warn``)
    is told so.
    """
    path = Path(path)
    lines = JsonLines(path, error=RecordError, drop_torn_tail=True)
    predictions: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for lineno, pred in lines:
        try:
            _check_prediction(pred)
        except RecordError as e:
            raise RecordError(e.message, path, lineno) from None
        if pred["id"] in seen:
            raise RecordError(f"id {pred['id']!r:.80} repeats line {seen[pred['id']]}; each record is scored once",
                              path, lineno)
        seen[pred["id"]] = lineno
        predictions.append(pred)
    if lines.torn_tail is not None:
        message = f"{path}:{lines.torn_tail}: left out a cut-off last line (a run was stopped while writing it)"
        (warn or (lambda text: warnings.warn(text, CutOffLineWarning, stacklevel=3)))(message)
    return predictions


def _exemplar_fn(exemplars: ExemplarSource | None) -> Callable[[EmoRecord], str | None]:
    if exemplars is None:
        return lambda record: None
    if isinstance(exemplars, Mapping):
        return lambda record: exemplars.get(record.id)
    if callable(exemplars):
        return exemplars
    raise TypeError(f"exemplars must be a function of a record or a mapping from record id, got "
                    f"{type(exemplars).__name__}")


def _model_inputs(processor, records: Sequence[EmoRecord], base_dir: Path,
                  exemplar: Callable[[EmoRecord], str | None], device: torch.device, dtype: torch.dtype,
                  features: Callable[[EmoRecord], dict] | None = None):
    """One left-padded processor batch for ``records`` on the model's device, floats in its dtype;
    with ``features`` (a record's cached tower outputs), built from those instead of the media."""
    texts = [prompt_text(record, exemplar(record)) for record in records]
    if features is not None:
        from emollm.training.cached_data import cached_batch

        batch = cached_batch(processor, texts, [features(r) for r in records], padding_side="left")
    else:
        rate = processor.feature_extractor.sampling_rate
        images, videos, audio = [], [], []
        for record in records:
            try:
                media = load_media(record, base_dir, sampling_rate=rate)
            except (OSError, ValueError) as e:  # a corrupt or unreadable file: name the record, keep what was answered
                raise RecordError(f"record {record.id!r}: cannot load its media: {e}") from None
            images += media["images"]
            videos += media["videos"]
            audio += media["audio"]
        batch = processor(text=texts, images=images or None, videos=videos or None, audio=audio or None,
                          sampling_rate=rate, padding=True, padding_side="left", return_tensors="pt")
    return {key: value.to(device=device, dtype=dtype) if value.is_floating_point() else value.to(device)
            for key, value in batch.items()}


class _Sink:
    """``predictions.jsonl`` as answers arrive. The first write replaces the file, in one rename,
    with the kept predictions and the first batch; later batches are appended and flushed. So a run
    that fails before its first answer leaves the file as it was (or no file), never an empty one,
    and a kill at any moment loses no finished line."""

    def __init__(self, path: Path, kept: list[dict[str, Any]]):
        self.path, self.kept, self.file = path, kept, None

    def write(self, predictions: list[dict[str, Any]]) -> None:
        if self.file is None:
            NewFolders(self.path.parent).make()
            write_jsonl_atomic(self.path, [*self.kept, *predictions])
            self.file = self.path.open("a", encoding="utf-8")
            return
        self.file.write("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions))
        self.file.flush()

    def finish(self) -> None:
        """After the last batch: a resumed run that had nothing left to answer still gets its file
        rewritten from the kept predictions (a cut-off last line is gone)."""
        if self.file is None and self.kept:
            write_jsonl_atomic(self.path, self.kept)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _check_args(records: Sequence[EmoRecord], batch_size: int, max_new_tokens: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    bad = [type(r).__name__ for r in records if not isinstance(r, EmoRecord)]
    if bad:
        raise TypeError(f"records must be EmoRecord objects (read_jsonl), got {bad[0]}")
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"records must have distinct ids; {dup!r} appears more than once")


@torch.no_grad()  # not inference_mode: the cpu backend's C++ ops fail on inference tensors (torch 2.13)
def predict(model, processor, records: Sequence[EmoRecord], base_dir: str | os.PathLike, *, batch_size: int = 8,
            max_new_tokens: int = 32, exemplars: ExemplarSource | None = None,
            out: str | os.PathLike | None = None, resume: bool = False, progress: bool = True,
            answered: Mapping[str, dict[str, Any]] | None = None, desc: str = "emollm eval",
            features: Callable[[EmoRecord], dict] | None = None) -> list[dict[str, Any]]:
    """Answers ``records`` with ``model`` (greedy decoding) and returns one prediction per record,
    in record order (:func:`~emollm.evaluation.metrics.make_prediction`: id, task, source,
    label_set, answer, accept, output, parsed, correct).

    Args:
        model: an EmoLLM (``EmoLLMForConditionalGeneration`` or a peft model around one), in eval mode.
        processor: its ``EmoLLMProcessor``.
        records: the records to answer (distinct ids).
        base_dir: the folder media paths are relative to (the JSONL's folder).
        batch_size: records per ``generate`` call.
        max_new_tokens: the answer's length limit in tokens.
        exemplars: an EmoPrompt exemplar per record (see :data:`ExemplarSource`).
        out: ``predictions.jsonl`` to write, one line per record after each batch.
        resume: keep the predictions already in ``out`` (those of ids in ``records``) and answer
            the other records only; without it ``out`` is replaced, at the first batch's end.
        progress: show a tqdm progress bar (titled ``desc``).
        answered: predictions made earlier, by id (e.g. found in the shards of an interrupted
            multi-process run): those of ids in ``records`` are kept and written to ``out``, not redone.
        features: a record's cached tower outputs
            (:func:`emollm.training.cached_data.record_features`), used instead of its media.
    """
    _check_args(records, batch_size, max_new_tokens)
    exemplar = _exemplar_fn(exemplars)
    base_dir = Path(base_dir)
    wanted = {r.id for r in records}
    done = {i: p for i, p in (answered or {}).items() if i in wanted}
    if out is not None and resume and Path(out).exists():
        done.update((p["id"], p) for p in read_predictions(out) if p.get("id") in wanted)
    todo = [r for r in records if r.id not in done]

    tokenizer = processor.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    param = next(model.parameters())
    sink = None if out is None else _Sink(Path(out), [done[r.id] for r in records if r.id in done])
    from tqdm.auto import tqdm

    bar = tqdm(total=len(records), initial=len(done), unit="record", desc=desc, disable=not progress)
    try:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            inputs = _model_inputs(processor, chunk, base_dir, exemplar, param.device, param.dtype, features)
            generated = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                       pad_token_id=pad_id)
            answers = processor.batch_decode(generated[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            for record, answer in zip(chunk, answers, strict=True):
                done[record.id] = make_prediction(record, answer.strip())
            if sink is not None:
                sink.write([done[r.id] for r in chunk])
            bar.update(len(chunk))
        if sink is not None:
            sink.finish()
    finally:
        bar.close()
        if sink is not None:
            sink.close()
    return [done[r.id] for r in records]

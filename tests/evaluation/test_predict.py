"""The prediction loop on emollm-tiny (random weights: the answers are noise, but batching, media,
padding, the files and resumption must all work)."""

import importlib
import json
from unittest import mock

import pytest

from emollm.evaluation import is_correct, parse_answer, predict, read_predictions

# The package's `predict` attribute is the function, so fetch the module by name.
predict_module = importlib.import_module("emollm.evaluation.predict")


@pytest.fixture
def spy(tiny):
    """``model.generate`` wrapped: records each call's inputs."""
    model, _ = tiny
    with mock.patch.object(model, "generate", wraps=model.generate) as generate:
        yield generate


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_record_answered_in_order(tiny, media_records, spy, tmp_path):
    model, processor = tiny
    records, folder = media_records
    out = tmp_path / "predictions.jsonl"
    preds = predict(model, processor, records, folder, batch_size=2, max_new_tokens=4, out=out, progress=False)

    assert [p["id"] for p in preds] == [r.id for r in records]
    assert _lines(out) == preds
    assert [call.kwargs["input_ids"].shape[0] for call in spy.call_args_list] == [2, 2, 1]
    for p, r in zip(preds, records, strict=True):
        assert (p["task"], p["source"], p["label_set"], p["answer"]) == (r.task, r.source, r.label_set, r.answer)
        assert isinstance(p["output"], str)
        assert p["parsed"] == parse_answer(p["output"], r.task, r.label_set)
        assert p["correct"] == is_correct(p["parsed"], r.answer, r.accept)
    # The media reached the model: two images and an audio clip in the first batch, etc.
    first, second, third = (call.kwargs for call in spy.call_args_list)
    assert first["pixel_values"].shape[0] == 1 and first["input_features"].shape[0] == 1
    assert second["pixel_values"].shape[0] == 1 and second["input_features"].shape[0] == 1
    assert third["pixel_values"].shape[0] == 1 and "input_features" not in third
    assert all(call.kwargs["do_sample"] is False for call in spy.call_args_list)


def test_left_padding(tiny, media_records, spy):
    model, processor = tiny
    records, folder = media_records
    predict(model, processor, records[2:4], folder, batch_size=2, max_new_tokens=2, progress=False)
    mask = spy.call_args.kwargs["attention_mask"]
    assert mask[:, -1].all()  # every prompt ends where generation starts
    assert not mask[:, 0].all()  # the shorter (text-only) prompt is padded on the left
    assert mask.sum(1).tolist()[0] > mask.sum(1).tolist()[1]


def test_batch_size_does_not_change_answers(tiny, media_records):
    model, processor = tiny
    records, folder = media_records
    one = predict(model, processor, records, folder, batch_size=1, max_new_tokens=4, progress=False)
    all_at_once = predict(model, processor, records, folder, batch_size=5, max_new_tokens=4, progress=False)
    assert [p["output"] for p in one] == [p["output"] for p in all_at_once]


def test_resume_answers_only_the_missing_records(tiny, media_records, spy, tmp_path):
    model, processor = tiny
    records, folder = media_records
    out = tmp_path / "predictions.jsonl"
    full = predict(model, processor, records, folder, batch_size=5, max_new_tokens=3, out=out, progress=False)
    # A run killed after two records, in the middle of writing the third line.
    kept = out.read_text().splitlines()[:2]
    out.write_text("\n".join(kept) + "\n" + kept[0][:25])
    spy.reset_mock()
    resumed = predict(model, processor, records, folder, batch_size=5, max_new_tokens=3, out=out, resume=True,
                      progress=False)
    assert spy.call_count == 1 and spy.call_args.kwargs["input_ids"].shape[0] == 3
    assert resumed == full
    assert _lines(out) == full


def test_without_resume_the_file_is_overwritten(tiny, media_records, tmp_path):
    model, processor = tiny
    records, folder = media_records
    out = tmp_path / "predictions.jsonl"
    out.write_text('{"id": "old"}\n')
    predict(model, processor, records[:1], folder, max_new_tokens=2, out=out, progress=False)
    assert [p["id"] for p in _lines(out)] == ["meld-1"]


@pytest.mark.parametrize("kind", ["mapping", "function"])
def test_exemplars_reach_the_prompt(tiny, media_records, monkeypatch, kind):
    model, processor = tiny
    records, folder = media_records
    seen = {}

    def prompt_text(record, exemplar=None):
        seen[record.id] = exemplar
        return real(record, exemplar)

    real = predict_module.prompt_text
    monkeypatch.setattr(predict_module, "prompt_text", prompt_text)
    by_id = {"mintrec-1": "Example: the speaker waves and says hi. Answer: greet"}
    exemplars = by_id if kind == "mapping" else lambda record: by_id.get(record.id)
    predict(model, processor, records[2:4], folder, batch_size=2, max_new_tokens=2, exemplars=exemplars,
            progress=False)
    assert seen == {"meld-2": None, "mintrec-1": by_id["mintrec-1"]}


def test_read_predictions_drops_only_a_cut_tail(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a"}\n\n{"id": "b"}\n{"id": "c", "out')
    assert read_predictions(path) == [{"id": "a"}, {"id": "b"}]
    path.write_text('{"id": "a"}\n{"id": \n{"id": "c"}\n')
    with pytest.raises(ValueError, match=r"p.jsonl:2: not valid JSON"):
        read_predictions(path)
    path.write_text('[1, 2]\n')
    with pytest.raises(ValueError, match="must be a JSON object"):
        read_predictions(path)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"max_new_tokens": 0}, ValueError, "max_new_tokens"),
    ({"exemplars": 3}, TypeError, "exemplars"),
])
def test_bad_arguments(tiny, media_records, kwargs, error, match):
    model, processor = tiny
    records, folder = media_records
    with pytest.raises(error, match=match):
        predict(model, processor, records, folder, progress=False, **kwargs)


def test_bad_records(tiny, media_records):
    model, processor = tiny
    records, folder = media_records
    with pytest.raises(ValueError, match="distinct ids"):
        predict(model, processor, [records[0], records[0]], folder, progress=False)
    with pytest.raises(TypeError, match="EmoRecord"):
        predict(model, processor, [records[0].to_dict()], folder, progress=False)

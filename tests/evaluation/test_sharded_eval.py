"""Data-parallel evaluation: shards answered by several processes merge into the predictions and
metrics of one process; resumption keeps the answers of an interrupted run of any process count."""

import json
from unittest import mock

import pytest

from emollm.cli import main
from emollm.evaluation import sharding
from tests.evaluation.helpers import MELD, pred
from tests.torchrun import torchrun


def _argv(folder, out, *extra):
    return ["eval", "--model", "emollm-tiny", "--data", str(folder / "test.jsonl"), "--out", str(out),
            "--batch-size", "2", "--max-new-tokens", "3", "--bootstrap", "50", "--no-progress", "--device", "cpu",
            *extra]


def _without_meta(path):
    metrics = json.loads(path.read_text())
    metrics.pop("meta")
    return metrics


@pytest.mark.slow
def test_torchrun_two_processes_give_one_process_predictions_and_metrics(media_records, tmp_path):
    records, folder = media_records
    assert main(_argv(folder, tmp_path / "one")) == 0
    done = torchrun(_argv(folder, tmp_path / "two"))

    one, two = tmp_path / "one", tmp_path / "two"
    assert (two / "predictions.jsonl").read_text() == (one / "predictions.jsonl").read_text()
    ids = [json.loads(line)["id"] for line in (two / "predictions.jsonl").read_text().splitlines()]
    assert ids == [r.id for r in records]  # record order, each once
    assert _without_meta(two / "metrics.json") == _without_meta(one / "metrics.json")
    assert json.loads((two / "metrics.json").read_text())["meta"]["processes"] == 2
    assert not list(two.glob("predictions.rank*"))  # the shards are merged and gone
    assert done.stdout.count("## Table 2") == 1  # process 0 reports, once


def test_resume_keeps_the_answers_of_an_interrupted_multi_process_run(tiny, media_records, tmp_path):
    _, folder = media_records
    full = tmp_path / "full"
    assert main(_argv(folder, full)) == 0
    answers = [json.loads(line) for line in (full / "predictions.jsonl").read_text().splitlines()]

    # A two-process run killed mid-way: rank 0 answered records 0-1 of its share 0-2, rank 1 record 3
    # and was cut off writing record 4.
    out = tmp_path / "cut"
    out.mkdir()
    (out / "predictions.rank0.jsonl").write_text("".join(json.dumps(p) + "\n" for p in answers[:2]))
    (out / "predictions.rank1.jsonl").write_text(json.dumps(answers[3]) + "\n" + json.dumps(answers[4])[:30])
    with mock.patch("emollm.evaluation.cli.load_model", return_value=tiny) as load, \
            mock.patch.object(tiny[0], "generate", wraps=tiny[0].generate) as generate:
        assert main(_argv(folder, out, "--resume")) == 0
    assert load.call_count == 1
    assert sum(call.kwargs["input_ids"].shape[0] for call in generate.call_args_list) == 2  # records 2 and 4
    assert (out / "predictions.jsonl").read_text() == (full / "predictions.jsonl").read_text()
    assert not list(out.glob("predictions.rank*"))


def test_merge_orders_by_record_and_refuses_duplicates_and_gaps(media_records, tmp_path):
    records, _ = media_records
    preds = [pred(r.id, r.task, r.source, r.label_set, r.answer, "x", None) for r in records]
    write = lambda rank, items: sharding.shard_path(tmp_path, rank).write_text(  # noqa: E731
        "".join(json.dumps(p) + "\n" for p in items))
    write(0, [preds[3], preds[0]])
    write(1, [preds[4], preds[1], preds[2]])
    write(2, [preds[0]])  # stale: an earlier run with three processes
    merged = sharding.merge_shards(tmp_path, records, world_size=2)
    assert [p["id"] for p in merged] == [r.id for r in records]
    assert not list(tmp_path.glob("predictions.rank*"))

    write(0, preds[:3])
    write(1, preds[2:4])
    with pytest.raises(RuntimeError, match="answered twice"):
        sharding.merge_shards(tmp_path, records, world_size=2)
    write(1, preds[3:4])
    with pytest.raises(RuntimeError, match="1 record\\(s\\) have no prediction"):
        sharding.merge_shards(tmp_path, records, world_size=2)


def test_answered_reads_the_merged_file_and_every_shard(tmp_path, media_records):
    records, _ = media_records
    a, b = (pred(r.id, r.task, r.source, MELD if r.task == "emo-c" else r.label_set, r.answer, "x", None)
            for r in records[:2])
    (tmp_path / "predictions.jsonl").write_text(json.dumps(a) + "\n")
    sharding.shard_path(tmp_path, 3).write_text(json.dumps(b) + "\n" + json.dumps({"id": "other"}) + "\n")
    assert set(sharding.answered(tmp_path, records)) == {a["id"], b["id"]}

"""Hostile and careless input to ``emollm eval``: a clear one-line error or a right result; never a
traceback, a silently wrong score, replaced predictions, or an empty file or folder after a failure."""

import json

import pytest
from PIL import Image

from emollm.cli import main
from emollm.data.records import write_jsonl
from tests.bad_input_helpers import error_lines
from tests.evaluation.conftest import _record
from tests.evaluation.helpers import MELD, YN, pred


def _write(path, preds, tail=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(p) + "\n" for p in preds) + tail)


def _error(capsys) -> str:
    (line,) = error_lines(capsys.readouterr().err, "emollm eval: ")  # transformers may add a warning
    return line


RIGHT = pred("a", "humor", "smile", YN, "yes", "Yes, it is funny.", "yes")
WRONG = pred("b", "humor", "smile", YN, "no", "Yes.", "yes")


# ---- reading ----

def test_a_whole_last_line_without_newline_is_scored(tmp_path):
    source = tmp_path / "old" / "predictions.jsonl"
    _write(source, [RIGHT], tail=json.dumps(WRONG))  # 50% right; the wrong answer is the unterminated line
    assert main(["eval", "--predictions", str(source), "--out", str(tmp_path / "new")]) == 0
    metrics = json.loads((tmp_path / "new" / "metrics.json").read_text())
    assert (metrics["overall"]["count"], metrics["overall"]["micro"]) == (2, 0.5)


def test_a_cut_off_last_line_is_left_out_and_said(tmp_path, capsys):
    source = tmp_path / "old" / "predictions.jsonl"
    _write(source, [RIGHT, WRONG], tail='{"id": "c", "ta')
    assert main(["eval", "--predictions", str(source), "--out", str(tmp_path / "new")]) == 0
    assert f"{source}:3: left out a cut-off last line" in capsys.readouterr().err
    assert json.loads((tmp_path / "new" / "metrics.json").read_text())["overall"]["count"] == 2


def test_a_repeated_id_is_reported_not_scored_twice(tmp_path, capsys):
    source = tmp_path / "p.jsonl"
    _write(source, [RIGHT, WRONG, RIGHT])
    assert main(["eval", "--predictions", str(source), "--out", str(tmp_path / "new")]) == 2
    assert f"{source}:3: id 'a' repeats line 1" in _error(capsys)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(("field", "value", "message"), [
    ("label_set", 5, "field 'label_set' must be a list"),
    ("output", 5, "field 'output' must be a string"),
    ("accept", [1], "field 'accept' must be a list of strings"),
    ("parsed", ["yes"], "field 'parsed' must be a string or null"),
])
def test_a_field_of_the_wrong_type_is_named_with_file_and_line(tmp_path, capsys, field, value, message):
    source = tmp_path / "p.jsonl"
    _write(source, [RIGHT, {**WRONG, field: value}])
    assert main(["eval", "--predictions", str(source), "--out", str(tmp_path / "new")]) == 2
    assert f"{source}:2: {message}" in _error(capsys)


# ---- --config ----

@pytest.mark.parametrize(("content", "message"), [
    ("batch_size: [1, 2\n  x: :\n", "c.yaml:2: not valid YAML: "),
    (b"batch_size: 8 # caf\xe9\n", "c.yaml: not UTF-8 text (byte 0xe9 at offset 19)"),
    ("batch_size: eight\n", "c.yaml: batch_size must be an integer, got 'eight'"),
    ("batch_size: true\n", "c.yaml: batch_size must be an integer, got True"),
    ("limit: 2.5\n", "c.yaml: limit must be an integer or null, got 2.5"),
    ("dtype: [float32]\n", "c.yaml: dtype must be a string, got ['float32']"),
    ("1: x\n", "c.yaml: setting names are words, got 1"),
    ("- batch_size\n", "c.yaml: expected a mapping of settings, got list"),
    ("bootstrap_seed: -1\n", "--bootstrap-seed must be at least 0, got -1"),
])
def test_a_bad_config_file_or_value_is_one_line_naming_it(tmp_path, capsys, content, message):
    config = tmp_path / "c.yaml"
    config.write_bytes(content if isinstance(content, bytes) else content.encode())
    _write(tmp_path / "p.jsonl", [RIGHT])
    assert main(["eval", "--predictions", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "new"),
                 "--config", str(config)]) == 2
    assert message in _error(capsys) and not (tmp_path / "new").exists()


def test_a_folder_given_as_config_is_called_a_folder(tmp_path, capsys):
    _write(tmp_path / "p.jsonl", [RIGHT])
    assert main(["eval", "--predictions", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "new"),
                 "--config", str(tmp_path)]) == 2
    assert f"--config {tmp_path}: a folder, not a file" in _error(capsys)


# ---- atomic outputs ----

def test_a_failure_while_drawing_keeps_the_old_chart(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    out = tmp_path / "out"
    source = out / "predictions.jsonl"  # re-scored in place
    _write(source, [RIGHT, WRONG])
    assert main(["eval", "--predictions", str(source), "--out", str(out)]) == 0
    chart = (out / "accuracy.png").read_bytes()
    written = sorted(p.name for p in out.iterdir())  # the charts, metrics and report of a good run
    assert {"accuracy.png", "metrics.json", "predictions.jsonl", "report.md"} <= set(written)

    def savefig_then_fail(self, target, *args, **kwargs):
        with open(target, "wb") if isinstance(target, str | bytes) or hasattr(target, "__fspath__") else \
                _NoClose(target) as f:
            f.write(chart[:100])  # half a picture, then the disk is full
        raise OSError("No space left on device")

    monkeypatch.setattr(Figure, "savefig", savefig_then_fail)
    assert main(["eval", "--predictions", str(source), "--out", str(out)]) == 2  # "No space left on device"
    assert "No space left on device" in capsys.readouterr().err
    assert (out / "accuracy.png").read_bytes() == chart
    assert sorted(p.name for p in out.iterdir()) == written  # nothing added, nothing half-written left


class _NoClose:
    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self.f

    def __exit__(self, *exc):
        return False


# ---- existing predictions are never replaced silently ----

def test_predictions_in_out_need_resume_or_overwrite(tmp_path, media_records, capsys):
    _, folder = media_records
    out = tmp_path / "eval"
    _write(out / "predictions.jsonl", [RIGHT])
    kept = (out / "predictions.jsonl").read_text()
    other = tmp_path / "other.jsonl"
    _write(other, [WRONG])
    assert main(["eval", "--predictions", str(other), "--out", str(out)]) == 2
    assert "pass --overwrite" in _error(capsys)
    assert main(["eval", "--model", "emollm-tiny", "--data", str(folder / "test.jsonl"), "--out", str(out),
                 "--limit", "1", "--max-new-tokens", "1", "--no-progress", "--device", "cpu"]) == 2
    assert "pass --resume" in _error(capsys) and (out / "predictions.jsonl").read_text() == kept
    assert main(["eval", "--predictions", str(other), "--out", str(out), "--overwrite"]) == 0
    assert [json.loads(line)["id"] for line in (out / "predictions.jsonl").read_text().splitlines()] == ["b"]


def test_a_shard_left_by_a_killed_run_needs_resume_or_overwrite(tmp_path, media_records, capsys):
    records, folder = media_records
    out = tmp_path / "eval"
    first = pred(records[0].id, "emo-c", "meld", MELD, "joy", "joy", "joy")
    _write(out / "predictions.rank0.jsonl", [first])  # a run killed after its first batch
    kept = (out / "predictions.rank0.jsonl").read_text()
    argv = ["eval", "--model", "emollm-tiny", "--data", str(folder / "test.jsonl"), "--out", str(out),
            "--limit", "2", "--max-new-tokens", "1", "--no-progress", "--device", "cpu"]
    assert main(argv) == 2
    assert f"{out / 'predictions.rank0.jsonl'} holds answers of an interrupted run; pass --resume" in _error(capsys)
    assert (out / "predictions.rank0.jsonl").read_text() == kept
    assert main([*argv, "--resume"]) == 0
    answers = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert answers[0] == first and len(answers) == 2 and not (out / "predictions.rank0.jsonl").exists()


def test_resume_with_a_smaller_limit_keeps_a_shard_whole(tmp_path, media_records, capsys):
    # A shard holding answers to records this run does not answer (a smaller --limit) would lose
    # them in the merge: refused, as for a finished predictions.jsonl.
    records, folder = media_records
    out = tmp_path / "eval"
    answers = [pred(r.id, "emo-c", "meld", MELD, "joy", "joy", "joy") for r in records[:3]]
    _write(out / "predictions.rank0.jsonl", answers)
    kept = (out / "predictions.rank0.jsonl").read_text()
    argv = ["eval", "--model", "emollm-tiny", "--data", str(folder / "test.jsonl"), "--out", str(out),
            "--limit", "1", "--max-new-tokens", "1", "--no-progress", "--device", "cpu", "--resume"]
    assert main(argv) == 2
    assert "resuming would drop them" in _error(capsys)
    assert (out / "predictions.rank0.jsonl").read_text() == kept


def test_ctrl_c_keeps_the_answers_and_says_how_to_continue(tmp_path, media_records, tiny, monkeypatch, capsys):
    _, folder = media_records
    model, processor = tiny
    generate, calls = model.generate, []

    def generate_then_ctrl_c(*args, **kwargs):  # the user presses Ctrl-C during the second batch
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return generate(*args, **kwargs)

    monkeypatch.setattr(model, "generate", generate_then_ctrl_c)
    monkeypatch.setattr("emollm.evaluation.cli.load_model", lambda *args, **kwargs: (model, processor))
    out = tmp_path / "eval"
    argv = ["eval", "--model", "emollm-tiny", "--data", str(folder / "test.jsonl"), "--out", str(out),
            "--batch-size", "2", "--max-new-tokens", "1", "--no-progress", "--device", "cpu"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip() == "emollm eval: interrupted; the answers so far are kept: rerun with --resume to continue"
    assert len((out / "predictions.rank0.jsonl").read_text().splitlines()) == 2  # the first batch
    assert main(argv) == 2 and "pass --resume" in _error(capsys)
    assert main([*argv, "--resume"]) == 0 and len(calls) == 4  # the two batches left, nothing redone
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 5


def test_resume_refuses_a_file_with_answers_to_other_records(tmp_path, media_records, capsys):
    _, folder = media_records
    out = tmp_path / "eval"
    _write(out / "predictions.jsonl", [pred("someone-else", "emo-c", "meld", MELD, "joy", "joy", "joy")])
    assert main(["eval", "--model", "emollm-tiny", "--data", str(folder / "test.jsonl"), "--out", str(out),
                 "--resume", "--no-progress", "--device", "cpu"]) == 2
    assert "resuming would drop them" in _error(capsys)
    assert "someone-else" in (out / "predictions.jsonl").read_text()


# ---- failed runs leave nothing behind ----

def test_a_failed_run_leaves_no_empty_predictions_or_folder(tmp_path, capsys):
    folder = tmp_path / "data"
    (folder / "img").mkdir(parents=True)
    (folder / "img" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # exists, does not decode
    media = [{"type": "image", "path": "img/broken.png"}]
    write_jsonl([_record("meld-1", "emo-c", MELD, "joy", media, "Which emotion?")], folder / "test.jsonl")
    out = tmp_path / "runs" / "eval"
    assert main(["eval", "--model", "emollm-tiny", "--data", str(folder / "test.jsonl"), "--out", str(out),
                 "--no-progress", "--device", "cpu"]) == 2
    assert "record 'meld-1': cannot load its media" in _error(capsys)
    assert not (tmp_path / "runs").exists()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert main(["eval", "--predictions", str(empty), "--out", str(out)]) == 2
    assert "holds no predictions" in _error(capsys) and not (tmp_path / "runs").exists()


# ---- confinement ----

def test_media_outside_the_data_folder_need_a_flag(tmp_path, capsys):
    Image.new("RGB", (8, 8)).save(tmp_path / "outside.png")
    folder = tmp_path / "data"
    media = [{"type": "image", "path": "../outside.png"}]
    write_jsonl([_record("meld-1", "emo-c", MELD, "joy", media, "Which emotion?")], folder / "test.jsonl")
    argv = ["eval", "--model", "emollm-tiny", "--data", str(folder / "test.jsonl"), "--out", str(tmp_path / "eval"),
            "--max-new-tokens", "1", "--no-progress", "--device", "cpu"]
    assert main(argv) == 2
    assert f"{folder / 'test.jsonl'}:1: image path '../outside.png' lies outside the data folder" in _error(capsys)
    assert not (tmp_path / "eval").exists()
    assert main([*argv, "--allow-outside-media"]) == 0

"""``emollm data build|stats|synth``: outputs and exit codes."""

import json
import subprocess
import sys
import types

import pytest
from PIL import Image

from emollm import cli
from emollm.data.records import read_jsonl, write_jsonl


def caer_root(tmp_path):
    root = tmp_path / "CAER-S"
    for folder, name in (("Happy", "0001"), ("Happy", "0002"), ("Sad", "0003")):
        path = root / "train" / folder / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(path)
    return root


def record(rid, task, source, answer, label_set):
    return {"id": rid, "task": task, "source": source, "label_set": label_set, "answer": answer,
            "media": [{"type": "image", "path": "x.png"}],
            "conversations": [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": answer}]}


def test_build_writes_records_and_reports(tmp_path, capsys):
    out = tmp_path / "caer.jsonl"
    code = cli.main(["data", "build", "--source", "caer-s", "--root", str(caer_root(tmp_path)), "--split", "train",
                     "--out", str(out), "--seed", "2", "--no-progress"])
    assert code == 0
    assert f"wrote 6 record(s) of caer-s/train to {out} (emo-c 3, emo-o 3)" in capsys.readouterr().out
    assert [r.answer for r in read_jsonl(out, check_media=True)] == ["happy"] * 4 + ["sad"] * 2


def test_build_with_bad_items_exits_1_and_skip_bad_counts_them(tmp_path, capsys):
    root = caer_root(tmp_path)
    stray = root / "train" / "Bored" / "0009.png"
    stray.parent.mkdir()
    stray.write_bytes(b"")
    out = tmp_path / "caer.jsonl"
    args = ["data", "build", "--source", "caer-s", "--root", str(root), "--split", "train", "--out", str(out),
            "--no-progress"]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "1 bad item(s) in caer-s/train" in err and f"{stray}: unknown label folder 'Bored'" in err
    assert not out.exists()
    assert cli.main([*args, "--skip-bad", "--limit", "4", "--task", "emo-c"]) == 0
    assert "wrote 3 record(s) of caer-s/train" in (printed := capsys.readouterr().out)
    assert "skipped 1 bad item(s)" in printed and str(stray) in printed
    assert {r.task for r in read_jsonl(out)} == {"emo-c"}


def test_build_argument_errors_exit_2(tmp_path, capsys):
    root = caer_root(tmp_path)
    base = ["data", "build", "--source", "caer-s", "--out", str(tmp_path / "o.jsonl"), "--no-progress"]
    assert cli.main([*base, "--root", str(root), "--split", "dev"]) == 2
    assert "split 'dev' is not one of caer-s's splits ('train', 'test')" in capsys.readouterr().err
    assert cli.main([*base, "--root", str(root), "--split", "test"]) == 2  # no test/ folder in this root
    assert "CAER-S split folder not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # argparse: unknown source, choices listed
        cli.main(["data", "build", "--source", "fer", "--root", str(root), "--split", "train", "--out", "o.jsonl"])
    assert info.value.code == 2 and "emotic" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([*base, "--root", str(root), "--split", "train", "--limit", "0"])
    assert "must be at least 1" in capsys.readouterr().err


def test_stats_counts_per_task_source_and_label(tmp_path, capsys):
    yes_no = ["yes", "no"]
    emotions = ["joy", "sadness"]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl([record("1", "emo-c", "meld", "joy", emotions), record("2", "emo-c", "meld", "joy", emotions),
                 record("3", "emo-o", "meld", "sadness", emotions)], a)
    write_jsonl([record("4", "hate", "mmhs150k", "no", yes_no)], b)
    assert cli.main(["data", "stats", str(a), str(b)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "4 record(s) in 2 file(s)"
    rows = [line.split() for line in lines[1:] if line.strip()]
    # Hand-counted: 2 emo-c, 1 emo-o, 1 hate; 3 meld, 1 mmhs150k; labels per (task, source).
    assert rows == [
        ["task", "records", "share"], ["emo-c", "2", "50.0%"], ["emo-o", "1", "25.0%"], ["hate", "1", "25.0%"],
        ["source", "records", "share"], ["meld", "3", "75.0%"], ["mmhs150k", "1", "25.0%"],
        ["task", "source", "label", "records", "share"], ["emo-c", "meld", "joy", "2", "50.0%"],
        ["emo-o", "meld", "sadness", "1", "25.0%"], ["hate", "mmhs150k", "no", "1", "25.0%"],
    ]


def test_stats_fails_on_a_malformed_line_with_file_and_line(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    good = json.dumps(record("1", "emo-c", "meld", "joy", ["joy", "sadness"]))
    path.write_text(good + "\n" + '{"id": "2", "task": "emo-c"\n')
    assert cli.main(["data", "stats", str(path)]) == 1
    assert f"{path}:2: not valid JSON" in capsys.readouterr().err
    path.write_text(good + "\n\n" + json.dumps(record("3", "emo-c", "meld", "anger", ["joy", "sadness"])) + "\n")
    assert cli.main(["data", "stats", str(path)]) == 1
    assert f"{path}:3: answer 'anger' is not in the label set" in capsys.readouterr().err
    assert cli.main(["data", "stats", str(tmp_path / "none.jsonl")]) == 2


def test_stats_refuses_a_binary_file_by_name(tmp_path, capsys):
    # An image passed where a JSONL belongs: a one-line error naming it, not a UnicodeDecodeError.
    path = tmp_path / "photo.png"
    Image.new("RGB", (8, 8)).save(path)
    assert cli.main(["data", "stats", str(path)]) == 1
    assert f"{path}:1: not UTF-8 text (byte 0x89 at byte 1 of the line)" in capsys.readouterr().err


def test_synth_passes_only_the_given_sizes(tmp_path, monkeypatch, capsys):
    calls = []

    def write_synthetic(out_dir, **kwargs):
        calls.append((str(out_dir), kwargs))
        return {"train": tmp_path / "train.jsonl", "test": tmp_path / "test.jsonl"}

    monkeypatch.setitem(sys.modules, "emollm.data.synth", types.SimpleNamespace(write_synthetic=write_synthetic))
    assert cli.main(["data", "synth", "--out", str(tmp_path)]) == 0
    assert cli.main(["data", "synth", "--out", str(tmp_path), "--train", "12", "--test", "6", "--seed", "4"]) == 0
    assert calls == [(str(tmp_path), {}), (str(tmp_path), {"n_train": 12, "n_test": 6, "seed": 4})]
    assert f"wrote {tmp_path / 'train.jsonl'} and {tmp_path / 'test.jsonl'}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["data", "synth", "--out", str(tmp_path), "--train", "0"])


def test_module_entry_point_returns_the_exit_code(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("not json\n")
    done = subprocess.run([sys.executable, "-m", "emollm", "data", "stats", str(path)], capture_output=True, text=True)
    assert done.returncode == 1 and f"{path}:1: not valid JSON" in done.stderr


@pytest.mark.parametrize(("field", "value", "message"), [
    ("label_set", "joy", "'label_set' must be a non-empty list"),  # a string would pass `in` as a substring
    ("label_set", [["joy"]], "'label_set' must be a non-empty list"),
    ("accept", "joy", "'accept' must be a list"),
    ("media", ["x.png"], "'media' must be a list of objects"),
    ("conversations", ["<image>\nQ?", "joy"], "'conversations' must alternate"),
])
def test_stats_reports_wrongly_typed_fields_with_file_and_line(tmp_path, capsys, field, value, message):
    path = tmp_path / "typed.jsonl"
    path.write_text(json.dumps({**record("1", "emo-c", "meld", "joy", ["joy", "sadness"]), field: value}) + "\n")
    assert cli.main(["data", "stats", str(path)]) == 1
    assert f"{path}:1: {message}" in capsys.readouterr().err

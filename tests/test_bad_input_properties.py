"""Property-based bad input: the record readers and the CLI's argument paths, on generated input.

Properties:

- every reader (records, instructions, exemplar stores, predictions) either returns valid data or
  raises its error class with ``file:line`` (or ``file:``) in front, whatever the bytes;
- the last-line rule: a whole line is data with or without its final newline; a line cut short
  by a kill is dropped by a resuming reader and reported by the others;
- ``emollm <command> ...`` with hostile arguments ends with exit code 0, 1 or 2 (argparse's
  ``SystemExit(2)`` included), never another exception, and never writes outside its folder.

Example counts come from the hypothesis profile in conftest.py (20 here, 40 in CI); nothing
here loads a model, and the one command that talks HTTP points at a closed port with no retries.
"""

import contextlib
import json
import os
import socket
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emollm.cli import main
from emollm.data.dataset import read_instructions
from emollm.data.jsonl import JsonLines
from emollm.data.records import RecordError, read_jsonl
from emollm.evaluation.predict import read_predictions
from emollm.prompting.store import StoreError, load_store

GOOD_RECORD = {"id": "r1", "task": "humor", "source": "s", "label_set": ["yes", "no"], "answer": "yes",
               "media": [], "conversations": [{"from": "human", "value": "Funny?"}, {"from": "gpt", "value": "yes"}]}
GOOD_EXEMPLAR = {"id": "r1", "task": "humor", "source": "s", "question": "Funny?", "label": "yes", "rationale": "r"}
GOOD_PREDICTION = {"id": "r1", "task": "humor", "source": "s", "label_set": ["yes", "no"], "answer": "yes",
                   "output": "yes", "parsed": "yes"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


@contextlib.contextmanager
def file_with(data: bytes):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input.jsonl"
        path.write_bytes(data)
        yield path


READERS = {
    "records": (lambda p: list(read_jsonl(p, confine_media=True)), RecordError),
    "instructions": (lambda p: read_instructions(p, confine_media=True), RecordError),
    "store": (lambda p: load_store(p, confine_media=True), StoreError),
    "predictions": (lambda p: read_predictions(p, warn=lambda message: None), RecordError),
}


def _read_or_clear_error(reader: str, path: Path) -> None:
    read, error = READERS[reader]
    try:
        read(path)
    except error as e:
        assert str(e).startswith(f"{path}:"), str(e)
        assert "\n" not in str(e)


lines = st.lists(st.binary(max_size=120), max_size=5)


@pytest.mark.parametrize("reader", list(READERS))
@given(raw=lines, bom=st.booleans(), final_newline=st.booleans())
def test_any_bytes_are_read_or_refused_with_file_and_line(reader, raw, bom, final_newline):
    data = (b"\xef\xbb\xbf" if bom else b"") + b"\n".join(raw) + (b"\n" if final_newline else b"")
    with file_with(data) as path:
        _read_or_clear_error(reader, path)


GOOD = {"records": GOOD_RECORD, "instructions": GOOD_RECORD, "store": GOOD_EXEMPLAR, "predictions": GOOD_PREDICTION}


@pytest.mark.parametrize("reader", list(READERS))
@given(data=st.data())
def test_any_field_of_any_json_type_is_read_or_refused(reader, data):
    good = GOOD[reader]
    field = data.draw(st.sampled_from([*good, "meta", "text", "accept", "media", "embedding", "unknown"]))
    value = data.draw(json_values)
    line = json.dumps({**good, "id": "r2", field: value} if field != "id" else {**good, "id": value})
    with file_with((json.dumps(good) + "\n" + line + "\n").encode()) as path:
        _read_or_clear_error(reader, path)


@given(count=st.integers(1, 5), cut=st.floats(0.0, 1.0, exclude_max=True), final_newline=st.booleans())
def test_the_last_line_rule(count, cut, final_newline):
    rows = [{**GOOD_RECORD, "id": f"r{i}"} for i in range(count)]
    text = "\n".join(json.dumps(r) for r in rows)
    with file_with((text + ("\n" if final_newline else "")).encode()) as path:
        assert [r.id for r in read_jsonl(path)] == [r["id"] for r in rows]  # whole: data either way
    last = json.dumps(rows[-1])
    torn = text[: len(text) - len(last)] + last[: int(cut * len(last))]  # the last line cut short
    with file_with(torn.encode()) as path:
        reader = JsonLines(path, drop_torn_tail=True)
        kept = [value["id"] for _, value in reader]
        assert kept == [r["id"] for r in rows[:-1]]
        assert reader.torn_tail == (count if int(cut * len(last)) else None)
        if reader.torn_tail:
            with pytest.raises(RecordError, match=rf"{path}:{count}: the last line is cut off"):
                list(read_jsonl(path))


# ---- the CLI's argument paths ----

def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


# Outputs stay inside the sandbox ("/" or ".." would be legitimate places to write to); inputs may be anywhere.
HOSTILE_OUT = ["", "-", "--", " ", "x", "folder", "notes.txt", "notes.txt/under", "missing.jsonl", "records.jsonl",
               "store.jsonl", "predictions.jsonl", "/dev/null", "/dev/zero", "-1", "0", "1e309", "nan",
               "99999999999999999999999", "ünïcødé.jsonl", "a" * 300, "--help-me", "folder/../x"]
paths = st.sampled_from(HOSTILE_OUT)
inputs = st.sampled_from([*HOSTILE_OUT, "/", "..", "/etc/hostname", "/proc/self/status"])
numbers = st.sampled_from(["-1", "0", "1", "2", "abc", "", "1e309", "nan", "inf", "99999999999999999999999", "6"])


def _commands(url: str):
    return st.one_of(
        st.tuples(st.just(["data", "stats"]), st.lists(inputs, min_size=1, max_size=3)).map(lambda t: t[0] + t[1]),
        st.builds(lambda root, split, out, limit, source: ["data", "build", "--source", source, "--root", root,
                                                          "--split", split, "--out", out, "--limit", limit,
                                                          "--no-progress"],
                  inputs, st.sampled_from(["train", "test", "", "../x"]), paths, numbers,
                  st.sampled_from(["caer-s", "emotic", "mmsd2"])),
        st.builds(lambda out, train, test: ["data", "synth", "--out", out, "--train", train, "--test", test],
                  paths, st.sampled_from(["-1", "0", "6", "abc", "1e3", "99999999999"]),
                  st.sampled_from(["1", "6", "", "nan"])),
        st.builds(lambda data, out, per_task, rate, timeout, frames: [
            "prompts", "generate", "--data", data, "--out", out, "--base-url", url, "--model", "m", "--per-task",
            per_task, "--rate", rate, "--timeout", timeout, "--frames", frames, "--max-retries", "0",
            "--max-unreachable", "1", "--no-progress"], inputs, paths, numbers, numbers, numbers, numbers),
        st.builds(lambda store: ["prompts", "show", store], inputs),
        st.builds(lambda predictions, out, extra: ["eval", "--predictions", predictions, "--out", out, *extra],
                  inputs, paths, st.sampled_from([[], ["--overwrite"], ["--resume"], ["--max-unparseable", "-1"]])),
    )


def _sandbox(folder: Path) -> None:
    (folder / "folder").mkdir()
    (folder / "notes.txt").write_text("mine\n")
    (folder / "records.jsonl").write_text(json.dumps(GOOD_RECORD) + "\n")
    (folder / "store.jsonl").write_text(json.dumps(GOOD_EXEMPLAR) + "\n")
    (folder / "predictions.jsonl").write_text(json.dumps(GOOD_PREDICTION) + "\n")


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hostile_arguments_end_in_an_exit_code_not_an_exception(data, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-property-test")
    argv = data.draw(_commands(_closed_port_url()))
    with tempfile.TemporaryDirectory() as base:
        folder = Path(base) / "sandbox"
        folder.mkdir()
        _sandbox(folder)
        with contextlib.chdir(folder):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse refusing an argument
                code = e.code
        captured = capsys.readouterr()
        assert code in (0, 1, 2), (argv, code)
        assert "Traceback" not in captured.err, (argv, captured.err)
        assert "sk-property-test" not in captured.out + captured.err
        assert (folder / "notes.txt").read_text() == "mine\n"
        assert os.listdir(base) == ["sandbox"]  # nothing written next to the sandbox ("..")

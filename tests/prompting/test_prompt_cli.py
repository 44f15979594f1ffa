import json
import subprocess
import sys
import time

import pytest

from emollm.cli import main
from emollm.prompting.store import Exemplar, load_store, save_store
from tests.prompting.helpers import Reply


def generate_args(data, out, server, *extra: str) -> list[str]:
    return ["prompts", "generate", "--data", str(data), "--out", str(out), "--base-url", server.url,
            "--model", "test-model", "--backoff", "0.01", "--no-progress", *extra]


def test_generate_with_the_key_from_the_named_variable(dataset, server, tmp_path, monkeypatch, capsys):
    data, records = dataset
    monkeypatch.setenv("EMOLLM_TEST_KEY", "sk-from-env")
    out = tmp_path / "store.jsonl"
    assert main(generate_args(data, out, server, "--api-key-env", "EMOLLM_TEST_KEY")) == 0
    assert {s.headers["Authorization"] for s in server.seen} == {"Bearer sk-from-env"}
    assert [e.id for e in load_store(out)] == [r.id for r in records]
    assert "6 exemplars written, 0 already there, 0 failed" in capsys.readouterr().out


def test_generate_without_a_key_says_so(dataset, server, tmp_path, monkeypatch, capsys):
    data, _ = dataset
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(generate_args(data, tmp_path / "s.jsonl", server, "--per-task", "1")) == 0
    assert "$OPENAI_API_KEY is not set" in capsys.readouterr().err
    assert all("Authorization" not in s.headers for s in server.seen)
    assert sorted(e.task for e in load_store(tmp_path / "s.jsonl")) == ["emo-c", "sarcasm"]


def test_generate_reports_failures_and_exits_1(dataset, server, tmp_path, capsys):
    data, records = dataset
    server.script = [Reply(500, "down")] * 2
    assert main(generate_args(data, tmp_path / "s.jsonl", server, "--max-retries", "1")) == 1
    err = capsys.readouterr().err
    assert f"failed {records[0].id}: APIError: gave up after 2 attempts" in err and "rerun the same command" in err
    server.script = [Reply(401, "no")]
    assert main(generate_args(data, tmp_path / "s.jsonl", server)) == 2
    assert "stopped: HTTP 401" in capsys.readouterr().err


def test_generate_bad_input(dataset, server, tmp_path, capsys):
    data, _ = dataset
    bad = tmp_path / "bad.jsonl"
    bad.write_text(data.read_text().splitlines()[0] + "\n{oops\n")
    assert main(generate_args(bad, tmp_path / "s.jsonl", server)) == 2
    assert f"{bad}:2: not valid JSON" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(generate_args(data, tmp_path / "s.jsonl", server, "--rate", "0"))
    assert "must be a number from 0.001 to 1000" in capsys.readouterr().err


def test_killed_run_resumes_without_duplicates_or_losses(dataset, server, tmp_path):
    data, records = dataset
    out = tmp_path / "store.jsonl"
    server.delay = 0.3  # slow replies: the kill lands in the middle of the run
    proc = subprocess.Popen([sys.executable, "-m", "emollm", *generate_args(data, out, server)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 2):
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    done = {json.loads(line)["id"] for line in out.read_text().splitlines() if line.endswith("}")}
    assert 2 <= len(done) < len(records)

    server.delay, first_run = 0.0, len(server.seen)
    assert main(generate_args(data, out, server)) == 0
    ids = [e.id for e in load_store(out)]
    assert sorted(ids) == sorted(r.id for r in records)  # none lost, none twice (load_store refuses repeats)
    asked = {q.split("Question about ", 1)[1].split(":")[0] for q in server.questions()[first_run:]}
    assert asked == {r.id for r in records} - done  # the rerun asked only for what was missing


def test_show_counts_per_task(tmp_path, capsys):
    def ex(i, task, source, embedding=None):
        return Exemplar(id=str(i), task=task, source=source, question="q", label="l", rationale="r",
                        embedding=embedding)

    store = tmp_path / "store.jsonl"
    save_store([ex(0, "emo-c", "meld", [1.0]), ex(1, "emo-c", "caer-s"), ex(2, "emo-c", "meld"),
                ex(3, "sarcasm", "mmsd2", [0.5])], store)
    assert main(["prompts", "show", str(store)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{store}: 4 exemplars"
    assert lines[2].split() == ["emo-c", "3", "1", "caer-s", "1,", "meld", "2"]
    assert lines[3].split() == ["sarcasm", "1", "1", "mmsd2", "1"]
    store.write_text('{"id": 1}\n')
    assert main(["prompts", "show", str(store)]) == 2
    assert f"{store}:1: missing field(s)" in capsys.readouterr().err

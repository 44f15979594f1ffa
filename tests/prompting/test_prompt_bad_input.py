"""Hostile and careless input to EmoPrompt: stores, the CLI and a misbehaving or dead endpoint.

Every wait here is bounded: servers answer within seconds, clients use sub-second timeouts."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from emollm.cli import main
from emollm.data.records import write_jsonl
from emollm.prompting.generate import ChatClient, generate_store, retry_after_seconds
from emollm.prompting.store import Exemplar, StoreError, load_store, save_store
from tests.prompting.helpers import Reply, make_record

SECRET = "sk-secret-4f9a1c"


def client_for(server, **kw) -> ChatClient:
    kw = {"backoff": 0.01, "max_retries": 3, "timeout": 5.0, "log": lambda msg: None, **kw}
    return ChatClient(server.url, "test-model", **kw)


def generate_args(data, out, url, *extra: str) -> list[str]:
    return ["prompts", "generate", "--data", str(data), "--out", str(out), "--base-url", url,
            "--model", "test-model", "--backoff", "0.01", "--no-progress", *extra]


class Recorder:
    """A server on another port (another origin) that records every request it gets, of any method."""

    def __init__(self):
        self.seen: list[tuple[str, dict]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self):
                recorder.seen.append((self.command, dict(self.headers)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = _record

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Dripper:
    """An endpoint that sends its headers at once, then one byte of the body every 0.1 s for
    ``seconds``: every read gets data well within a socket timeout, the reply never completes."""

    def __init__(self, seconds: float = 3.0):
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                end = time.monotonic() + seconds
                try:
                    while time.monotonic() < end:
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(0.1)
                except OSError:  # the client gave up
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.handle_error = lambda request, address: None
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def dead_url() -> str:
    """An address where nothing listens: a port just bound and released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# ---- secrets ----

def test_a_redirect_is_not_followed_so_the_key_goes_to_no_other_origin(dataset, server, tmp_path):
    data, records = dataset
    other = Recorder()
    try:
        server.script = [Reply(302, "", {"Location": other.url + "/chat/completions"})]
        report = generate_store(records[:2], tmp_path / "s.jsonl", client_for(server, api_key=SECRET),
                                data_dir=data.parent, progress=False)
    finally:
        other.close()
    assert other.seen == []
    assert report.stopped and "redirect" in report.stopped and SECRET not in report.stopped
    assert len(server.seen) == 1  # the run stopped: every request would be redirected


@pytest.mark.parametrize("location", [
    "{other}/steal/{key}?k={key}",  # the key in the path and the query
    "{other}/x/Bearer%20{key}",  # a URL-encoded Authorization header
    "{other}/x/{quoted}",  # the key itself %-encoded, twice
])
def test_a_redirect_target_that_holds_the_key_is_shown_redacted(dataset, server, tmp_path, monkeypatch, capsys,
                                                                location):
    data, _ = dataset
    monkeypatch.setenv("EMOLLM_TEST_KEY", SECRET)
    quoted = "".join(f"%25{ord(c):02X}" for c in SECRET)
    server.script = [Reply(302, "", {"Location": location.format(other="http://127.0.0.1:9", key=SECRET,
                                                                     quoted=quoted)})]
    out = tmp_path / "s.jsonl"
    assert main(generate_args(data, out, server.url, "--api-key-env", "EMOLLM_TEST_KEY")) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "a redirect to http://127.0.0.1:9/" in lines[0] and "[redacted]" in lines[0]
    assert SECRET not in captured.out + captured.err and "4f9a1c" not in captured.err


def test_an_error_body_cannot_break_the_message_line(dataset, server, tmp_path, monkeypatch, capsys):
    data, _ = dataset
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server.script = [Reply(401, "line one\nemollm: forged line\x1b[31m")]
    assert main(generate_args(data, tmp_path / "s.jsonl", server.url)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "\x1b" not in err and "line one\\x0aemollm" in err


def test_the_key_is_never_printed_or_written(dataset, server, tmp_path, monkeypatch, capsys):
    data, _ = dataset
    monkeypatch.setenv("EMOLLM_TEST_KEY", SECRET)
    echo = {"error": {"message": "bad request", "echo": {"headers": {"Authorization": f"Bearer {SECRET}"}}}}
    server.script = [Reply(400, echo), Reply(500, f"upstream said: key {SECRET} over quota"), Reply(500, "x"),
                     Reply(500, "x"), Reply(500, "x"),
                     Reply(200, {"choices": [{"message": {"content": f"Your key is {SECRET}. It shows joy."}}]})]
    out = tmp_path / "s.jsonl"
    assert main(generate_args(data, out, server.url, "--api-key-env", "EMOLLM_TEST_KEY", "--max-retries", "3")) == 1
    captured = capsys.readouterr()
    assert "HTTP 400" in captured.err and "HTTP 500" in captured.err
    assert SECRET not in captured.out + captured.err and SECRET not in out.read_text()
    assert "[redacted]" in out.read_text()


def test_a_key_that_cannot_go_in_a_header_is_refused_without_showing_it(dataset, server, tmp_path, monkeypatch,
                                                                         capsys):
    data, _ = dataset
    monkeypatch.setenv("EMOLLM_TEST_KEY", "sk-first-half\nX-Injected: yes")
    assert main(generate_args(data, tmp_path / "s.jsonl", server.url, "--api-key-env", "EMOLLM_TEST_KEY")) == 2
    err = capsys.readouterr().err
    assert "API key holds spaces, control or non-ASCII characters" in err and "sk-first-half" not in err
    assert server.seen == [] and not (tmp_path / "s.jsonl").exists()
    assert SECRET not in repr(ChatClient(server.url, "m", api_key=SECRET))


def test_media_outside_the_data_folder_are_not_sent_without_the_flag(server, tmp_path, capsys):
    Image.new("RGB", (4, 4)).save(tmp_path / "private.png")
    data = tmp_path / "data" / "train.jsonl"
    write_jsonl([make_record("r1", media=[{"type": "image", "path": "../private.png"}])], data)
    out = tmp_path / "s.jsonl"
    assert main(generate_args(data, out, server.url)) == 2
    assert f"{data}:1: image path '../private.png' lies outside the data folder" in capsys.readouterr().err
    assert server.seen == [] and not out.exists()
    assert main(generate_args(data, out, server.url, "--allow-outside-media")) == 0
    assert len(server.seen) == 1


def test_a_symlink_out_of_the_data_folder_is_refused_and_a_non_image_is_never_sent(server, tmp_path, monkeypatch,
                                                                                    capsys):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    data = tmp_path / "data" / "train.jsonl"
    (tmp_path / "data" / "media").mkdir(parents=True)
    (tmp_path / "data" / "media" / "link_passwd.png").symlink_to(secret)
    write_jsonl([make_record("r1", media=[{"type": "image", "path": "media/link_passwd.png"}])], data)
    out = tmp_path / "s.jsonl"
    assert main(generate_args(data, out, server.url)) == 2
    err = capsys.readouterr().err
    assert f"{data}:1: image path 'media/link_passwd.png' leads through a symlink out of the data folder" in err
    assert len(err.strip().splitlines()) == 1 and server.seen == [] and not out.exists()
    # Allowed out, the file is still no image: the record fails, nothing is sent.
    assert main(generate_args(data, out, server.url, "--allow-outside-media")) == 1
    assert "link_passwd.png is not an image that decodes" in capsys.readouterr().err and server.seen == []


def test_a_file_that_is_not_an_image_is_not_sent_whatever_its_name(dataset, server, tmp_path):
    data, records = dataset
    (data.parent / "img" / "1.png").write_text("notes, not a picture")
    (data.parent / "img" / "2.png").unlink()
    Image.new("RGB", (4, 4)).save(data.parent / "img" / "2.png", format="JPEG")  # a JPEG named .png
    report = generate_store(records[:3], tmp_path / "s.jsonl", client_for(server), data_dir=data.parent,
                            progress=False)
    assert [r for r, _ in report.failed] == [records[1].id] and "not an image that decodes" in report.failed[0][1]
    assert [s.images[0].split(";")[0] for s in server.seen] == ["data:image/png", "data:image/jpeg"]


# ---- no unbounded waits ----

def test_retry_after_is_capped_and_unreadable_values_fall_back_to_backoff(dataset, server, tmp_path):
    assert retry_after_seconds("nan") is None
    assert retry_after_seconds("Fri, 31 Dec 99999 23:59:59 GMT") is None
    assert retry_after_seconds("1e400") == float("inf")  # the caller decides
    data, records = dataset
    waits = []
    server.script = [Reply(429, "slow", {"Retry-After": "30"}), Reply(503, "busy", {"Retry-After": "-5"}),
                     Reply(503, "busy", {"Retry-After": "9" * 5000}), Reply(429, "x", {"Retry-After": "soon"})]
    client = client_for(server, backoff=0.01, max_backoff=0.05, max_retries=5, sleep=waits.append)
    report = generate_store(records[:1], tmp_path / "s.jsonl", client, data_dir=data.parent, progress=False)
    # 30 s: capped; -5: no wait; 5000 digits: not read (backoff 0.04); "soon": backoff 0.08, capped.
    assert report.written == 1 and waits == [0.05, 0.0, 0.04, 0.05]


@pytest.mark.parametrize("value", ["86400", "1e400", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_a_retry_after_beyond_ten_minutes_stops_the_run(dataset, server, tmp_path, value):
    data, records = dataset
    waits = []
    server.script = [Reply(429, "quota", {"Retry-After": value})]
    report = generate_store(records[:3], tmp_path / "s.jsonl", client_for(server, sleep=waits.append),
                            data_dir=data.parent, progress=False)
    assert report.stopped and "Retry-After asks to wait" in report.stopped and "rerun later" in report.stopped
    assert waits == [] and len(server.seen) == 1


def test_rates_and_timeouts_that_would_wait_for_ever_are_refused(dataset, server, tmp_path, capsys):
    data, _ = dataset
    for flag, value in [("--rate", "1e-9"), ("--rate", "inf"), ("--timeout", "1e9"), ("--timeout", "nan"),
                        ("--backoff", "1e12"), ("--max-retries", "100000")]:
        with pytest.raises(SystemExit):
            main(generate_args(data, tmp_path / "s.jsonl", server.url, flag, value))
        assert f"argument {flag}: must be" in capsys.readouterr().err
    assert server.seen == []


def test_a_reply_that_never_completes_ends_at_the_deadline(dataset, tmp_path):
    data, records = dataset
    dripper = Dripper(seconds=4.0)
    try:
        start = time.monotonic()
        report = generate_store(records[:1], tmp_path / "s.jsonl",
                                ChatClient(dripper.url, "m", timeout=0.6, max_retries=0, log=lambda msg: None),
                                data_dir=data.parent, progress=False)
        elapsed = time.monotonic() - start
    finally:
        dripper.close()
    assert elapsed < 2.5, elapsed
    assert report.written == 0 and "no complete reply within 0.6 s" in report.failed[0][1]


def test_a_huge_reply_fails_the_record(dataset, server, tmp_path):
    data, records = dataset
    server.script = [Reply(200, "[" + "1, " * 600_000 + "1]")]  # 1.8 MB
    report = generate_store(records[:2], tmp_path / "s.jsonl", client_for(server), data_dir=data.parent,
                            progress=False)
    assert report.written == 1 and "larger than 1048576 bytes" in report.failed[0][1]


def test_a_dead_endpoint_stops_the_run_instead_of_failing_record_after_record(dataset, tmp_path, capsys):
    data, records = dataset
    client = ChatClient(dead_url(), "m", backoff=0.001, max_retries=5, log=lambda msg: None)
    report = generate_store(records, tmp_path / "s.jsonl", client, data_dir=data.parent, progress=False)
    assert report.stopped and "no reply from" in report.stopped and "6 requests in a row" in report.stopped
    assert report.failed == [] and report.written == 0  # the first record's six attempts, then stop
    assert main(generate_args(data, tmp_path / "s.jsonl", dead_url(), "--backoff", "0.001")) == 2
    err = capsys.readouterr().err
    assert "stopped: no reply from" in err and "rerun the same command" not in err


# ---- reading: a file that is not a store is never changed ----

def test_a_file_that_is_not_a_store_is_left_untouched(dataset, server, tmp_path, capsys):
    data, _ = dataset
    notes = tmp_path / "notes.jsonl"
    notes.write_bytes(b'{"todo": "buy milk"}\n{"todo": "call mum"')
    before = notes.read_bytes()
    assert main(generate_args(data, notes, server.url)) == 2
    assert "is not an exemplar store, so it was left as it is" in capsys.readouterr().err
    assert notes.read_bytes() == before and server.seen == []
    assert main(generate_args(data, data, server.url)) == 2  # the records file itself
    assert server.seen == []


def test_a_whole_last_exemplar_without_newline_is_kept(dataset, server, tmp_path):
    data, records = dataset
    out = tmp_path / "s.jsonl"
    generate_store(records[:2], out, client_for(server), data_dir=data.parent, progress=False)
    out.write_text(out.read_text().rstrip("\n"))  # e.g. edited by hand
    server.seen.clear()
    report = generate_store(records[:3], out, client_for(server), data_dir=data.parent, progress=False)
    assert (report.skipped, report.written, report.dropped_partial_line) == (2, 1, False)
    assert len(server.seen) == 1
    assert [e.id for e in load_store(out)] == [r.id for r in records[:3]]


# ---- atomic store rewrite, and nothing left by a failed run ----

def test_a_failed_save_keeps_the_old_store_and_leaves_no_temporary(tmp_path):
    store = tmp_path / "store.jsonl"
    good = Exemplar(id="a", task="emo-c", source="s", question="q", label="joy", rationale="r")
    save_store([good], store)
    before = store.read_bytes()
    bad = Exemplar(id="b", task="emo-c", source="s", question="q", label="joy", rationale="")
    with pytest.raises(StoreError):
        save_store([good, bad], store)
    assert store.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["store.jsonl"]


def test_a_run_that_writes_nothing_leaves_no_store_or_folder(dataset, server, tmp_path):
    data, records = dataset
    out = tmp_path / "new" / "store.jsonl"
    server.script = [Reply(400, "no")] * 2
    report = generate_store(records[:2], out, client_for(server), data_dir=data.parent, progress=False)
    assert len(report.failed) == 2 and not (tmp_path / "new").exists()
    server.script = [Reply(401, "no")]
    report = generate_store(records[:2], out, client_for(server), data_dir=data.parent, progress=False)
    assert report.stopped and not (tmp_path / "new").exists()


def test_store_reader_names_file_and_line_for_every_kind_of_bad_line(tmp_path):
    store = tmp_path / "store.jsonl"
    good = json.dumps({"id": "a", "task": "emo-c", "source": "s", "question": "q", "label": "joy", "rationale": "r"})
    for bad, message in [(good.replace('"a"', '"b"').replace('"emo-c"', "5").encode(), "'task' must be a non-empty"),
                         (b"\xff\xfe", "not UTF-8 text"), (b"[" * 50 + b"]" * 50, "nested deeper than"),
                         (good.replace('"a"', '"b"').replace('"q"', '"<image>q"').encode(), "media placeholder")]:
        store.write_bytes(b"\xef\xbb\xbf" + good.encode() + b"\n" + bad + b"\n")
        with pytest.raises(StoreError, match=rf"{store}:2: .*{message}"):
            load_store(store)

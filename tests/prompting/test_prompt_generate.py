import base64
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from emollm.prompting.generate import (
    APIError,
    ChatClient,
    RateLimiter,
    build_messages,
    generate_store,
    plan,
    retry_after_seconds,
)
from emollm.prompting.store import load_store
from tests.prompting.helpers import Reply, make_record


def client_for(server, **kw) -> ChatClient:
    kw = {"backoff": 0.01, "max_retries": 3, "timeout": 5.0, "log": lambda msg: None, **kw}
    return ChatClient(server.url, "test-model", **kw)


def test_normal_run_writes_one_exemplar_per_record(dataset, server, tmp_path):
    data, records = dataset
    out = tmp_path / "prompts" / "store.jsonl"
    report = generate_store(records, out, client_for(server), data_dir=data.parent, progress=False)
    assert (report.written, report.skipped, report.failed) == (6, 0, [])
    store = load_store(out)
    assert [e.id for e in store] == [r.id for r in records]
    for e, r in zip(store, records, strict=True):
        assert (e.task, e.source, e.label) == (r.task, r.source, r.answer)
        assert e.question == f"Question about {r.id}: which label fits?"  # the <image> placeholder is gone
        assert e.rationale == f"The cues point to {r.answer}."
        assert e.media == [{"type": "image", "path": str(data.parent / "img" / r.id.split("/")[-1]) + ".png"}]
        assert e.meta == {"model": "test-model"}
    first = server.seen[0]
    assert first.path == "/v1/chat/completions"
    assert first.body["model"] == "test-model"
    assert [m["role"] for m in first.body["messages"]] == ["system", "user"]
    assert "Correct answer: anger" in first.user_text and "<image>" not in first.user_text
    assert "Authorization" not in first.headers


def test_image_goes_as_a_base64_data_url(dataset, server, tmp_path):
    data, records = dataset
    generate_store(records[:2], tmp_path / "s.jsonl", client_for(server), data_dir=data.parent, progress=False)
    for seen, i in zip(server.seen, range(2), strict=True):
        (url,) = seen.images
        prefix = "data:image/png;base64,"
        assert url.startswith(prefix)
        assert base64.b64decode(url[len(prefix):]) == (data.parent / "img" / f"{i}.png").read_bytes()


def test_api_key_goes_in_the_authorization_header(dataset, server, tmp_path):
    data, records = dataset
    client = client_for(server, api_key="sk-test-123")
    generate_store(records[:1], tmp_path / "s.jsonl", client, data_dir=data.parent, progress=False)
    assert server.seen[0].headers["Authorization"] == "Bearer sk-test-123"


def test_429_waits_what_retry_after_says_then_succeeds(dataset, server, tmp_path):
    data, records = dataset
    server.script = [Reply(429, {"error": "slow down"}, {"Retry-After": "1"})]
    report = generate_store(records[:1], tmp_path / "s.jsonl", client_for(server, backoff=0.01),
                            data_dir=data.parent, progress=False)
    assert report.written == 1 and not report.failed
    assert len(server.seen) == 2
    gap = server.seen[1].time - server.seen[0].time
    assert 0.95 <= gap < 3.0  # Retry-After (1 s), not the 0.01 s backoff


def test_5xx_backs_off_exponentially_then_succeeds(dataset, server, tmp_path):
    data, records = dataset
    server.script = [Reply(500, "oops"), Reply(503, "busy")]
    waits = []

    def sleep(seconds):
        waits.append(seconds)
        time.sleep(seconds)

    client = client_for(server, backoff=0.05, sleep=sleep)
    report = generate_store(records[:1], tmp_path / "s.jsonl", client, data_dir=data.parent, progress=False)
    assert report.written == 1 and not report.failed
    assert waits == [0.05, 0.1]
    assert len(server.seen) == 3


def test_timeout_is_retried(dataset, server, tmp_path):
    data, records = dataset
    server.script = [Reply(delay=1.5)]
    report = generate_store(records[:1], tmp_path / "s.jsonl", client_for(server, timeout=0.3),
                            data_dir=data.parent, progress=False)
    assert report.written == 1 and not report.failed
    assert len(server.seen) == 2


def test_gives_up_after_max_retries_and_reports_it(dataset, server, tmp_path):
    data, records = dataset
    server.script = [Reply(502, "bad gateway")] * 3  # max_retries=2: three attempts for the first record
    out = tmp_path / "s.jsonl"
    report = generate_store(records[:3], out, client_for(server, max_retries=2), data_dir=data.parent, progress=False)
    assert report.written == 2
    ((failed_id, reason),) = report.failed
    assert failed_id == records[0].id
    assert "gave up after 3 attempts" in reason and "HTTP 502" in reason and "bad gateway" in reason
    assert [e.id for e in load_store(out)] == [r.id for r in records[1:3]]  # not written: a rerun retries it
    assert generate_store(records[:3], out, client_for(server), data_dir=data.parent, progress=False).written == 1


def test_client_errors_are_not_retried_and_401_stops_the_run(dataset, server, tmp_path):
    data, records = dataset
    server.script = [Reply(400, "image too large")]
    out = tmp_path / "s.jsonl"
    report = generate_store(records[:2], out, client_for(server), data_dir=data.parent, progress=False)
    assert len(server.seen) == 2 and report.written == 1 and "HTTP 400" in report.failed[0][1]  # no retry
    server.script = [Reply(401, "bad key")]
    report = generate_store(records[2:5], out, client_for(server), data_dir=data.parent, progress=False)
    assert report.written == 0 and "API key was refused" in report.stopped
    assert len(server.seen) == 3  # the other records were not tried


def test_malformed_reply_fails_the_record(dataset, server, tmp_path):
    data, records = dataset
    server.script = [Reply(200, "<html>not json</html>"), Reply(200, {"choices": [{"message": {"content": "  "}}]})]
    report = generate_store(records[:3], tmp_path / "s.jsonl", client_for(server), data_dir=data.parent,
                            progress=False)
    assert report.written == 1
    assert report.failed[0][1].startswith("APIError: malformed reply")
    assert "no text content" in report.failed[1][1]


def test_missing_media_fails_only_that_record(dataset, server, tmp_path):
    data, records = dataset
    (data.parent / "img" / "1.png").unlink()
    report = generate_store(records[:3], tmp_path / "s.jsonl", client_for(server), data_dir=data.parent,
                            progress=False)
    assert report.written == 2 and report.failed[0][0] == records[1].id and "1.png" in report.failed[0][1]


def test_resume_after_a_partial_line_skips_done_records(dataset, server, tmp_path):
    data, records = dataset
    out = tmp_path / "s.jsonl"
    generate_store(records[:3], out, client_for(server), data_dir=data.parent, progress=False)
    with out.open("a") as f:
        f.write('{"id": "fixture/train/3", "task": "emo')  # a kill in the middle of a write
    server.seen.clear()
    report = generate_store(records, out, client_for(server), data_dir=data.parent, progress=False)
    assert report.dropped_partial_line and report.skipped == 3 and report.written == 3
    assert len(server.seen) == 3  # only the three not yet done
    assert sorted(e.id for e in load_store(out)) == sorted(r.id for r in records)


def test_rate_limit_spaces_requests(dataset, server, tmp_path):
    data, records = dataset
    start = time.monotonic()
    generate_store(records, tmp_path / "s.jsonl", client_for(server, rate=10.0), data_dir=data.parent,
                   progress=False)
    gaps = [b.time - a.time for a, b in zip(server.seen, server.seen[1:], strict=False)]
    assert len(gaps) == 5
    assert min(gaps) >= 0.085  # 0.1 s apart, less a little for clock and thread jitter
    assert time.monotonic() - start < 5.0


def test_rate_limiter_with_a_fake_clock():
    now, slept = [0.0], []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    limiter.wait()  # first call: no wait
    now[0] += 0.1
    limiter.wait()  # 0.15 s early
    now[0] += 1.0
    limiter.wait()  # long after: no wait
    assert slept == [pytest.approx(0.15)]
    with pytest.raises(ValueError, match="rate must be a positive number"):
        RateLimiter(0)


def test_retry_after_parsing():
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None


def test_client_argument_errors():
    with pytest.raises(ValueError, match="base_url must start with http"):
        ChatClient("localhost:8000/v1", "m")
    with pytest.raises(ValueError, match="max_retries must be >= 0"):
        ChatClient("http://x/v1", "m", max_retries=-1)
    with pytest.raises(APIError, match="gave up after 1 attempts"):  # nothing listens on port 9 of 127.0.0.1
        ChatClient("http://127.0.0.1:9/v1", "m", max_retries=0, timeout=1.0).complete([])


def test_audio_and_text_go_as_text(tmp_path):
    record = make_record("a1", media=[{"type": "audio", "path": "clip.wav"}], question="Which emotion?",
                         text="I can't believe it!")
    (user,) = [m for m in build_messages(record, tmp_path) if m["role"] == "user"]
    assert [p["type"] for p in user["content"]] == ["text"]
    text = user["content"][0]["text"]
    assert "Text of the sample: I can't believe it!" in text and "audio track" in text
    assert text.index("Question: Which emotion?") < text.index("Correct answer: joy")


def test_video_goes_as_frames_in_time_order(tmp_path):
    av = pytest.importorskip("av")
    np = pytest.importorskip("numpy")
    pytest.importorskip("PIL")
    from io import BytesIO

    from PIL import Image

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=12)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(12):  # frame i is a flat grey of level 20 * i
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * i, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    record = make_record("v1", media=[{"type": "video", "path": "clip.mp4"}])
    (user,) = [m for m in build_messages(record, tmp_path, num_frames=4) if m["role"] == "user"]
    urls = [p["image_url"]["url"] for p in user["content"] if p["type"] == "image_url"]
    assert "4 frames in time order" in user["content"][0]["text"]
    prefix = "data:image/jpeg;base64,"
    levels = [np.asarray(Image.open(BytesIO(base64.b64decode(u[len(prefix):])))).mean() for u in urls]
    # The middles of four equal parts of 12 frames: frames 1, 4, 7, 10 (grey 20, 80, 140, 200).
    assert levels == pytest.approx([20, 80, 140, 200], abs=8)


def test_plan_draws_per_task_with_a_seed():
    records = [make_record(f"c{i}") for i in range(10)] + [make_record(f"s{i}", "sarcasm", "no") for i in range(3)]
    picked = plan(records, per_task=4, seed=0)
    assert [r.task for r in picked].count("emo-c") == 4 and [r.task for r in picked].count("sarcasm") == 3
    assert picked == plan(records, per_task=4, seed=0)
    assert picked != plan(records, per_task=4, seed=1)
    assert [records.index(r) for r in picked] == sorted(records.index(r) for r in picked)  # file order kept
    assert plan(records) == records
    with pytest.raises(ValueError, match="per_task must be a positive integer"):
        plan(records, per_task=0)

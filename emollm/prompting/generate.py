"""Writing EmoPrompt rationales with any OpenAI-compatible chat endpoint (paper §4.4, Fig. 4).

The paper shows GPT-4V a sample *and its ground-truth label* and asks for the reasoning that
leads from what is observable to that label, so that the chain of thought is correct by
construction. :func:`generate_store` does this for EmoBench records:

- the request is ``POST {base_url}/chat/completions`` with a system message (how to reason) and a
  user message holding the question, the correct answer, and the media: an image as a base64 data
  URL (an ``image_url`` content part), a video as a few frames the same way (decoded with PyAV),
  audio as a note plus the record's transcript text;
- failures are retried with exponential backoff on HTTP 429 and 5xx, timeouts and dropped
  connections, waiting what a ``Retry-After`` header asks where there is one; other 4xx fail the
  record at once, and 401/403/404 (wrong key, model or URL: every request would fail) stop the run;
- requests are spaced to at most ``rate`` per second (retries included);
- each exemplar is appended to the output store and flushed as it arrives; records whose id is
  already there are skipped, so a rerun after a crash or kill picks up where the run stopped.

Only the standard library talks HTTP here (``urllib``): no SDK needed.
"""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import http.client
import io
import json
import mimetypes
import os
import random
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emollm.data.records import PLACEHOLDERS, EmoRecord, resolve_media
from emollm.prompting.store import Exemplar, ExemplarWriter, drop_partial_tail, strip_placeholders

SYSTEM_PROMPT = (
    "You write worked reasoning for an emotional-understanding benchmark. You are given a sample "
    "(image, video frames, audio transcript and/or text), a question about it, and its correct answer. "
    "Write the reasoning that leads to that answer: first describe the objective evidence you can "
    "observe (facial expressions, gaze, posture, gestures, the scene and objects, what is written or "
    "said), then explain step by step how that evidence supports the answer. Write 3 to 5 sentences "
    "of plain prose, as if you reached the answer yourself: do not mention that the answer was given, "
    "and do not add a separate final-answer line."
)
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})  # and any other 5xx
FATAL_STATUS = {401: "the API key was refused", 403: "the API key may not use this model",
                404: "no such endpoint or model (check --base-url and --model)"}


class APIError(RuntimeError):
    """A request that failed for good (after retries, or at once for a non-retryable status)."""


class FatalAPIError(APIError):
    """A failure that every request would hit (bad key, model or URL): the run stops."""


class RateLimiter:
    """Spaces calls of :meth:`wait` at least ``1 / rate`` seconds apart (``rate`` None: no limit)."""

    def __init__(self, rate: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if rate is not None and not rate > 0:
            raise ValueError(f"rate must be a positive number of requests per second or None, got {rate!r}")
        self.interval = 0.0 if rate is None else 1.0 / rate
        self.clock, self.sleep = clock, sleep
        self._next = -float("inf")

    def wait(self) -> None:
        now = self.clock()
        if now < self._next:
            self.sleep(self._next - now)
            now = self._next
        self._next = now + self.interval


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds asked by a ``Retry-After`` header (delay-seconds or an HTTP date), None if absent/bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" parses as naive; HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


@dataclasses.dataclass
class ChatClient:
    """A minimal client of ``POST {base_url}/chat/completions`` with retries and rate limiting.

    ``backoff``: the first retry's wait in seconds, doubled per retry up to ``max_backoff``;
    ``Retry-After`` overrides it. ``rate``: requests per second (None: unlimited).
    """

    base_url: str
    model: str
    api_key: str | None = None
    timeout: float = 120.0
    max_retries: int = 5
    rate: float | None = None
    backoff: float = 1.0
    max_backoff: float = 60.0
    max_tokens: int = 400
    sleep: Callable[[float], None] = time.sleep
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be positive, got {self.timeout}")
        self.url = self.base_url.rstrip("/") + "/chat/completions"
        self.limiter = RateLimiter(self.rate, sleep=self.sleep)

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=json.dumps(payload).encode(), headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read())

    def complete(self, messages: list[dict[str, Any]]) -> str:
        """The reply's text; raises :class:`APIError` / :class:`FatalAPIError` when it cannot get one."""
        payload = {"model": self.model, "messages": messages, "max_tokens": self.max_tokens, "temperature": 0.2}
        attempt = 0
        while True:
            self.limiter.wait()
            wait = None
            try:
                return reply_text(self._post(payload))
            except urllib.error.HTTPError as e:
                body = e.read()[:300].decode(errors="replace")
                problem = f"HTTP {e.code} from {self.url}: {body}"
                if e.code in FATAL_STATUS:
                    raise FatalAPIError(f"{problem} ({FATAL_STATUS[e.code]})") from None
                if e.code not in RETRY_STATUS and e.code < 500:
                    raise APIError(problem) from None
                wait = retry_after_seconds(e.headers.get("Retry-After"))
            except (OSError, http.client.HTTPException) as e:  # timeouts, refused or dropped connections
                problem = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            except (json.JSONDecodeError, KeyError, IndexError, TypeError) as e:
                raise APIError(f"malformed reply from {self.url}: {type(e).__name__}: {e}") from None
            if attempt == self.max_retries:
                raise APIError(f"gave up after {attempt + 1} attempts; last: {problem}")
            wait = min(self.max_backoff, self.backoff * 2**attempt) if wait is None else wait
            self.log(f"retry {attempt + 1}/{self.max_retries} in {wait:.1f} s: {problem}")
            self.sleep(wait)
            attempt += 1


def reply_text(reply: dict[str, Any]) -> str:
    """The assistant text of a chat-completions reply (a string or a list of text parts)."""
    content = reply["choices"][0]["message"]["content"]
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if not isinstance(content, str) or not content.strip():
        raise TypeError(f"the reply has no text content: {reply!r:.200}")
    return content


def _data_url(data: bytes, mime: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{base64.b64encode(data).decode()}"}}


def image_part(path: str) -> dict[str, Any]:
    """An ``image_url`` content part holding the file at ``path`` as a base64 data URL."""
    mime = mimetypes.guess_type(path)[0]
    if mime is None or not mime.startswith("image/"):
        raise ValueError(f"cannot tell the image type of {path} from its extension")
    return _data_url(Path(path).read_bytes(), mime)


def sample_frames(path: str, num_frames: int = 4) -> list[Any]:
    """``num_frames`` frames (PIL images) from the middles of equal parts of the video (needs PyAV)."""
    try:
        import av
    except ImportError:
        raise ImportError("video records need PyAV to take frames: pip install av") from None
    with av.open(path) as container:
        frames = list(container.decode(video=0))
    if not frames:
        raise ValueError(f"no video frames in {path}")
    picks = sorted({int((i + 0.5) * len(frames) / num_frames) for i in range(num_frames)})
    return [frames[i].to_image() for i in picks]


def jpeg(image: Any, max_side: int = 768) -> bytes:
    """``image`` (PIL) as JPEG bytes, shrunk to fit ``max_side``: a frame need not be sent at full size."""
    image = image.convert("RGB")
    image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def build_messages(record: EmoRecord, data_dir: str | os.PathLike, *, num_frames: int = 4,
                   frames: Callable[[str, int], list[Any]] = sample_frames) -> list[dict[str, Any]]:
    """The chat messages asking for ``record``'s rationale; media paths resolve against ``data_dir``.

    ``frames(path, n)``: ``n`` PIL images of a video (:func:`sample_frames`, PyAV).
    """
    question = strip_placeholders(record.question)
    lines = [f"Question: {question}"]
    if record.text and record.text not in question:
        lines.append(f"Text of the sample: {record.text}")
    media = resolve_media(record, data_dir)
    parts: list[dict[str, Any]] = []
    for item in media:
        if item["type"] == "image":
            parts.append(image_part(item["path"]))
        elif item["type"] == "video":
            shots = frames(item["path"], num_frames)
            lines.append(f"The video is shown as {len(shots)} frames in time order.")
            parts.extend(_data_url(jpeg(shot), "image/jpeg") for shot in shots)
        else:
            lines.append("The sample has an audio track, not attached; use the text given as what is said.")
    lines.append(f"Correct answer: {record.answer}")
    lines.append("Write the reasoning that leads to this answer.")
    content = [{"type": "text", "text": "\n".join(lines)}, *parts]
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}]


def plan(records: Sequence[EmoRecord], per_task: int | None = None, seed: int = 0) -> list[EmoRecord]:
    """The records to make exemplars of: all, or ``per_task`` of each task drawn with ``seed``.

    The draw depends only on the records and the seed, so a rerun plans the same records and the
    resume logic skips those already done. Keeps file order.
    """
    if per_task is None:
        return list(records)
    if per_task < 1:
        raise ValueError(f"per_task must be a positive integer or None, got {per_task}")
    by_task: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_task.setdefault(r.task, []).append(i)
    keep = set()
    for task, positions in sorted(by_task.items()):
        keep.update(random.Random(f"{seed}:{task}").sample(positions, min(per_task, len(positions))))
    return [r for i, r in enumerate(records) if i in keep]


def clean_rationale(text: str) -> str:
    """The reply as a rationale: trimmed, media placeholders removed (they would claim media in a prompt)."""
    for tag in PLACEHOLDERS.values():
        text = text.replace(tag, "")
    return text.strip()


@dataclasses.dataclass
class GenerateReport:
    written: int = 0
    skipped: int = 0  # already in the store
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (record id, reason)
    dropped_partial_line: bool = False
    stopped: str | None = None  # why the run stopped early (a fatal API error)


def _progress(total: int, enabled: bool):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is not a dependency; a plain counter on stderr does the job
        return _Counter(total, enabled)
    return tqdm(total=total, disable=not enabled, unit="exemplar", desc="prompts")


class _Counter:
    def __init__(self, total: int, enabled: bool):
        self.total, self.n, self.enabled = total, 0, enabled

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.enabled:
            print(f"\rprompts: {self.n}/{self.total}", end="\n" if self.n >= self.total else "", file=sys.stderr)

    def close(self) -> None:
        pass


def generate_store(records: Iterable[EmoRecord], out: str | os.PathLike, client: ChatClient, *,
                   data_dir: str | os.PathLike, per_task: int | None = None, seed: int = 0,
                   num_frames: int = 4, progress: bool = True) -> GenerateReport:
    """Writes an exemplar per planned record (:func:`plan`) to the store ``out``, resuming it.

    A record that fails (after retries, or because its media cannot be read) is listed in the
    report and not written, so the next run tries it again. A :class:`FatalAPIError` stops the run.
    """
    report = GenerateReport(dropped_partial_line=drop_partial_tail(out))
    todo = plan(list(records), per_task, seed)
    with ExemplarWriter(out) as writer:
        report.skipped = sum(r.id in writer.ids for r in todo)
        todo = [r for r in todo if r.id not in writer.ids]
        bar = _progress(len(todo), progress)
        try:
            for record in todo:
                try:
                    reply = client.complete(build_messages(record, data_dir, num_frames=num_frames))
                    exemplar = Exemplar(
                        id=record.id, task=record.task, source=record.source, label=record.answer,
                        question=strip_placeholders(record.question), rationale=clean_rationale(reply),
                        media=resolve_media(record, data_dir), meta={"model": client.model},
                    ).validate()
                except FatalAPIError as e:
                    report.stopped = str(e)
                    break
                except (APIError, OSError, ValueError, ImportError) as e:  # this record only
                    report.failed.append((record.id, f"{type(e).__name__}: {e}"))
                else:
                    writer.append(exemplar)
                    report.written += 1
                bar.update(1)
        finally:
            bar.close()
    return report

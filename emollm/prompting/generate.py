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
import contextlib
import dataclasses
import email.utils
import http.client
import io
import json
import math
import os
import random
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emollm.data.records import PLACEHOLDERS, EmoRecord, resolve_media
from emollm.prompting.store import Exemplar, ExemplarWriter, strip_placeholders

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
MAX_REPLY_BYTES = 1 << 20  # a chat completion of a few hundred tokens is a few KB
_ERROR_BODY_CHARS = 300  # of an error reply, shown in messages
# A Bearer token, also URL-encoded ("Bearer%20...", "Bearer+..."), as a server may echo it in a Location.
_BEARER = re.compile(r"(?i)\b(bearer(?:\s+|%20|\+))[^\s\"',;&?#]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class APIError(RuntimeError):
    """A request that failed for good (after retries, or at once for a non-retryable status)."""


class FatalAPIError(APIError):
    """A failure that every request would hit (bad key, model or URL): the run stops."""


class EndpointUnreachable(FatalAPIError):
    """Several requests in a row got no reply at all: the endpoint is down or the address is wrong."""


class RateLimiter:
    """Spaces calls of :meth:`wait` at least ``1 / rate`` seconds apart (``rate`` None: no limit)."""

    def __init__(self, rate: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if rate is not None and not (rate > 0 and math.isfinite(rate)):
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
    """Seconds asked by a ``Retry-After`` header (delay-seconds or an HTTP date), None if absent or
    unreadable (``NaN``, a malformed or out-of-range date). Huge values come back as they are: the
    caller caps them."""
    if not value or len(value) > 100:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if not math.isnan(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" parses as naive; HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    try:
        return max(0.0, (when - now).total_seconds())
    except OverflowError:
        return None


class _Deadline:
    """Ends one request when its time is up. A socket timeout bounds each read, not the exchange: a
    server that sends a byte now and then would hold a request for ever. When the deadline passes,
    a timer shuts the request's socket down, which ends whatever read or write is waiting on it."""

    def __init__(self, seconds: float):
        self.seconds, self.expired = seconds, False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def connection_class(self, cls: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
        """``cls`` whose sockets this deadline watches from the moment they connect."""
        deadline = self

        class Watched(cls):
            def connect(self) -> None:
                super().connect()
                deadline._watch(self.sock)

        return Watched

    def _watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self.expired:  # the time ran out while connecting
                self._shutdown()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shutdown()

    def _shutdown(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    """An opener without a redirect handler (a redirect would carry the API key to wherever it
    points; it becomes an error here), whose connections ``deadline`` watches."""

    def watched(base: type[urllib.request.AbstractHTTPHandler]) -> urllib.request.BaseHandler:
        class Handler(base):
            def do_open(self, http_class, req, **kwargs):
                return super().do_open(deadline.connection_class(http_class), req, **kwargs)

        return Handler()

    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(),
                    watched(urllib.request.HTTPHandler), watched(urllib.request.HTTPSHandler),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


class _HTTPStatus(Exception):
    """A reply with a status other than 2xx; its body's start, read within the deadline."""

    def __init__(self, code: int, body: str, headers: Any):
        super().__init__(code)
        self.code, self.body, self.headers = code, body, headers


def _where(url: str) -> str:
    """``url`` without its query and fragment, which may hold tokens."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _check_base_url(base_url: str) -> None:
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
    if any(c.isspace() or not c.isprintable() for c in base_url):
        raise ValueError("base_url holds spaces or control characters")
    parts = urllib.parse.urlsplit(base_url)
    if "@" in parts.netloc:
        raise ValueError("base_url must not hold a user name or password (they would be printed in messages); "
                         "put the key in the variable named by --api-key-env")
    if parts.query or parts.fragment:
        raise ValueError("base_url must not have a query or fragment; give the address that "
                         "/chat/completions is appended to")
    try:
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number in 0-65535
    except ValueError as e:
        raise ValueError(f"base_url: {e}") from None
    if not parts.hostname:
        raise ValueError(f"base_url has no host name: {base_url!r}")


@dataclasses.dataclass
class ChatClient:
    """A minimal client of ``POST {base_url}/chat/completions`` with retries and rate limiting.

    ``timeout``: seconds for a whole request (connecting, sending, the complete reply), not only
    for each read. ``backoff``: the first retry's wait in seconds, doubled per retry up to
    ``max_backoff``; a ``Retry-After`` header replaces it, capped at ``max_backoff`` too. ``rate``:
    requests per second (None: unlimited). ``max_reply_bytes``: a longer reply fails the record.
    ``max_unreachable``: after this many requests in a row got no reply at all (refused, unknown
    host, timed out, dropped), :class:`EndpointUnreachable` stops the run instead of going on
    record after record. ``max_retry_after``: a ``Retry-After`` longer than this (a spent quota, a
    maintenance window) stops the run too: waiting ``max_backoff`` and asking again, record after
    record, would take hours and get the same answer.

    The API key is sent to ``base_url`` only (redirects are not followed) and never appears in a
    message: error bodies and logs have it, and any ``Bearer`` token, replaced by ``[redacted]``.
    """

    base_url: str
    model: str
    api_key: str | None = dataclasses.field(default=None, repr=False)
    timeout: float = 120.0
    max_retries: int = 5
    rate: float | None = None
    backoff: float = 1.0
    max_backoff: float = 60.0
    max_tokens: int = 400
    max_reply_bytes: int = MAX_REPLY_BYTES
    max_unreachable: int = 6
    max_retry_after: float = 600.0
    sleep: Callable[[float], None] = dataclasses.field(default=time.sleep, repr=False)
    log: Callable[[str], None] = dataclasses.field(default=lambda msg: print(msg, file=sys.stderr), repr=False)

    def __post_init__(self) -> None:
        _check_base_url(self.base_url)
        if self.api_key is not None:
            self.api_key = self.api_key.strip()
            # Checked here, because http.client would put the rejected header value, key and all,
            # into its exception message.
            if not all(33 <= ord(c) <= 126 for c in self.api_key):
                raise ValueError("the API key holds spaces, control or non-ASCII characters, which an HTTP "
                                 "header cannot carry; check the variable named by --api-key-env")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        for name in ("timeout", "backoff", "max_backoff", "max_retry_after"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0) or (
                    name == "timeout" and value == 0):
                raise ValueError(f"{name} must be a {'positive' if name == 'timeout' else 'non-negative'} "
                                 f"number of seconds, got {value!r}")
        for name in ("max_reply_bytes", "max_unreachable"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        self.url = self.base_url.rstrip("/") + "/chat/completions"
        self.limiter = RateLimiter(self.rate, sleep=self.sleep)
        self._no_reply = 0  # requests in a row that got no reply at all

    def redact(self, text: str) -> str:
        """``text`` with the API key and any ``Bearer`` token replaced by ``[redacted]``, also where
        they are URL-encoded (a redirect's target, an echoed URL): such a text comes back decoded."""
        if self.api_key:
            text = decoded = text.replace(self.api_key, "[redacted]")
            for _ in range(3):  # up to three layers of %-encoding
                decoded = urllib.parse.unquote(decoded)
                if self.api_key in decoded:
                    text = decoded = decoded.replace(self.api_key, "[redacted]")
        return _BEARER.sub(r"\1[redacted]", text)

    def message(self, text: str) -> str:
        """``text`` fit for a one-line message: redacted, control characters (a server's newlines,
        terminal escapes) shown as ``\\xNN``."""
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", self.redact(text))

    def _post(self, body: bytes) -> bytes:
        """The reply's body, at most ``max_reply_bytes + 1`` bytes of it; raises :class:`_HTTPStatus`
        for a status other than 2xx, ``TimeoutError`` when the whole exchange took too long."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with _Deadline(self.timeout) as deadline:
            try:
                with _opener(deadline).open(request, timeout=self.timeout) as response:
                    data = response.read(self.max_reply_bytes + 1)
            except urllib.error.HTTPError as e:
                # Enough of the body that a key echoed in it is cut out whole before it is shortened.
                text = e.read(4096).decode("utf-8", errors="replace") if e.fp is not None else ""
                e.close()
                if not deadline.expired:
                    raise _HTTPStatus(e.code, text, e.headers) from None
            except (OSError, http.client.HTTPException):
                if not deadline.expired:
                    raise
            if deadline.expired:
                raise TimeoutError(f"no complete reply within {self.timeout:g} s")
        return data

    def complete(self, messages: list[dict[str, Any]]) -> str:
        """The reply's text; raises :class:`APIError` / :class:`FatalAPIError` when it cannot get one."""
        payload = {"model": self.model, "messages": messages, "max_tokens": self.max_tokens, "temperature": 0.2}
        body = json.dumps(payload).encode()
        where = _where(self.url)
        attempt = 0
        while True:
            self.limiter.wait()
            wait = None
            try:
                data = self._post(body)
                self._no_reply = 0
                if len(data) > self.max_reply_bytes:
                    raise APIError(f"the reply from {where} is larger than {self.max_reply_bytes} bytes")
                return reply_text(json.loads(data))
            except _HTTPStatus as e:
                self._no_reply = 0
                problem = self.message(f"HTTP {e.code} from {where}: {self.redact(e.body)[:_ERROR_BODY_CHARS]}")
                if 300 <= e.code < 400:
                    # The target is the server's to choose: it may hold the key (redacted like the body).
                    target = self.message(_where(urllib.parse.urljoin(self.url, e.headers.get("Location") or "")))
                    raise FatalAPIError(f"{problem} (a redirect to {target}: not followed, since the API key goes "
                                        f"to --base-url only; if the endpoint moved, pass its address as --base-url)"
                                        ) from None
                if e.code in FATAL_STATUS:
                    raise FatalAPIError(f"{problem} ({FATAL_STATUS[e.code]})") from None
                if e.code not in RETRY_STATUS and e.code < 500:
                    raise APIError(problem) from None
                wait = retry_after_seconds(e.headers.get("Retry-After"))
                if wait is not None and wait > self.max_retry_after:
                    raise FatalAPIError(f"{problem} (Retry-After asks to wait {wait:.0f} s, more than "
                                        f"{self.max_retry_after:g} s: a spent quota or maintenance; rerun later "
                                        f"to resume)") from None
            except (OSError, http.client.HTTPException) as e:  # timeouts, refused or dropped connections
                self._no_reply += 1
                problem = self.message(f"{type(e).__name__}: {getattr(e, 'reason', e)}")
                if self._no_reply >= self.max_unreachable:
                    raise EndpointUnreachable(
                        f"no reply from {where} to {self._no_reply} requests in a row (last: {problem}); the "
                        f"endpoint looks down or the address is wrong. Check --base-url, then rerun to resume"
                    ) from None
            except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError) as e:
                raise APIError(self.message(f"malformed reply from {where}: {type(e).__name__}: {e}")[:500]) from None
            if attempt == self.max_retries:
                raise APIError(f"gave up after {attempt + 1} attempts; last: {problem}")
            backoff = min(self.max_backoff, self.backoff * 2**attempt)
            if wait is not None and wait > self.max_backoff:
                self.log(f"Retry-After asks {wait:.0f} s; waiting {self.max_backoff:g} s, the most this client waits")
            wait = backoff if wait is None else min(wait, self.max_backoff)
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


MAX_IMAGE_BYTES = 20 * 1024 * 1024  # OpenAI's limit per image; a larger file is not a dataset picture


def _media_file(path: str) -> Path:
    """``path`` if it is a regular file: a pipe or a device would be read for ever."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"{path}: " + ("no such file" if not file.exists() else "not a regular file"))
    return file


def image_part(path: str) -> dict[str, Any]:
    """An ``image_url`` content part holding the file at ``path`` as a base64 data URL.

    The file must decode as an image (Pillow), whatever its name says: a file of another kind
    named ``.png`` is not sent. The MIME type is that of the format Pillow found."""
    file = _media_file(path)
    if file.stat().st_size > MAX_IMAGE_BYTES:
        raise ValueError(f"{path} is larger than {MAX_IMAGE_BYTES // 2**20} MB")
    data = file.read_bytes()
    return _data_url(data, _image_mime(data, path))


def _image_mime(data: bytes, path: str) -> str:
    """The MIME type of the image ``data`` (the file ``path``); ``ValueError`` if it does not decode."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            mime = Image.MIME.get(im.format or "")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"{path} is not an image that decodes: {e}") from None
    if mime is None:
        raise ValueError(f"{path}: no MIME type for its image format")
    return mime


def sample_frames(path: str, num_frames: int = 4) -> list[Any]:
    """``num_frames`` frames (PIL images) from the middles of equal parts of the video (needs PyAV)."""
    try:
        import av
    except ImportError:
        raise ImportError("video records need PyAV to take frames: pip install av") from None
    with av.open(str(_media_file(path))) as container:
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
    report and not written, so the next run tries it again. A :class:`FatalAPIError` stops the run
    (a bad key, model or address, a redirect, or an endpoint that does not answer at all). An
    existing ``out`` that is not a store raises :class:`~emollm.prompting.store.StoreError` before
    it is changed; a run that writes nothing creates no file.
    """
    report = GenerateReport()
    todo = plan(list(records), per_task, seed)
    with ExemplarWriter(out) as writer:  # reads and checks an existing store before changing anything
        report.dropped_partial_line = writer.dropped_partial_line
        report.skipped = sum(r.id in writer.ids for r in todo)
        todo = [r for r in todo if r.id not in writer.ids]
        bar = _progress(len(todo), progress)
        try:
            for record in todo:
                try:
                    reply = client.complete(build_messages(record, data_dir, num_frames=num_frames))
                    exemplar = Exemplar(
                        id=record.id, task=record.task, source=record.source, label=record.answer,
                        question=strip_placeholders(record.question), rationale=clean_rationale(client.redact(reply)),
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

"""Helpers of the EmoPrompt tests: valid records, and a scripted chat-completions endpoint on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from emollm.data.records import PLACEHOLDERS, YES_NO, EmoRecord

EMOTIONS = ["anger", "joy", "sadness", "surprise"]


def make_record(id: str, task: str = "emo-c", answer: str = "joy", media: list[dict] | None = None,
                question: str | None = None, text: str | None = None, source: str = "fixture") -> EmoRecord:
    """A valid record whose human turn carries one placeholder per media item."""
    media = media or []
    tags = "".join(PLACEHOLDERS[m["type"]] + "\n" for m in media)
    question = question or f"Question about {id}: which label fits?"
    label_set = list(YES_NO) if task in ("humor", "hate", "sarcasm") else EMOTIONS
    return EmoRecord(id=id, task=task, source=source, label_set=label_set, answer=answer, media=media, text=text,
                     conversations=[{"from": "human", "value": tags + question}, {"from": "gpt", "value": answer}],
                     ).validate()


@dataclass
class Reply:
    status: int = 200
    body: dict | str | None = None  # None: a normal completion of the request
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    time: float
    path: str
    headers: dict[str, str]
    body: dict

    @property
    def user_text(self) -> str:
        return self.body["messages"][1]["content"][0]["text"]

    @property
    def images(self) -> list[str]:
        return [p["image_url"]["url"] for p in self.body["messages"][1]["content"] if p["type"] == "image_url"]


class ChatServer:
    """A chat-completions endpoint on 127.0.0.1 that plays ``script`` (one :class:`Reply` per
    request, in order) and then answers normally, recording every request in ``seen``."""

    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.seen: list[Seen] = []
        self.delay = 0.0  # of every normal reply
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.seen.append(Seen(time.monotonic(), self.path, dict(self.headers), body))
                    reply = server.script.pop(0) if server.script else Reply(delay=server.delay)
                time.sleep(reply.delay)
                payload = reply.body if reply.body is not None else completion(body)
                data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.handle_error = lambda request, address: None  # clients that timed out hang up on us
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def questions(self) -> list[str]:
        """The first line of each request's user text ("Question: ..."), in arrival order."""
        return [s.user_text.splitlines()[0] for s in self.seen]


def completion(request: dict) -> dict:
    """A normal reply: a rationale that names the answer the request gave."""
    text = request["messages"][1]["content"][0]["text"]
    answer = next(line for line in text.splitlines() if line.startswith("Correct answer: ")).split(": ", 1)[1]
    return {"id": "x", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f" The cues point to {answer}. "}}]}

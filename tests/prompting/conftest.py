"""Fixtures for the EmoPrompt tests: EmoBench records on disk and a scripted local chat endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from emollm.data.records import EmoRecord, write_jsonl
from tests.prompting.helpers import EMOTIONS, ChatServer, make_record


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, list[EmoRecord]]:
    """``data/train.jsonl``: six image records (two tasks), each image a distinct small file."""
    data = tmp_path / "data"
    (data / "img").mkdir(parents=True)
    records = []
    for i in range(6):
        Image.new("RGB", (4 + i, 4), (40 * i, 0, 0)).save(data / "img" / f"{i}.png")
        task, answer = ("emo-c", EMOTIONS[i % 4]) if i < 4 else ("sarcasm", "yes")
        records.append(make_record(f"fixture/train/{i}", task, answer, [{"type": "image", "path": f"img/{i}.png"}]))
    write_jsonl(records, data / "train.jsonl")
    return data / "train.jsonl", records


@pytest.fixture
def server():
    s = ChatServer()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()

"""Session.ask streams the answer in pieces; transformers' pipeline runs a saved EmoLLM and agrees."""

import pytest
import torch
import transformers
from PIL import Image

from emollm.inference import Session, load_media_files
from emollm.inference.stream import TokenQueue, text_deltas


@pytest.fixture(scope="module")
def session(tiny_dir):
    return Session.load(str(tiny_dir), device="cpu")


def test_the_answer_arrives_in_pieces_that_add_up(session, media_files):
    reply = session.ask("How does she feel?", load_media_files(image=media_files["image"]), max_new_tokens=8)
    pieces = list(reply)
    assert len(pieces) >= 2 and "".join(pieces).strip() == reply.answer
    assert reply.timings["new_tokens"] == 8 and reply.label is None
    assert list(reply) == [reply.answer]  # a finished reply gives its answer again


def test_a_failing_generate_raises_in_the_reading_thread(session, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(session.model, "generate", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        session.ask("Why?", max_new_tokens=2).wait()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"temperature": float("nan")}, r"temperature must be 0 \(greedy\) or a finite number >= 0.001, got nan"),
    ({"temperature": 1e-45}, "got 1e-45"),
    ({"top_p": float("nan")}, r"top_p must lie in \(0, 1\], got nan"),
    ({"task": "emo-c", "labels": ["Joy", "joy"]}, "differ only in case or spacing"),
])
def test_settings_that_would_decode_wrongly_are_refused_before_generating(session, monkeypatch, kwargs, match):
    monkeypatch.setattr(session.model, "generate", lambda **kw: pytest.fail("generated"))
    with pytest.raises(ValueError, match=match):
        session.ask("Why?", max_new_tokens=2, **kwargs)


def test_held_back_partial_characters():
    # "é" is two bytes; a byte-level decoder shows U+FFFD until both have arrived.
    table = {(1,): "a", (1, 2): "a\ufffd", (1, 2, 3): "aé", (1, 2, 3, 4): "aé!"}
    assert list(text_deltas(iter([[1], [2], [3], [4]]), lambda ids: table[tuple(ids)])) == ["a", "é", "!"]


def test_token_queue_skips_the_prompt_and_refuses_batches():
    q = TokenQueue()
    q.put(torch.tensor([[5, 6, 7]]))  # the prompt
    q.put(torch.tensor([8]))
    q.end()
    assert list(q) == [[8]]
    with pytest.raises(ValueError, match="batch of one"):
        TokenQueue().put(torch.zeros(2, 3, dtype=torch.long))


def test_transformers_pipeline_runs_a_saved_emollm(tiny_dir, media_files, session):
    pipe = transformers.pipeline("image-text-to-text", model=str(tiny_dir))
    image = Image.open(media_files["image"]).convert("RGB")
    messages = [{"role": "user", "content": [{"type": "image", "image": image},
                                             {"type": "text", "text": "How does she feel?"}]}]
    out = pipe(text=messages, max_new_tokens=6, do_sample=False)
    answer = out[0]["generated_text"][-1]["content"]
    # The pipeline renders the chat template, the same prompt as `emollm ask`: the same greedy answer.
    reply = session.ask("How does she feel?", load_media_files(image=media_files["image"]), max_new_tokens=6).wait()
    assert answer.strip() == reply.answer

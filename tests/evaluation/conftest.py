import wave

import numpy as np
import pytest
from PIL import Image

from emollm.data.records import EmoRecord, write_jsonl
from tests.evaluation import helpers


@pytest.fixture
def hand_predictions():
    return helpers.hand_predictions()


@pytest.fixture(scope="module")
def tiny():
    """``(model, processor)`` of emollm-tiny (random weights); tests must not change its weights."""
    from emollm.model import from_named

    return from_named("emollm-tiny", seed=0)


def _record(id, task, label_set, answer, media, question):
    tags = "".join(f"<{m['type']}>\n" for m in media)
    return EmoRecord(id=id, task=task, source=id.split("-")[0], label_set=label_set, answer=answer, media=media,
                     conversations=[{"from": "human", "value": tags + question}, {"from": "gpt", "value": answer}],
                     ).validate()


@pytest.fixture(scope="module")
def media_records(tmp_path_factory):
    """``(records, folder)``: five records in ``folder/test.jsonl`` with relative media paths:
    images (odd sizes), 16-bit PCM wav audio at 8 kHz (resampled on loading), both, and none."""
    folder = tmp_path_factory.mktemp("emobench")
    rng = np.random.default_rng(0)
    (folder / "img").mkdir()
    for name, (h, w) in {"a": (40, 48), "b": (30, 30)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / "img" / f"{name}.png")
    with wave.open(str(folder / "clip.wav"), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(8000)
        f.writeframes((rng.standard_normal(6000) * 3000).astype(np.int16).tobytes())
    image_a, image_b = {"type": "image", "path": "img/a.png"}, {"type": "image", "path": "img/b.png"}
    audio = {"type": "audio", "path": "clip.wav"}
    records = [
        _record("meld-1", "emo-c", helpers.MELD, "joy", [image_a], "Which emotion? " + ", ".join(helpers.MELD)),
        _record("mmsd2-1", "sarcasm", helpers.YN, "no", [audio], "Is this sarcastic? Answer yes or no."),
        _record("meld-2", "emo-o", helpers.MELD, "anger", [image_b, audio], "How does the speaker feel?"),
        _record("mintrec-1", "intent", helpers.INTENTS, "greet", [], "What is the speaker's intent?"),
        _record("mmhs150k-1", "hate", helpers.YN, "yes", [image_b], "Is this meme hateful?"),
    ]
    write_jsonl(records, folder / "test.jsonl")
    return records, folder

"""Conversation text, media loading, the dataset and the collator's label masking."""

import json
import wave

import numpy as np
import pytest
import torch
from PIL import Image

from emollm.data.collator import IGNORE_INDEX, EmoBenchCollator
from emollm.data.dataset import (
    EmoBenchDataset,
    InstructionDataset,
    InstructionRecord,
    conversation_text,
    load_media,
    prompt_text,
)
from emollm.data.media import frame_times, load_audio, load_image, load_video, resample
from emollm.data.records import EmoRecord, RecordError
from emollm.model import build_tiny_tokenizer, from_named


@pytest.fixture(scope="module")
def processor():
    return from_named("emollm-tiny")[1]


def _record(conversations, media=(), task="emo-c", answer="joy"):
    return EmoRecord(id="r1", task=task, source="test", label_set=["joy", "sadness"], answer=answer,
                     conversations=conversations, media=list(media)).validate()


TWO_TURNS = [{"from": "human", "value": "<image>\nWhat emotion?"}, {"from": "gpt", "value": "joy"},
             {"from": "human", "value": "Why?"}, {"from": "gpt", "value": "the red colour"}]


def _messages(turns):
    return [{"role": "user" if t["from"] == "human" else "assistant", "content": t["value"]} for t in turns]


# ---- text ----

def test_prompt_text_is_the_vicuna_v1_chat_template_with_generation_prompt():
    record = _record(TWO_TURNS, [{"type": "image", "path": "a.png"}])
    template = build_tiny_tokenizer().apply_chat_template(_messages(TWO_TURNS[:-1]), tokenize=False,
                                                          add_generation_prompt=True)
    assert prompt_text(record) == template
    assert prompt_text(record).endswith("USER: Why? ASSISTANT:")


def test_conversation_text_is_the_whole_chat_and_lists_the_answers():
    record = _record(TWO_TURNS, [{"type": "image", "path": "a.png"}])
    text, answers = conversation_text(record)
    assert text == build_tiny_tokenizer().apply_chat_template(_messages(TWO_TURNS), tokenize=False)
    assert answers == ["joy", "the red colour"]


def test_exemplar_opens_the_first_human_turn():
    record = _record(TWO_TURNS[:2], [{"type": "image", "path": "a.png"}])
    text = prompt_text(record, exemplar="  Q: a blue sky. A: calm, because blue.\n")
    assert text.endswith(" USER: Q: a blue sky. A: calm, because blue.\n<image>\nWhat emotion? ASSISTANT:")


# ---- collator ----

def _sample(record, images=()):
    text, answers = conversation_text(record)
    return {"id": record.id, "text": text, "answers": answers, "images": list(images), "videos": [], "audio": []}


def _unmasked_spans(labels, tokenizer):
    """Decoded runs of consecutive unmasked labels."""
    spans, run = [], []
    for token in [*labels.tolist(), IGNORE_INDEX]:
        if token != IGNORE_INDEX:
            run.append(token)
        elif run:
            spans.append(tokenizer.decode(run))
            run = []
    return spans


def test_collator_unmasks_exactly_each_answer_and_its_eos(processor):
    tok = processor.tokenizer
    long = _sample(_record(TWO_TURNS, [{"type": "image", "path": "a.png"}]), [Image.new("RGB", (32, 32))])
    short = _sample(_record([{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "yes"}], answer="joy"))
    batch = EmoBenchCollator(processor)([long, short])
    labels, ids, mask = batch["labels"], batch["input_ids"], batch["attention_mask"]
    assert labels.shape == ids.shape and labels.dtype == torch.long
    # Hand-checked: the unmasked runs read back as the answers, each with its </s>, nothing else.
    assert _unmasked_spans(labels[0], tok) == [" joy</s>", " the red colour</s>"]
    assert _unmasked_spans(labels[1], tok) == [" yes</s>"]
    # Their token counts are those of the answers tokenized alone, plus one EOS each.
    n = [len(tok(f" {a}", add_special_tokens=False)["input_ids"]) + 1 for a in ("joy", "the red colour", "yes")]
    assert int((labels[0] != IGNORE_INDEX).sum()) == n[0] + n[1]
    assert int((labels[1] != IGNORE_INDEX).sum()) == n[2]
    kept = labels != IGNORE_INDEX
    assert torch.equal(labels[kept], ids[kept])
    # Padding (right side) and the 112 image placeholders are masked.
    assert mask[1, -1] == 0 and (labels[mask == 0] == IGNORE_INDEX).all()
    assert not kept[ids == processor.image_token_id].any()
    assert int((ids[0] == processor.image_token_id).sum()) == 112
    assert batch["pixel_values"].shape == (1, 3, 32, 32)


def test_collator_rejects_an_eos_string_inside_a_question(processor):
    record = _record([{"from": "human", "value": "say </s> now"}, {"from": "gpt", "value": "joy"}])
    with pytest.raises(ValueError, match=r"'r1': 2 EOS tokens .* 1 answers"):
        EmoBenchCollator(processor)([_sample(record)])


def test_collator_needs_a_fast_tokenizer():
    with pytest.raises(TypeError, match="fast tokenizer"):
        EmoBenchCollator(object())


# ---- media ----

def test_load_image_converts_to_rgb(tmp_path):
    Image.new("L", (5, 3), 200).save(tmp_path / "g.png")
    Image.new("RGBA", (4, 4), (10, 20, 30, 128)).save(tmp_path / "a.png")
    gray, rgba = load_image(tmp_path / "g.png"), load_image(tmp_path / "a.png")
    assert gray.mode == rgba.mode == "RGB" and gray.size == (5, 3)
    assert gray.getpixel((0, 0)) == (200, 200, 200) and rgba.getpixel((1, 1)) == (10, 20, 30)


@pytest.mark.parametrize(("duration", "fps", "cap", "expected"), [
    (5.0, 1.0, 64, [0, 1, 2, 3, 4]),
    (4.5, 1.0, 64, [0, 1, 2, 3, 4]),
    (0.2, 1.0, 64, [0]),
    (3.0, 2.0, 64, [0, 0.5, 1, 1.5, 2, 2.5]),
    (10.0, 1.0, 4, [1.25, 3.75, 6.25, 8.75]),  # beyond the cap: the middle of 4 equal shares
])
def test_frame_times(duration, fps, cap, expected):
    assert frame_times(duration, fps, cap) == pytest.approx(expected)


@pytest.mark.parametrize(("kwargs", "match"), [({"fps": 0}, "fps"), ({"max_frames": 0}, "max_frames"),
                                               ({"duration": -1.0}, "duration")])
def test_frame_times_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        frame_times(**{"duration": 1.0, **kwargs})


def _write_wav(path, samples, rate, width):
    """``samples`` ``[T, C]`` integers already in the wav's range."""
    samples = np.asarray(samples)
    if width == 1:
        raw = samples.astype(np.uint8).tobytes()
    elif width == 3:
        raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in samples.reshape(-1))
    else:
        raw = samples.astype(f"<i{width}").tobytes()
    with wave.open(str(path), "wb") as f:
        f.setnchannels(samples.shape[1])
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(raw)


@pytest.mark.parametrize(("width", "values", "expected"), [
    (1, [[0], [128], [192]], [-1.0, 0.0, 0.5]),  # unsigned 8-bit, 128 = 0
    (2, [[-32768], [0], [16384]], [-1.0, 0.0, 0.5]),
    (3, [[-(2**23)], [0], [2**22]], [-1.0, 0.0, 0.5]),
    (4, [[-(2**31)], [0], [2**30]], [-1.0, 0.0, 0.5]),
])
def test_load_audio_scales_pcm_widths(tmp_path, width, values, expected):
    _write_wav(tmp_path / "a.wav", values, 16000, width)
    audio = load_audio(tmp_path / "a.wav")
    assert audio.dtype == np.float32
    np.testing.assert_array_equal(audio, np.array(expected, np.float32))


def test_load_audio_mixes_down_and_resamples_to_16k(tmp_path):
    t = np.arange(8000) / 8000  # 1 s at 8 kHz
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.1 * np.ones_like(t)
    _write_wav(tmp_path / "s.wav", np.round(np.stack([left, right], 1) * 32767), 8000, 2)
    audio = load_audio(tmp_path / "s.wav")
    assert audio.shape == (16000,) and audio.dtype == np.float32
    t16 = np.arange(16000) / 16000
    expected = (0.5 * np.sin(2 * np.pi * 440 * t16) + 0.1) / 2  # channel mean at the new rate
    inner = slice(400, -400)  # the polyphase filter rings at the edges
    np.testing.assert_allclose(audio[inner], expected[inner], atol=2e-3)


def test_resample_rejects_bad_rates():
    with pytest.raises(ValueError, match="orig_rate=0"):
        resample(np.zeros(4), 0)


def _write_video(path, levels, fps, audio_hz=None):
    """A video of one flat gray frame per level (32x32), optionally with a 44.1 kHz sine audio track."""
    av_mod = pytest.importorskip("av")
    with av_mod.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "1"}
        if audio_hz:
            sound = out.add_stream("aac", rate=44100)
            sound.layout = "mono"
        for level in levels:
            frame = av_mod.VideoFrame.from_ndarray(np.full((32, 32, 3), level, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if audio_hz:
            n = int(44100 * len(levels) / fps)
            wave_ = (0.5 * np.sin(2 * np.pi * audio_hz * np.arange(n) / 44100)).astype(np.float32)
            frame = av_mod.AudioFrame.from_ndarray(wave_[None], format="flt", layout="mono")
            frame.sample_rate = 44100
            out.mux(sound.encode(frame))
            out.mux(sound.encode(None))


def _levels(frames):
    return [round(float(np.asarray(f).mean()) / 5) for f in frames]


def test_load_video_samples_one_frame_per_second(tmp_path):
    _write_video(tmp_path / "v.mp4", [5 * k for k in range(50)], fps=10)  # 5 s; frame k has gray level 5k
    frames = load_video(tmp_path / "v.mp4")
    assert all(f.mode == "RGB" and f.size == (32, 32) for f in frames)
    assert _levels(frames) == [0, 10, 20, 30, 40]  # frames shown at 0, 1, 2, 3, 4 s


def test_load_video_spreads_frames_uniformly_beyond_the_cap(tmp_path):
    _write_video(tmp_path / "v.mp4", [5 * k for k in range(50)], fps=10)
    # 2 frames of a 5 s clip: times 1.25 s and 3.75 s -> the frames shown at 1.3 s and 3.8 s.
    assert _levels(load_video(tmp_path / "v.mp4", max_frames=2)) == [13, 38]


def test_load_audio_decodes_the_track_of_an_mp4(tmp_path):
    _write_video(tmp_path / "v.mp4", [100] * 20, fps=10, audio_hz=500)  # 2 s
    audio = load_audio(tmp_path / "v.mp4")
    assert audio.dtype == np.float32 and abs(audio.shape[0] - 32000) < 2048  # aac pads a frame or two
    spectrum = np.abs(np.fft.rfft(audio[2000:18000]))
    assert np.argmax(spectrum) == pytest.approx(500, abs=2)  # 16000 samples at 16 kHz: 1 Hz bins


# ---- records -> samples ----

def test_load_media_keeps_record_order_and_resolves_paths(tmp_path):
    (tmp_path / "m").mkdir()
    for name, colour in (("a.png", (255, 0, 0)), ("b.png", (0, 0, 255))):
        Image.new("RGB", (8, 8), colour).save(tmp_path / "m" / name)
    _write_wav(tmp_path / "m" / "s.wav", [[0], [16384]], 16000, 2)
    record = _record([{"from": "human", "value": "<image><audio><image>\nWhat?"}, {"from": "gpt", "value": "joy"}],
                     [{"type": "image", "path": "m/a.png"}, {"type": "audio", "path": "m/s.wav"},
                      {"type": "image", "path": str(tmp_path / "m" / "b.png")}])
    media = load_media(record, tmp_path)
    assert [im.getpixel((0, 0)) for im in media["images"]] == [(255, 0, 0), (0, 0, 255)]
    np.testing.assert_array_equal(media["audio"][0], [0.0, 0.5])
    assert media["videos"] == []


def test_emobench_dataset_item(tmp_path):
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "x.png")
    record = _record(TWO_TURNS, [{"type": "image", "path": "x.png"}])
    (tmp_path / "d.jsonl").write_text(json.dumps(record.to_dict()) + "\n")
    data = EmoBenchDataset(tmp_path / "d.jsonl")
    item = data[0]
    assert len(data) == 1 and item["id"] == "r1" and item["answers"] == ["joy", "the red colour"]
    assert item["text"] == conversation_text(record)[0]
    assert item["images"][0].getpixel((0, 0)) == (1, 2, 3)


def test_instruction_records_accept_llava_image_keys_and_check_placeholders(tmp_path):
    turns = [{"from": "human", "value": "<image>\nDescribe."}, {"from": "gpt", "value": "A cat."}]
    record = InstructionRecord.from_dict({"id": "g", "image": "cat.png", "conversations": turns})
    assert record.media == [{"type": "image", "path": "cat.png"}]
    with pytest.raises(RecordError, match="0 <image> placeholder"):
        InstructionRecord.from_dict({"image": "cat.png", "conversations": [{"from": "human", "value": "Hi"},
                                                                            {"from": "gpt", "value": "Yo"}]})
    lines = [json.dumps({"conversations": [*turns[:1], {"from": "gpt", "value": "x"}], "image": "c.png"}), "{bad"]
    (tmp_path / "g.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordError, match=r"g.jsonl:2: not valid JSON"):
        InstructionDataset(tmp_path / "g.jsonl")

"""The synthetic EmoBench: valid records, every task, media that carry the label."""

import collections

import numpy as np
import pytest
from PIL import Image

from emollm.data.media import load_audio
from emollm.data.records import TASKS, read_jsonl
from emollm.data.synth import CHANCE, COLOURS, LABELS, write_synthetic


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return out, write_synthetic(out, n_train=48, n_test=12, seed=3)


def test_files_hold_valid_records_of_every_task(synth):
    out, paths = synth
    assert paths == {"train": out / "train.jsonl", "test": out / "test.jsonl"}
    for split, n in (("train", 48), ("test", 12)):
        records = list(read_jsonl(paths[split], check_media=True))  # validates schema and media files
        assert len(records) == n and {r.split for r in records} == {split}
        assert collections.Counter(r.task for r in records) == {t: n // len(TASKS) for t in TASKS}
        assert all(r.label_set == list(LABELS[r.task]) for r in records)
    ids = [r.id for p in paths.values() for r in read_jsonl(p)]
    assert len(set(ids)) == len(ids)


def test_closed_set_questions_list_the_labels_and_open_set_ones_do_not(synth):
    for r in read_jsonl(synth[1]["train"]):
        listed = all(label in r.question for label in r.label_set)
        if r.task in ("emo-c", "intent"):
            assert listed, r.question
        if r.task == "emo-o":
            assert not any(label in r.question for label in r.label_set), r.question


def test_image_colour_names_the_label(synth):
    out, paths = synth
    for r in read_jsonl(paths["train"]):
        if r.task == "sarcasm":
            continue
        pixels = np.asarray(Image.open(out / r.media[0]["path"]).convert("RGB")).reshape(-1, 3)
        background = np.median(pixels, axis=0)  # the distractor shape covers under half the picture
        assert np.abs(background - COLOURS[r.task, r.answer]).max() <= 20, r.id
        others = [c for (task, label), c in COLOURS.items() if task == r.task and label != r.answer]
        assert all(np.abs(background - c).max() > 20 for c in others)


def _flatness(audio: np.ndarray) -> float:
    """Spectral flatness: geometric / arithmetic mean of the power spectrum (1 = white noise, ~0 = a tone)."""
    power = np.abs(np.fft.rfft(audio)) ** 2 + 1e-12
    return float(np.exp(np.mean(np.log(power))) / np.mean(power))


def test_sarcasm_sound_names_the_answer(synth):
    out, paths = synth
    sarcasm = [r for r in read_jsonl(paths["train"]) if r.task == "sarcasm"]
    assert {r.answer for r in sarcasm} == {"yes", "no"}
    for r in sarcasm:
        audio = load_audio(out / r.media[0]["path"])
        assert audio.shape == (12800,)  # 0.8 s at 16 kHz
        assert (_flatness(audio) > 0.3) == (r.answer == "yes"), r.id


def test_same_seed_same_files_other_seed_other_files(tmp_path, synth):
    write_synthetic(tmp_path / "a", n_train=48, n_test=12, seed=3)
    write_synthetic(tmp_path / "b", n_train=48, n_test=12, seed=4)
    same = (tmp_path / "a" / "train.jsonl").read_bytes() == synth[1]["train"].read_bytes()
    other = (tmp_path / "b" / "train.jsonl").read_bytes() != synth[1]["train"].read_bytes()
    assert same and other
    assert (tmp_path / "a" / "media" / "train_00000.png").read_bytes() == \
        (synth[0] / "media" / "train_00000.png").read_bytes()


def test_chance_levels():
    assert CHANCE == {"emo-c": 0.25, "emo-o": 0.25, "intent": 0.25, "humor": 0.5, "hate": 0.5, "sarcasm": 0.5}


@pytest.mark.parametrize("kwargs", [{"n_train": -1}, {"n_test": 1.5}])
def test_rejects_bad_sizes(tmp_path, kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        write_synthetic(tmp_path, **kwargs)

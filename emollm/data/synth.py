"""A small synthetic EmoBench whose media determine the answer, to show offline that training learns.

Every task of :data:`emollm.data.records.TASKS` is present, in equal shares. Image tasks draw a
32x32 picture whose background colour (jittered) names the label, with a random distractor
shape on top; ``sarcasm`` records carry 0.8 s of sound instead: white noise for yes, a low tone
for no. The question phrasing is drawn from a few templates per task. A model that reads the
question and looks at (or listens to) the media can answer every record; one that does not
is at chance: 1/4 for ``emo-c``, ``emo-o`` and ``intent``, 1/2 for the yes/no tasks.

    write_synthetic("synth", n_train=600, n_test=120, seed=0)
    # synth/train.jsonl, synth/test.jsonl, synth/media/*.png|*.wav
"""

from __future__ import annotations

import math
import os
import wave
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageDraw

from emollm._io import NewFolders, OutputPathError, atomic_write, check_output_dir
from emollm.data.records import TASKS, YES_NO, EmoRecord, write_jsonl

__all__ = ["CHANCE", "COLOURS", "IMAGE_SIZE", "LABELS", "TONE_HZ", "write_synthetic"]

IMAGE_SIZE = 32  # emollm-tiny's CLIP input; larger images are resized by the processor anyway
EMOTIONS = ("joy", "sadness", "anger", "fear")
INTENTS = ("inform", "complain", "praise", "ask")
LABELS: dict[str, tuple[str, ...]] = {"emo-c": EMOTIONS, "emo-o": EMOTIONS, "intent": INTENTS,
                                      "humor": YES_NO, "hate": YES_NO, "sarcasm": YES_NO}
CHANCE = {task: 1.0 / len(labels) for task, labels in LABELS.items()}
# Background colour (RGB) per (task, label); every label of a task has its own colour.
COLOURS: dict[tuple[str, str], tuple[int, int, int]] = {
    **{(t, e): c for t in ("emo-c", "emo-o")
       for e, c in zip(EMOTIONS, ((240, 210, 40), (40, 80, 220), (220, 40, 40), (130, 40, 160)), strict=True)},
    **dict(zip((("intent", i) for i in INTENTS), ((40, 180, 80), (240, 130, 30), (40, 200, 210), (120, 120, 120)),
               strict=True)),
    ("humor", "yes"): (250, 120, 190), ("humor", "no"): (20, 110, 110),
    ("hate", "yes"): (20, 20, 20), ("hate", "no"): (235, 235, 235),
}
# sarcasm: "yes" is white noise, "no" a 300 Hz tone. Two tones of different pitch would do for a
# trained audio tower, but emollm-tiny's random Whisper encoder maps pure tones to nearly the same
# features (distance 0.37 of the noise-vs-tone distance), which the LM then learns slowly.
TONE_HZ = 300.0
SAMPLING_RATE = 16000

_QUESTIONS = {
    "emo-c": ("Which emotion does this image show? Choose one of: {labels}.",
              "What is the emotion here? Options: {labels}.",
              "Pick the emotion expressed, from {labels}."),
    "emo-o": ("How does this image feel?", "What emotion is shown?", "Describe the emotion in one word."),
    "intent": ("What is the intent? Choose one of: {labels}.", "Which intent fits, {labels}?",
               "Name the intent from: {labels}."),
    "humor": ("Is this humorous? Answer yes or no.", "Is it funny? yes or no."),
    "hate": ("Is this hateful? Answer yes or no.", "Is it hate speech? yes or no."),
    "sarcasm": ("Is the speaker sarcastic? Answer yes or no.", "Is this sarcasm? yes or no."),
}


def _image(colour: tuple[int, int, int], rng: np.random.Generator) -> Image.Image:
    """The label's colour, jittered by up to ±20 per channel, with one random small shape on it."""
    base = np.clip(np.array(colour) + rng.integers(-20, 21, 3), 0, 255)
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), tuple(int(c) for c in base))
    draw = ImageDraw.Draw(image)
    size = int(rng.integers(6, 12))
    x, y = (int(v) for v in rng.integers(0, IMAGE_SIZE - size, 2))
    fill = tuple(int(c) for c in rng.integers(0, 256, 3))
    (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x, y, x + size, y + size), fill=fill)
    return image


def _write_sound(file: BinaryIO, noise: bool, rng: np.random.Generator) -> None:
    """0.8 s, 16-bit PCM at 16 kHz, random level: white noise, or a sine at ``TONE_HZ`` ±5% (random
    phase, a little noise)."""
    t = np.arange(int(0.8 * SAMPLING_RATE)) / SAMPLING_RATE
    level = rng.uniform(0.3, 0.6)
    if noise:
        signal = level * 0.5 * rng.standard_normal(t.size)
    else:
        freq = TONE_HZ * rng.uniform(0.95, 1.05)
        signal = level * np.sin(2 * math.pi * freq * t + rng.uniform(0, 2 * math.pi))
        signal += 0.01 * rng.standard_normal(t.size)
    with wave.open(file, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLING_RATE)
        f.writeframes((np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes())


def _save_image(image: Image.Image, path: Path) -> None:
    # No fsync per picture: renaming is what makes a kill safe, and hundreds of fsyncs would
    # dominate the run; the record files, written last, are fsynced.
    with atomic_write(path, "wb", durable=False) as f:
        image.save(f, format="PNG")


def _record(index: int, split: str, out_dir: Path, rng: np.random.Generator) -> EmoRecord:
    task = TASKS[index % len(TASKS)]
    labels = LABELS[task]
    answer = labels[int(rng.integers(len(labels)))]
    name = f"{split}_{index:05d}"
    if task == "sarcasm":
        path, kind = f"media/{name}.wav", "audio"
        with atomic_write(out_dir / path, "wb", durable=False) as f:
            _write_sound(f, answer == "yes", rng)
    else:
        path, kind = f"media/{name}.png", "image"
        _save_image(_image(COLOURS[task, answer], rng), out_dir / path)
    templates = _QUESTIONS[task]
    question = templates[int(rng.integers(len(templates)))].format(labels=", ".join(labels))
    return EmoRecord(
        id=f"synth/{split}/{index:05d}", task=task, source="synth", split=split,
        media=[{"type": kind, "path": path}], label_set=list(labels), answer=answer,
        conversations=[{"from": "human", "value": f"<{kind}>\n{question}"}, {"from": "gpt", "value": answer}],
    ).validate()


def write_synthetic(out_dir: str | os.PathLike, n_train: int = 600, n_test: int = 120,
                    seed: int = 0) -> dict[str, Path]:
    """Writes ``out_dir/train.jsonl`` and ``out_dir/test.jsonl`` (``n_train`` / ``n_test`` records,
    tasks in turn so each split holds every task once ``n >= 6``) and their media under
    ``out_dir/media``. Same ``seed``, same files. Returns ``{"train": path, "test": path}``.

    Each file appears whole or not at all: the old record files are removed first, every file is
    written to a temporary name and renamed, and a record file only after all of its media. A run
    killed midway leaves no half-written record file, and never an old ``test.jsonl`` beside a new
    ``train.jsonl``; a run that fails removes the folders it made.
    """
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {n!r}")
    out_dir = check_output_dir(out_dir)
    rng = np.random.default_rng(seed)
    paths = {split: out_dir / f"{split}.jsonl" for split in ("train", "test")}
    with NewFolders(out_dir / "media", with_contents=True):
        for path in paths.values():
            if path.is_dir():
                raise OutputPathError(f"{path} is a folder; synth writes its records there")
            path.unlink(missing_ok=True)
        for split, n in (("train", n_train), ("test", n_test)):
            # Each record file is renamed into place after the last of its media is written.
            write_jsonl((_record(i, split, out_dir, rng) for i in range(n)), paths[split])
    return paths

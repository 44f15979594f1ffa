"""The builder (items -> EmoBench records) and the question templates."""

import os
import string
import types

import pytest
from PIL import Image

from emollm.data import build as build_module
from emollm.data.build import BuildError, build, records_of
from emollm.data.records import TASKS, YES_NO, read_jsonl, resolve_media
from emollm.data.sources.base import BadItem, SourceItem
from emollm.data.templates import CLOSED_SET_TASKS, TEMPLATES, YES_NO_TASKS, pick_template, render_question

MELD_LABELS = "anger, disgust, fear, joy, neutral, sadness, surprise"
MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"


def image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (10, 200, 10)).save(path)


def meld_root(tmp_path, rows=(("Hey!", "Joey", "surprise", 0, 0), ("Fine.", "Ross", "neutral", 0, 1))):
    root = tmp_path / "MELD.Raw"
    lines = [MELD_HEADER]
    for n, (text, speaker, emotion, dia, utt) in enumerate(rows, 1):
        lines.append(f'{n},"{text}",{speaker},{emotion},neutral,{dia},{utt},1,1,"00:00:01,000","00:00:02,000"')
        clip = root / "train_splits" / f"dia{dia}_utt{utt}.mp4"
        clip.parent.mkdir(parents=True, exist_ok=True)
        clip.write_bytes(b"")
    (root / "train_sent_emo.csv").write_text("\n".join(lines) + "\n")
    return root


def caer_root(tmp_path, n=12):
    root = tmp_path / "CAER-S"
    for i in range(n):
        image(root / "train" / ("Happy", "Sad", "Fear")[i % 3] / f"{i:04d}.png")
    return root


def filled(task, media_noun, labels=MELD_LABELS):
    return {t.format(media=media_noun, labels=labels) for t in TEMPLATES[task]}


# ---------------------------------------------------------------- records


def test_meld_records_have_placeholders_text_question_and_relative_media(tmp_path):
    root = meld_root(tmp_path)
    out = tmp_path / "out" / "meld-train.jsonl"
    summary = build("meld", root, "train", out, seed=3)
    assert (summary.records, dict(summary.by_task), summary.skipped) == (4, {"emo-c": 2, "emo-o": 2}, [])
    records = list(read_jsonl(out, check_media=True))
    assert [r.id for r in records] == ["meld/train/dia0_utt0/emo-c", "meld/train/dia0_utt0/emo-o",
                                       "meld/train/dia0_utt1/emo-c", "meld/train/dia0_utt1/emo-o"]
    first = records[0]
    assert (first.task, first.source, first.split, first.answer, first.accept) == (
        "emo-c", "meld", "train", "surprise", [])
    assert first.label_set == MELD_LABELS.split(", ")
    assert first.text == "Hey!"
    assert first.media == [{"type": "video", "path": "../MELD.Raw/train_splits/dia0_utt0.mp4"},
                           {"type": "audio", "path": "../MELD.Raw/train_splits/dia0_utt0.mp4"}]
    assert resolve_media(first, out.parent)[0]["path"] == str(out.parent / "../MELD.Raw/train_splits/dia0_utt0.mp4")
    human, gpt = first.conversations
    lines = human["value"].split("\n")
    assert lines[:3] == ["<video>", "<audio>", 'Joey says: "Hey!"']
    assert len(lines) == 4 and lines[3] in filled("emo-c", "video")
    assert gpt == {"from": "gpt", "value": "surprise"}
    open_set = records[1].question.split("\n")
    assert open_set[:3] == ["<video>", "<audio>", 'Joey says: "Hey!"'] and open_set[3] in filled("emo-o", "video")
    assert records[3].question.split("\n")[2] == 'Ross says: "Fine."'
    assert summary.describe().startswith(f"wrote 4 record(s) of meld/train to {out} (emo-c 2, emo-o 2)")


def test_emotic_box_is_named_in_the_question_and_accept_kept(tmp_path):
    root = tmp_path / "emotic-data"
    image(root / "emotic/mscoco/images/a.jpg")
    (root / "emotic_pre").mkdir()
    (root / "emotic_pre/test.csv").write_text(
        "Index,Folder,Filename,Image Size,BBox,Categorical_Labels,Continuous_Labels,Gender,Age\n"
        '0,mscoco/images,a.jpg,"[8, 6]","[1, 2, 7, 5]","[\'Peace\', \'Pleasure\']","[7, 3, 6]",Female,Adult\n')
    out = tmp_path / "emotic.jsonl"
    build("emotic", root, "test", out, absolute=True)
    record = next(read_jsonl(out))
    assert (record.answer, record.accept) == ("peace", ["pleasure"])
    assert record.media == [{"type": "image", "path": str((root / "emotic/mscoco/images/a.jpg").resolve())}]
    lines = record.question.split("\n")
    assert lines[:2] == ["<image>", "Consider the person inside the box (1, 2, 7, 5) "
                                    "(left, top, right, bottom, in pixels)."]
    labels = record.label_set
    assert len(labels) == 26 and lines[2] in filled("emo-c", "image", ", ".join(labels))
    assert record.meta == {"bbox": [1, 2, 7, 5], "vad": [7, 3, 6], "gender": "Female", "age": "Adult"}


def test_rebuilding_gives_the_same_file_and_the_seed_redraws_questions(tmp_path):
    root = caer_root(tmp_path)
    a, b, c = (tmp_path / f"{name}.jsonl" for name in "abc")
    build("caer-s", root, "train", a, seed=0)
    build("caer-s", root, "train", b, seed=0)
    build("caer-s", root, "train", c, seed=1)
    assert a.read_bytes() == b.read_bytes()
    qa, qc = ([r.question for r in read_jsonl(p)] for p in (a, c))
    assert len(qa) == 24 and sum(x != y for x, y in zip(qa, qc, strict=True)) >= 12
    assert len(set(qa)) > 6  # questions vary across records, not one phrasing for the file


def test_missing_media_fails_the_build_with_file_and_line_and_writes_nothing(tmp_path):
    root = meld_root(tmp_path)
    os.remove(root / "train_splits/dia0_utt1.mp4")
    out = tmp_path / "out.jsonl"
    with pytest.raises(BuildError) as info:
        build("meld", root, "train", out)
    message = str(info.value)
    assert "1 bad item(s) in meld/train" in message and "--skip-bad" in message
    assert f"{root / 'train_sent_emo.csv'}:3: missing video train_splits/dia0_utt1.mp4" in message
    assert len(info.value.bad) == 1
    assert not out.exists() and list(tmp_path.glob("*.partial")) == []


def test_skip_bad_leaves_bad_items_out_and_counts_them(tmp_path):
    root = meld_root(tmp_path, rows=(("A", "Joey", "joy", 0, 0), ("B", "Joey", "bored", 0, 1),
                                     ("C", "Ross", "anger", 0, 2)))
    os.remove(root / "train_splits/dia0_utt2.mp4")
    out = tmp_path / "out.jsonl"
    summary = build("meld", root, "train", out, skip_bad=True)
    assert summary.records == 2 and len(summary.skipped) == 2
    assert [(b.line, b.reason.split(" ")[0]) for b in summary.skipped] == [(3, "unknown"), (4, "missing")]
    assert [r.id for r in read_jsonl(out)] == ["meld/train/dia0_utt0/emo-c", "meld/train/dia0_utt0/emo-o"]
    assert "skipped 2 bad item(s)" in summary.describe()


def test_many_bad_items_are_listed_up_to_a_limit_and_counted(tmp_path):
    root = meld_root(tmp_path, rows=[("x", "Joey", "bored", 0, u) for u in range(13)])
    with pytest.raises(BuildError) as info:
        build("meld", root, "train", tmp_path / "out.jsonl")
    message = str(info.value)
    assert "13 bad item(s)" in message and "... and 3 more" in message
    assert message.count("unknown label 'bored'") == build_module.MAX_LISTED


def test_limit_tasks_and_argument_errors(tmp_path):
    root = caer_root(tmp_path)
    out = tmp_path / "out.jsonl"
    assert build("caer-s", root, "train", out, limit=5).records == 5
    assert len(list(read_jsonl(out))) == 5
    summary = build("caer-s", root, "train", out, tasks=["emo-o"])
    assert summary.records == 12 and {r.task for r in read_jsonl(out)} == {"emo-o"}
    with pytest.raises(ValueError, match="split 'val' is not one of caer-s's splits"):
        build("caer-s", root, "val", out)
    with pytest.raises(ValueError, match=r"root .* is not a folder"):
        build("caer-s", tmp_path / "nope", "train", out)
    with pytest.raises(ValueError, match=r"tasks \['humor'\] are not produced by caer-s"):
        build("caer-s", root, "train", out, tasks=["humor"])
    with pytest.raises(ValueError, match="limit must be at least 1"):
        build("caer-s", root, "train", out, limit=0)
    with pytest.raises(ValueError, match=r"out must be a \.jsonl file"):
        build("caer-s", root, "train", tmp_path / "out.json")
    with pytest.raises(ValueError, match="unknown source"):
        build("fer2013", root, "train", out)


def test_duplicate_ids_are_bad(tmp_path):
    root = tmp_path / "Emotion6"
    image(root / "images/joy/1.jpg")
    line = "joy/1.jpg\t7\t5\t0\t0\t0\t1\t0\t0\t0"
    (root / "ground_truth.txt").write_text(f"header\n{line}\n{line}\n")
    summary = build("emotion6", root, "all", tmp_path / "e6.jsonl", skip_bad=True)
    assert summary.records == 2
    assert [b.reason for b in summary.skipped] == ["duplicate item id 'joy-1' for task emo-c",
                                                   "duplicate item id 'joy-1' for task emo-o"]


def fake_source(items, labels):
    return types.SimpleNamespace(NAME="fake", TASKS=tuple(labels), LABELS=labels, convert=lambda root, split: items)


def test_builder_catches_what_a_converter_let_through(tmp_path):
    image(tmp_path / "a.png")
    items = [
        SourceItem(id="ok", task="hate", label="yes", media=[{"type": "image", "path": "a.png"}], text="a tweet"),
        SourceItem(id="abs", task="hate", label="no", media=[{"type": "image", "path": str(tmp_path / "a.png")}]),
        SourceItem(id="gone", task="hate", label="no", media=[{"type": "image", "path": "b.png"}]),
        SourceItem(id="label", task="hate", label="maybe", media=[{"type": "image", "path": "a.png"}]),
        SourceItem(id="task", task="humor", label="yes", media=[{"type": "image", "path": "a.png"}]),
        SourceItem(id="box", task="hate", label="no", media=[{"type": "image", "path": "a.png"}], meta={"bbox": [1]}),
        BadItem("ann.json", 7, "malformed entry"),
    ]
    out = list(records_of(fake_source(items, {"hate": list(YES_NO)}), tmp_path, "test", tmp_path))
    ok, absolute = out[0], out[1]
    assert ok.media == [{"type": "image", "path": "a.png"}] and absolute.media == ok.media
    lines = ok.question.split("\n")
    assert lines[:2] == ["<image>", 'Text: "a tweet"'] and lines[2] in filled("hate", "post")
    assert absolute.question.split("\n")[1] in filled("hate", "image")
    bad = out[2:]
    assert all(isinstance(b, BadItem) for b in bad) and len(bad) == 5
    assert "missing image file" in bad[0].reason and str(tmp_path / "b.png") in bad[0].reason
    assert "answer 'maybe' is not in the label set" in bad[1].reason
    assert "task 'humor' is not one of fake's tasks" in bad[2].reason
    assert "meta bbox must be 4 numbers" in bad[3].reason
    assert (bad[4].path, bad[4].line) == ("ann.json", 7)


def test_transcript_line_for_video_without_speaker(tmp_path):
    (tmp_path / "c.mp4").write_bytes(b"")
    items = [SourceItem(id="c", task="humor", label="yes", text="so I said...",
                        media=[{"type": "video", "path": "c.mp4"}, {"type": "audio", "path": "c.mp4"}])]
    (record,) = records_of(fake_source(items, {"humor": list(YES_NO)}), tmp_path, "val", tmp_path)
    lines = record.question.split("\n")
    assert lines[:3] == ["<video>", "<audio>", 'Transcript: "so I said..."'] and lines[3] in filled("humor", "video")
    assert record.id == "fake/val/c/humor"


# ---------------------------------------------------------------- templates


def test_every_task_has_at_least_20_distinct_phrasings():
    assert set(TEMPLATES) == set(TASKS)
    for task, bank in TEMPLATES.items():
        assert len(set(bank)) == len(bank) >= 20, task
        for template in bank:
            fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
            assert fields <= {"media", "labels"}, template
            assert ("labels" in fields) == (task in CLOSED_SET_TASKS), template
            if task in YES_NO_TASKS:
                words = template.lower()
                assert "yes" in words and "no" in words, template


def test_closed_set_questions_list_every_label():
    labels = ["anger", "doubt/confusion", "yearning"]
    for task in CLOSED_SET_TASKS:
        for key in range(60):
            question = render_question(task, f"r{key}", media=["image"], label_set=labels, seed=5)
            assert "anger, doubt/confusion, yearning" in question


def test_template_draw_is_deterministic_and_uses_the_whole_bank():
    for task, bank in TEMPLATES.items():
        draws = [pick_template(task, f"src/train/{i}/{task}", seed=0) for i in range(800)]
        assert draws == [pick_template(task, f"src/train/{i}/{task}", seed=0) for i in range(800)]
        assert set(draws) == set(bank)  # ~36 draws per phrasing: every one appears
    with pytest.raises(ValueError, match="task must be one of"):
        pick_template("joke", "x")
    with pytest.raises(ValueError, match="label_set must be non-empty"):
        render_question("emo-c", "x", media=["image"], label_set=[])

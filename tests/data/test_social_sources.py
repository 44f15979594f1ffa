"""Converters for MIntRec, SMILE, MMHS150K and MMSD2.0 on tiny fixtures written in each dataset's own layout.

Every expected item below is written out by hand from the fixture it is read from.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from emollm.data.records import TASKS
from emollm.data.sources import mintrec, mmhs150k, mmsd2, smile
from emollm.data.sources.base import BadItem, SourceItem

MODULES = (mintrec, smile, mmhs150k, mmsd2)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def touch(path: Path) -> None:
    """An empty file: enough for the converters, which check that media exist but never decode them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def tiny_jpeg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (200, 30, 30)).save(path, format="JPEG")


def split_items(results):
    items = [r for r in results if isinstance(r, SourceItem)]
    bad = [r for r in results if isinstance(r, BadItem)]
    assert len(items) + len(bad) == len(results)
    return items, bad


def assert_bad(bad: list[BadItem], expected: list[tuple[Path, int | None, str]]) -> None:
    """``expected``: (file, line, a phrase of the reason), in the order the converter reports them."""
    assert [(b.path, b.line) for b in bad] == [(str(p), line) for p, line, _ in expected]
    for b, (_, _, phrase) in zip(bad, expected, strict=True):
        assert phrase in b.reason, (phrase, b.reason)


# ----------------------------------------------------------------------------------------------- interface


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.NAME)
def test_module_interface(module):
    assert module.NAME == module.__name__.rsplit(".", 1)[1]
    assert set(module.TASKS) <= set(TASKS) and set(module.LABELS) == set(module.TASKS)
    assert module.SPLITS == {"mintrec": ("train", "dev", "test"), "smile": ("train", "val", "test"),
                             "mmhs150k": ("train", "val", "test"), "mmsd2": ("train", "valid", "test")}[module.NAME]
    for labels in module.LABELS.values():
        assert labels and len(set(labels)) == len(labels)
        assert all(label == label.lower().strip() for label in labels)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.NAME)
def test_unknown_split_is_rejected(module, tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        list(module.convert(tmp_path, "dev-set"))


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.NAME)
def test_missing_annotations_raise(module, tmp_path):
    with pytest.raises(FileNotFoundError, match=module.NAME):
        list(module.convert(tmp_path, "train"))


# ----------------------------------------------------------------------------------------------- MIntRec


def test_mintrec_labels_are_the_published_intents():
    published = ["Complain", "Praise", "Apologise", "Thank", "Criticize", "Agree", "Taunt", "Flaunt", "Joke",
                 "Oppose", "Comfort", "Care", "Inform", "Advise", "Arrange", "Introduce", "Leave", "Prevent",
                 "Greet", "Ask for help"]
    assert sorted(mintrec.LABELS["intent"]) == sorted(x.lower() for x in published)


def test_mintrec_rows_and_bad_rows(tmp_path):
    tsv = write(tmp_path / "train.tsv", "\n".join([
        "season\tepisode\tclip\ttext\tlabel\tVideo_Link",           # 1: header; extra columns are ignored
        "S04\tE16\t164\they, so i couldn't find the movie\tAsk for help\thttps://x",  # 2
        "S05\tE10\t142\tsorry i'm late.\tApologize",                  # 3: the README's spelling
        "S05\tE15\t110",                                              # 4: too few fields
        "S05\tE15\t111\tla la la\tSing",                              # 5: not an intent
        "S04\tE16\t164\tagain\tPraise",                               # 6: same index as line 2
        "S06\tE01\t7\thello there.\tGreet",                           # 7: no clip file
        "\tE01\t8\thi\tGreet",                                        # 8: no season
        "",
    ]) + "\n")
    touch(tmp_path / "raw_data/S04/E16/164.mp4")
    touch(tmp_path / "raw_data/S05/E10/142.mp4")
    items, bad = split_items(list(mintrec.convert(tmp_path, "train")))
    video1, video2 = "raw_data/S04/E16/164.mp4", "raw_data/S05/E10/142.mp4"
    assert items == [
        SourceItem(id="S04_E16_164", task="intent", label="ask for help", text="hey, so i couldn't find the movie",
                   media=[{"type": "video", "path": video1}, {"type": "audio", "path": video1}]),
        SourceItem(id="S05_E10_142", task="intent", label="apologise", text="sorry i'm late.",
                   media=[{"type": "video", "path": video2}, {"type": "audio", "path": video2}]),
    ]
    assert_bad(bad, [(tsv, 4, "malformed row"), (tsv, 5, "unknown label 'Sing'"), (tsv, 6, "duplicate sample"),
                     (tsv, 7, "missing video raw_data/S06/E01/7.mp4"), (tsv, 8, "malformed row")])


def test_mintrec_splits_read_their_own_files(tmp_path):
    header = "season\tepisode\tclip\ttext\tlabel\n"
    for name, clip in (("train.tsv", 1), ("dev.tsv", 2), ("test.tsv", 3)):
        bom = "\ufeff" if name == "train.tsv" else ""  # a byte-order mark, as spreadsheet exports write
        write(tmp_path / name, bom + header + f"S04\tE01\t{clip}\tline {clip}\tInform\n")
        touch(tmp_path / f"raw_data/S04/E01/{clip}.mp4")
    ids = {split: [i.id for i in mintrec.convert(tmp_path, split)] for split in mintrec.SPLITS}
    assert ids == {"train": ["S04_E01_1"], "dev": ["S04_E01_2"], "test": ["S04_E01_3"]}


def test_mintrec_rejects_a_foreign_header(tmp_path):
    write(tmp_path / "train.tsv", "index\ttext\tlabel\n1\thi\tGreet\n")
    with pytest.raises(ValueError, match="header"):
        list(mintrec.convert(tmp_path, "train"))


# ----------------------------------------------------------------------------------------------- SMILE


def smile_fixture(root: Path, splits: dict) -> tuple[Path, Path]:
    split_path = write(root / "annotations/data_split.json", json.dumps(splits))
    reasons = {
        "1_80": "The audience laughs because Sheldon takes the joke literally.",  # entry 1
        "1402": "  The speaker mocks his own slides.  ",                          # entry 2
        "2_5": "",                                                                  # entry 3: empty reason
        "1_90": "Penny's deadpan reply.",                                           # entry 4
    }
    reason_path = write(root / "annotations/GT_laughter_reason.json", json.dumps(reasons))
    for clip in ("1_80", "1402", "2_5"):
        touch(root / f"videos/video_clips/{clip}.mp4")
    return split_path, reason_path


def test_smile_clips_and_bad_ids(tmp_path):
    split_path, reason_path = smile_fixture(tmp_path, {
        "train": ["1_80", 1402, "1_80", "2_5", "9_9", None],
        "validation": ["1_90"], "test": [],
    })
    items, bad = split_items(list(smile.convert(tmp_path, "train")))
    assert items == [
        SourceItem(id="1_80", task="humor", label="yes",
                   media=[{"type": "video", "path": "videos/video_clips/1_80.mp4"},
                          {"type": "audio", "path": "videos/video_clips/1_80.mp4"}],
                   meta={"laughter_reason": "The audience laughs because Sheldon takes the joke literally.",
                         "video_type": "sitcom"}),
        SourceItem(id="1402", task="humor", label="yes",
                   media=[{"type": "video", "path": "videos/video_clips/1402.mp4"},
                          {"type": "audio", "path": "videos/video_clips/1402.mp4"}],
                   meta={"laughter_reason": "The speaker mocks his own slides.", "video_type": "ted"}),
    ]
    assert_bad(bad, [(split_path, 3, "duplicate clip id 1_80"), (reason_path, 3, "malformed laughter reason"),
                     (split_path, 5, "no entry in GT_laughter_reason.json"), (split_path, 6, "malformed clip id")])
    # val comes from the "validation" key; its one clip has a reason but no video file
    assert_bad(list(smile.convert(tmp_path, "val")), [(split_path, 1, "missing video videos/video_clips/1_90.mp4")])
    assert list(smile.convert(tmp_path, "test")) == []


def test_smile_split_keys_must_be_unambiguous(tmp_path):
    smile_fixture(tmp_path, {"train": [], "val": ["1_80"], "dev": ["1402"], "test": "1_80"})
    with pytest.raises(ValueError, match="exactly one of the keys"):
        list(smile.convert(tmp_path, "val"))
    with pytest.raises(ValueError, match="must be a list of clip ids"):
        list(smile.convert(tmp_path, "test"))


def test_smile_rejects_a_split_file_that_is_not_an_object(tmp_path):
    smile_fixture(tmp_path, {})
    write(tmp_path / "annotations/data_split.json", '[{"train": ["1_80"]}]')
    with pytest.raises(ValueError, match="expected a JSON object"):
        list(smile.convert(tmp_path, "train"))


# ----------------------------------------------------------------------------------------------- MMHS150K


def mmhs_entry(labels, text="a tweet"):
    names = ["NotHate", "Racist", "Sexist", "Homophobe", "Religion", "OtherHate"]
    return {"img_url": "http://pbs.twimg.com/x.jpg", "labels": labels, "tweet_url": "https://twitter.com/x",
            "tweet_text": text, "labels_str": [names[v] if isinstance(v, int) and 0 <= v < 6 else "?" for v in labels]}


def test_mmhs150k_majority_vote_and_bad_samples(tmp_path):
    gt = {
        "101": mmhs_entry([1, 2, 0], "@someone look at this https://t.co/abc "),  # entry 1: two hate votes -> yes
        "102": mmhs_entry([0, 0, 3]),                       # entry 2: one hate vote -> no, but its OCR file is broken
        "103": mmhs_entry([0, 7, 1]),                       # entry 3: 7 is no category
        "104": mmhs_entry([5, 5, 5], text=5),               # entry 4: text is not a string
        "105": "oops",                                      # entry 5: not an object
        "106": mmhs_entry([0, 0, 0]),                       # entry 6: no image
        "107": mmhs_entry([0, 4, 0], "just a photo"),       # entry 7: one vote -> no
        "108": mmhs_entry([0, 0]),                          # entry 8: two annotators only
    }
    gt_path = write(tmp_path / "MMHS150K_GT.json", json.dumps(gt))
    ids = write(tmp_path / "splits/train_ids.txt", "101\n102\n103\n104\n105\n106\n107\n108\n999\nabc\n101\n\n")
    for tweet in ("101", "102", "103", "104", "105", "107", "108"):
        tiny_jpeg(tmp_path / f"img_resized/{tweet}.jpg")
    write(tmp_path / "img_txt/101.json", json.dumps({"img_text": "STOP THEM"}))
    ocr_102 = write(tmp_path / "img_txt/102.json", "{not json")
    items, bad = split_items(list(mmhs150k.convert(tmp_path, "train")))
    assert items == [
        SourceItem(id="101", task="hate", label="yes", text="@someone look at this https://t.co/abc",
                   media=[{"type": "image", "path": "img_resized/101.jpg"}],
                   meta={"annotator_labels": ["racist", "sexist", "nothate"], "image_text": "STOP THEM"}),
        SourceItem(id="107", task="hate", label="no", text="just a photo",
                   media=[{"type": "image", "path": "img_resized/107.jpg"}],
                   meta={"annotator_labels": ["nothate", "religion", "nothate"]}),
    ]
    assert_bad(bad, [
        (ocr_102, None, "malformed OCR file"),
        (gt_path, 3, "unknown labels [0, 7, 1]"),
        (gt_path, 4, "tweet_text 5 is not a string"),
        (gt_path, 5, "expected an object"),
        (ids, 6, "missing image img_resized/106.jpg"),
        (gt_path, 8, "expected 3 integers"),
        (ids, 9, "999 has no entry"),
        (ids, 10, "malformed line"),
        (ids, 11, "duplicate tweet id 101"),
    ])


def test_mmhs150k_splits_read_their_id_files(tmp_path):
    write(tmp_path / "MMHS150K_GT.json", json.dumps({str(t): mmhs_entry([2, 2, 0]) for t in (1, 2, 3)}))
    for tweet, split in ((1, "train"), (2, "val"), (3, "test")):
        write(tmp_path / f"splits/{split}_ids.txt", f"{tweet}\n")
        tiny_jpeg(tmp_path / f"img_resized/{tweet}.jpg")
    ids = {split: [i.id for i in mmhs150k.convert(tmp_path, split)] for split in mmhs150k.SPLITS}
    assert ids == {"train": ["1"], "val": ["2"], "test": ["3"]}


def test_mmhs150k_rejects_ground_truth_that_is_not_an_object(tmp_path):
    write(tmp_path / "MMHS150K_GT.json", "[]")
    write(tmp_path / "splits/train_ids.txt", "1\n")
    with pytest.raises(ValueError, match="expected a JSON object"):
        list(mmhs150k.convert(tmp_path, "train"))


# ----------------------------------------------------------------------------------------------- MMSD2.0


def test_mmsd2_entries_and_bad_entries(tmp_path):
    big = 915657464401580032  # above 2**53: must be read as the exact integer, not a float
    entries = [
        {"image_id": big, "text": "whew ... that extra <num> miles today wore me out .", "label": 1},  # 1
        {"image_id": "123", "text": "<user> nice weather", "label": 0},                              # 2
        {"image_id": 124, "text": "x", "label": 2},                                                  # 3
        {"image_id": 125, "label": 1},                                                               # 4
        [1, 2],                                                                                      # 5
        {"image_id": big, "text": "again", "label": 0},                                              # 6
        {"image_id": 126, "text": "y", "label": 0},                                                  # 7: no image
        {"image_id": True, "text": "z", "label": 0},                                                 # 8
        {"image_id": 127, "text": "t", "label": True},                                               # 9
        {"image_id": 128, "text": None, "label": 1},                                                 # 10
    ]
    path = write(tmp_path / "text_json_final/train.json", json.dumps(entries))
    for image in (big, 123, 124, 125, 127, 128):
        tiny_jpeg(tmp_path / f"dataset_image/{image}.jpg")
    items, bad = split_items(list(mmsd2.convert(tmp_path, "train")))
    assert items == [
        SourceItem(id="915657464401580032", task="sarcasm", label="yes",
                   text="whew ... that extra <num> miles today wore me out .",
                   media=[{"type": "image", "path": "dataset_image/915657464401580032.jpg"}]),
        SourceItem(id="123", task="sarcasm", label="no", text="<user> nice weather",
                   media=[{"type": "image", "path": "dataset_image/123.jpg"}]),
    ]
    assert_bad(bad, [(path, 3, "unknown label 2"), (path, 4, "malformed entry"), (path, 5, "malformed entry"),
                     (path, 6, "duplicate image_id"), (path, 7, "missing image dataset_image/126.jpg"),
                     (path, 8, "not an integer tweet id"), (path, 9, "unknown label True"),
                     (path, 10, "is not a string")])


def test_mmsd2_splits_read_their_own_files(tmp_path):
    for name, image in (("train.json", 1), ("valid.json", 2), ("test.json", 3)):
        write(tmp_path / f"text_json_final/{name}", json.dumps([{"image_id": image, "text": "t", "label": 1}]))
        tiny_jpeg(tmp_path / f"dataset_image/{image}.jpg")
    ids = {split: [i.id for i in mmsd2.convert(tmp_path, split)] for split in mmsd2.SPLITS}
    assert ids == {"train": ["1"], "valid": ["2"], "test": ["3"]}


@pytest.mark.parametrize("content, phrase", [("{}", "expected a JSON array"), ("[{", "not valid JSON")])
def test_mmsd2_rejects_a_file_that_is_not_an_array(tmp_path, content, phrase):
    write(tmp_path / "text_json_final/test.json", content)
    with pytest.raises(ValueError, match=phrase):
        list(mmsd2.convert(tmp_path, "test"))


def test_mintrec_rejects_an_empty_file(tmp_path):
    write(tmp_path / "test.tsv", "")
    with pytest.raises(ValueError, match="header"):
        list(mintrec.convert(tmp_path, "test"))


# ----------------------------------------------------------------------------------------------- end to end


def one_good_sample(module, root: Path) -> tuple[str, dict[str, str], list[str]]:
    """Writes one sample of ``module``'s layout under ``root``: (split, {record id: answer}, media kinds)."""
    if module is mintrec:
        write(root / "test.tsv", "season\tepisode\tclip\ttext\tlabel\nS05\tE07\t278\thello there.\tGreet\n")
        touch(root / "raw_data/S05/E07/278.mp4")
        return "test", {"mintrec/test/S05_E07_278/intent": "greet"}, ["video", "audio"]
    if module is smile:
        smile_fixture(root, {"train": [], "val": [], "test": [1402]})
        return "test", {"smile/test/1402/humor": "yes"}, ["video", "audio"]
    if module is mmhs150k:
        write(root / "MMHS150K_GT.json", json.dumps({"7": mmhs_entry([3, 0, 3], "some tweet")}))
        write(root / "splits/test_ids.txt", "7\n")
        tiny_jpeg(root / "img_resized/7.jpg")
        return "test", {"mmhs150k/test/7/hate": "yes"}, ["image"]
    write(root / "text_json_final/test.json", json.dumps([{"image_id": 42, "text": "so much fun", "label": 0}]))
    tiny_jpeg(root / "dataset_image/42.jpg")
    return "test", {"mmsd2/test/42/sarcasm": "no"}, ["image"]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.NAME)
def test_build_through_the_registry(module, tmp_path):
    build = pytest.importorskip("emollm.data.build")
    from emollm.data.records import PLACEHOLDERS, read_jsonl
    from emollm.data.sources import get_source

    assert get_source(module.NAME) is module
    root = tmp_path / "dataset"
    split, answers, kinds = one_good_sample(module, root)
    out = tmp_path / "out" / f"{module.NAME}.jsonl"
    summary = build.build(module.NAME, root, split, out, progress=False)
    assert summary.records == 1 and not summary.skipped
    records = list(read_jsonl(out, check_media=True))
    assert {r.id: r.answer for r in records} == answers
    (record,) = records
    assert record.source == module.NAME and record.label_set == module.LABELS[record.task]
    assert [m["type"] for m in record.media] == kinds
    assert all(PLACEHOLDERS[kind] in record.question for kind in kinds)
    assert record.conversations[-1] == {"from": "gpt", "value": record.answer}


def test_build_reports_a_converter_bad_item_with_file_and_line(tmp_path):
    build = pytest.importorskip("emollm.data.build")
    entries = [{"image_id": 1, "text": "fine", "label": 1}, {"image_id": 2, "text": "odd", "label": "sarcastic"}]
    annotations = write(tmp_path / "text_json_final/test.json", json.dumps(entries))
    for image in (1, 2):
        tiny_jpeg(tmp_path / f"dataset_image/{image}.jpg")
    with pytest.raises(build.BuildError, match=f"{annotations}:2: unknown label 'sarcastic'"):
        build.build("mmsd2", tmp_path, "test", tmp_path / "out.jsonl", progress=False)
    assert not (tmp_path / "out.jsonl").exists()

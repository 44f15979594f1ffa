"""The emotion converters (Emotic, CAER-S, MELD, Emotion6) on tiny fixtures in each source's own layout.

Every expected item below is written out by hand from the fixture rows.
"""

import csv
import hashlib

import pytest
from PIL import Image

from emollm.data.records import TASKS
from emollm.data.sources import SOURCES, caer_s, emotic, emotion6, get_source, meld
from emollm.data.sources.base import BadItem, SourceItem

EMOTION_TASKS = ("emo-c", "emo-o")


def image(path, colour=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), colour).save(path)
    return path


def both_tasks(**fields):
    """The item a converter yields for each of emo-c and emo-o."""
    return [SourceItem(task=task, **fields) for task in EMOTION_TASKS]


def split_items(items):
    good = [i for i in items if isinstance(i, SourceItem)]
    bad = [i for i in items if isinstance(i, BadItem)]
    assert len(good) + len(bad) == len(items)
    return good, bad


def assert_bad(bad, path, line, *words):
    assert (bad.path, bad.line) == (str(path), line), bad
    for word in words:
        assert word in bad.reason, bad


# ---------------------------------------------------------------- registry


def test_registry_names_every_source_and_each_module_has_the_interface():
    assert list(SOURCES) == ["emotic", "caer-s", "meld", "emotion6", "mintrec", "smile", "mmhs150k", "mmsd2"]
    for name in SOURCES:
        module = get_source(name)
        assert module.NAME == name
        assert set(module.TASKS) <= set(TASKS) and set(module.LABELS) == set(module.TASKS)
        for labels in module.LABELS.values():
            assert labels and all(label == label.lower() for label in labels)
            assert len(set(labels)) == len(labels)
        assert callable(module.convert) and module.SPLITS


def test_unknown_source_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown source 'affectnet'.*emotic, caer-s, meld, emotion6, mintrec"):
        get_source("affectnet")


# ---------------------------------------------------------------- Emotic

EMOTIC_HEADER = ["Index", "Folder", "Filename", "Image Size", "BBox", "Categorical_Labels", "Continuous_Labels",
                 "Gender", "Age"]


def write_emotic(root, split, rows):
    path = root / "emotic_pre" / f"{split}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f, dialect="excel")  # as mat2py writes them: lists as Python literals
        writer.writerow(EMOTIC_HEADER)
        writer.writerows(rows)
    return path


def test_emotic_reads_people_boxes_multilabels_and_vad(tmp_path):
    image(tmp_path / "emotic/mscoco/images/COCO_1.jpg")
    image(tmp_path / "emotic/framesdb/images/frame_2.jpg")
    path = write_emotic(tmp_path, "train", [
        [0, "mscoco/images", "COCO_1.jpg", "[640, 480]", "[86, 58, 564, 428]", "['Engagement', 'Happiness']",
         "[6, 5, 7]", "Male", "Adult"],
        [1, "framesdb/images", "frame_2.jpg", "[320, 240]", "[1, 2, 30, 40]", "['Doubt/Confusion']",
         "[3, 4, 5]", "Female", "Kid"],
    ])
    good, bad = split_items(list(emotic.convert(tmp_path, "train")))
    assert bad == []
    assert good == both_tasks(
        id="COCO_1-0", label="engagement", accept=["happiness"],
        media=[{"type": "image", "path": "emotic/mscoco/images/COCO_1.jpg"}],
        meta={"bbox": [86, 58, 564, 428], "vad": [6, 5, 7], "gender": "Male", "age": "Adult"},
    ) + both_tasks(
        id="frame_2-1", label="doubt/confusion", accept=[],
        media=[{"type": "image", "path": "emotic/framesdb/images/frame_2.jpg"}],
        meta={"bbox": [1, 2, 30, 40], "vad": [3, 4, 5], "gender": "Female", "age": "Kid"},
    )
    assert path.is_file()


def test_emotic_reports_bad_rows_with_file_and_line(tmp_path):
    image(tmp_path / "emotic/mscoco/images/a.jpg")
    path = write_emotic(tmp_path, "val", [
        [0, "mscoco/images", "a.jpg", "[8, 6]", "[0, 0, 4, 4]", "['Joyful']", "[5, 5, 5]", "Male", "Adult"],
        [1, "mscoco/images", "gone.jpg", "[8, 6]", "[0, 0, 4, 4]", "['Peace']", "[5, 5, 5]", "Male", "Adult"],
        [2, "mscoco/images", "a.jpg", "[8, 6]", "[0, 0, 4]", "['Peace']", "[5, 5, 5]", "Male", "Adult"],
        [3, "mscoco/images", "a.jpg", "[8, 6]", "[0, 0, 4, 4]", "[]", "[5, 5, 5]", "Male", "Adult"],
        [4, "mscoco/images", "a.jpg", "[8, 6]", "[0, 0, 4, 4]", "Peace", "[5, 5, 5]", "Male", "Adult"],
        [5, "mscoco/images", "a.jpg"],
        [6, "mscoco/images", "a.jpg", "[8, 6]", "[0, 0, 4, 4]", "['Peace', 'Fear']", "[5, 5, 5]", "Male", "Adult"],
    ])
    good, bad = split_items(list(emotic.convert(tmp_path, "val")))
    assert [b.line for b in bad] == [2, 3, 4, 5, 6, 7]
    assert_bad(bad[0], path, 2, "unknown label", "joyful")
    assert_bad(bad[1], path, 3, "missing image", "emotic/mscoco/images/gone.jpg")
    assert_bad(bad[2], path, 4, "BBox")
    assert_bad(bad[3], path, 5, "Categorical_Labels")
    assert_bad(bad[4], path, 6, "Categorical_Labels")
    assert_bad(bad[5], path, 7, "malformed row")
    assert [(g.id, g.task, g.label, g.accept) for g in good] == [
        ("a-6", "emo-c", "peace", ["fear"]), ("a-6", "emo-o", "peace", ["fear"])]


def test_emotic_missing_csv_or_columns_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"emotic_pre/test\.csv"):
        list(emotic.convert(tmp_path, "test"))
    path = tmp_path / "emotic_pre" / "test.csv"
    path.parent.mkdir()
    path.write_text("Index,Folder,Filename\n0,a,b.jpg\n")
    with pytest.raises(ValueError, match=r"test.csv:1: header lacks column\(s\) \['BBox'"):
        list(emotic.convert(tmp_path, "test"))


# ---------------------------------------------------------------- CAER-S


def test_caer_s_reads_class_folders(tmp_path):
    image(tmp_path / "train/Anger/0001.png")
    image(tmp_path / "train/Angry/0005.png")  # the other spelling found in some copies
    image(tmp_path / "train/Surprise/0007.png")
    image(tmp_path / "test/Sad/0009.png")
    (tmp_path / "train/.DS_Store").write_bytes(b"\0")
    good, bad = split_items(list(caer_s.convert(tmp_path, "train")))
    assert bad == []
    assert good == (
        both_tasks(id="anger-0001", label="anger", media=[{"type": "image", "path": "train/Anger/0001.png"}])
        + both_tasks(id="anger-0005", label="anger", media=[{"type": "image", "path": "train/Angry/0005.png"}])
        + both_tasks(id="surprise-0007", label="surprise",
                     media=[{"type": "image", "path": "train/Surprise/0007.png"}])
    )
    good, _ = split_items(list(caer_s.convert(tmp_path, "test")))
    assert [(g.id, g.label) for g in good] == [("sad-0009", "sad")] * 2


def test_caer_s_reports_unknown_folders_and_stray_files(tmp_path):
    image(tmp_path / "train/Happy/0002.png")
    image(tmp_path / "train/Bored/0003.png")
    (tmp_path / "train/Happy/notes.txt").write_text("x")
    image(tmp_path / "train/stray.png")
    good, bad = split_items(list(caer_s.convert(tmp_path, "train")))
    assert [(g.id, g.label) for g in good] == [("happy-0002", "happy")] * 2
    by_path = {b.path: b for b in bad}
    assert set(by_path) == {str(tmp_path / p) for p in ("train/Bored/0003.png", "train/Happy/notes.txt",
                                                          "train/stray.png")}
    assert "unknown label folder 'Bored'" in by_path[str(tmp_path / "train/Bored/0003.png")].reason
    assert "not an image" in by_path[str(tmp_path / "train/Happy/notes.txt")].reason
    assert "outside a class folder" in by_path[str(tmp_path / "train/stray.png")].reason
    with pytest.raises(FileNotFoundError, match="test"):
        list(caer_s.convert(tmp_path, "test"))


# ---------------------------------------------------------------- MELD

MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")  # an empty mp4 is enough for the existence check
    return path


def test_meld_reads_utterances_with_video_audio_and_text(tmp_path):
    touch(tmp_path / "train_splits/dia0_utt0.mp4")
    touch(tmp_path / "train_splits/dia0_utt1.mp4")
    # The original CSV's "\x92" (a Windows-1252 apostrophe stored as a C1 control) becomes "’".
    (tmp_path / "train_sent_emo.csv").write_text(
        MELD_HEADER + "\n"
        '1,"also I was the point person on my company\x92s transition",Chandler,neutral,neutral,0,0,8,21,'
        '"00:16:16,059","00:16:21,731"\n'
        '2,"Oh my God, you did it!",Monica,Surprise,positive,0,1,8,21,"00:16:22,000","00:16:23,500"\n',
        encoding="utf-8")
    good, bad = split_items(list(meld.convert(tmp_path, "train")))
    assert bad == []
    media0 = [{"type": "video", "path": "train_splits/dia0_utt0.mp4"},
              {"type": "audio", "path": "train_splits/dia0_utt0.mp4"}]
    media1 = [{"type": "video", "path": "train_splits/dia0_utt1.mp4"},
              {"type": "audio", "path": "train_splits/dia0_utt1.mp4"}]
    assert good == both_tasks(
        id="dia0_utt0", label="neutral", media=media0,
        text="also I was the point person on my company’s transition",
        meta={"speaker": "Chandler", "sentiment": "neutral", "season": "8", "episode": "21",
              "starttime": "00:16:16,059", "endtime": "00:16:21,731"},
    ) + both_tasks(
        id="dia0_utt1", label="surprise", media=media1, text="Oh my God, you did it!",
        meta={"speaker": "Monica", "sentiment": "positive", "season": "8", "episode": "21",
              "starttime": "00:16:22,000", "endtime": "00:16:23,500"},
    )


@pytest.mark.parametrize(("split", "folder"), [("dev", "dev_splits_complete"), ("test", "output_repeated_splits_test")])
def test_meld_split_folders_and_windows_1252_files(tmp_path, split, folder):
    touch(tmp_path / folder / "dia3_utt1.mp4")
    text = MELD_HEADER + "\n" + '7,"It’s fine",Ross,joy,positive,3,1,1,1,"00:00:01,000","00:00:02,000"\n'
    (tmp_path / f"{split}_sent_emo.csv").write_bytes(text.encode("cp1252"))  # "’" is byte 0x92: not UTF-8
    good, bad = split_items(list(meld.convert(tmp_path, split)))
    assert bad == []
    assert [(g.id, g.label, g.text, g.media[0]["path"]) for g in good] == [
        ("dia3_utt1", "joy", "It’s fine", f"{folder}/dia3_utt1.mp4")] * 2


def test_meld_reports_bad_rows_with_file_and_line(tmp_path):
    touch(tmp_path / "train_splits/dia1_utt0.mp4")
    path = tmp_path / "train_sent_emo.csv"
    path.write_text(
        MELD_HEADER + "\n"
        '1,"Hi",Joey,excited,positive,1,0,1,1,"00:00:01,000","00:00:02,000"\n'
        '2,"Where is it?",Joey,anger,negative,125,3,1,1,"00:00:01,000","00:00:02,000"\n'
        '3,"Multi\nline",Joey,fear,negative,x,0,1,1,"00:00:01,000","00:00:02,000"\n'
        '4,"Short",Joey\n'
        '5,"Fine.",Joey,sadness,negative,1,0,1,1,"00:00:01,000","00:00:02,000"\n')
    good, bad = split_items(list(meld.convert(tmp_path, "train")))
    assert_bad(bad[0], path, 2, "unknown label 'excited'")
    assert_bad(bad[1], path, 3, "missing video train_splits/dia125_utt3.mp4")
    assert_bad(bad[2], path, 4, "Dialogue_ID")  # the row starts on line 4 and spans two lines
    assert_bad(bad[3], path, 6, "malformed row")
    assert len(bad) == 4
    assert [(g.id, g.label) for g in good] == [("dia1_utt0", "sadness")] * 2


# ---------------------------------------------------------------- Emotion6

E6_HEADER = ("[image_filename]\t[valence]\t[arousal]\t[prob. anger]\t[prob. disgust]\t[prob. fear]\t[prob. joy]"
             "\t[prob. sadness]\t[prob. surprise]\t[prob. neutral]")


def test_emotion6_label_is_the_argmax_and_ties_are_accepted(tmp_path):
    image(tmp_path / "images/disgust/1.jpg")
    image(tmp_path / "images/joy/12.jpg")
    (tmp_path / "ground_truth.txt").write_text("\n".join([
        E6_HEADER,
        "disgust/1.jpg\t2.5\t3.8\t0.133333\t0.7\t0\t0.0666667\t0.1\t0\t0",  # the readme's example line
        "joy/12.jpg\t7.1\t5.0\t0\t0\t0\t0.4\t0\t0.2\t0.4",  # joy and neutral tie
    ]) + "\n")
    good, bad = split_items(list(emotion6.convert(tmp_path, "all")))
    assert bad == []
    assert good == both_tasks(
        id="disgust-1", label="disgust", accept=[], media=[{"type": "image", "path": "images/disgust/1.jpg"}],
        meta={"valence": 2.5, "arousal": 3.8, "distribution": {
            "anger": 0.133333, "disgust": 0.7, "fear": 0.0, "joy": 0.0666667, "sadness": 0.1, "surprise": 0.0,
            "neutral": 0.0}},
    ) + both_tasks(
        id="joy-12", label="joy", accept=["neutral"], media=[{"type": "image", "path": "images/joy/12.jpg"}],
        meta={"valence": 7.1, "arousal": 5.0, "distribution": {
            "anger": 0.0, "disgust": 0.0, "fear": 0.0, "joy": 0.4, "sadness": 0.0, "surprise": 0.2, "neutral": 0.4}},
    )


def test_emotion6_reports_bad_lines_with_file_and_line(tmp_path):
    image(tmp_path / "images/fear/3.jpg")
    path = tmp_path / "ground_truth.txt"
    path.write_text("\n".join([
        E6_HEADER,
        "fear/3.jpg\t4\t6\t0\t0\t1\t0\t0\t0",  # 9 fields
        "fear/3.jpg\t4\t6\t0\t0\tlots\t0\t0\t0\t0",
        "fear/3.jpg\t4\t6\t0\t0\t0\t0\t0\t0\t0",  # no emotion at all
        "fear/99.jpg\t4\t6\t0\t0\t1\t0\t0\t0\t0",
        "",
        "fear/3.jpg\t4\t6\t0.1\t0\t0.9\t0\t0\t0\t0",
    ]) + "\n")
    good, bad = split_items(list(emotion6.convert(tmp_path, "all")))
    assert_bad(bad[0], path, 2, "9 tab-separated fields, expected 10")
    assert_bad(bad[1], path, 3, "non-numeric")
    assert_bad(bad[2], path, 4, "not all zero")
    assert_bad(bad[3], path, 5, "missing image images/fear/99.jpg")
    assert len(bad) == 4
    assert [(g.id, g.label) for g in good] == [("fear-3", "fear")] * 2


def test_emotion6_train_and_test_partition_all_about_two_to_one(tmp_path):
    names = [f"{e}/{n}.jpg" for e in ("anger", "disgust", "fear", "joy", "sadness", "surprise") for n in range(1, 41)]
    for name in names:
        touch(tmp_path / "images" / name)
    (tmp_path / "ground_truth.txt").write_text(
        E6_HEADER + "\n" + "".join(f"{n}\t5\t5\t0\t0\t0\t1\t0\t0\t0\n" for n in names))
    ids = {s: {g.id for g in split_items(list(emotion6.convert(tmp_path, s)))[0]} for s in ("train", "test", "all")}
    assert ids["train"] | ids["test"] == ids["all"] and not ids["train"] & ids["test"]
    assert len(ids["all"]) == len(names)
    assert 0.2 < len(ids["test"]) / len(names) < 0.47  # a third in expectation; 240 names
    # The rule is a hash of the name alone: an independent sha256 gives the same partition.
    expected_test = {n.replace("/", "-").removesuffix(".jpg") for n in names
                     if int.from_bytes(hashlib.sha256(n.encode()).digest()[:8], "big") % 3 == 0}
    assert ids["test"] == expected_test

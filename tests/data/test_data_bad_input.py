"""Hostile and careless input to ``emollm data`` and the record reader: a clear error naming the
file and line, or a right result; never a traceback, a torn or stale file, or a path out of the data."""

import json

import pytest
from PIL import Image

from emollm import cli
from emollm.data import synth
from emollm.data.records import RecordError, read_jsonl
from emollm.data.sources import emotic, emotion6
from emollm.data.sources.base import BadItem
from tests.data.test_cli_data import caer_root, record
from tests.data.test_emotion_sources import image, write_emotic


def stats(capsys, *paths):
    code = cli.main(["data", "stats", *map(str, paths)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str) -> str:
    assert err.startswith("emollm data stats: ") and "Traceback" not in err and err.count("\n") == 1, err
    return err


def lines(*records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


YN = ["yes", "no"]


# ---- atomic outputs ----

def test_synth_stopped_midway_leaves_no_torn_or_stale_record_file(tmp_path, monkeypatch):
    out = tmp_path / "synth"
    synth.write_synthetic(out, n_train=12, n_test=6, seed=0)  # an earlier, complete set
    drawn = []
    real = synth._image

    def fails_at_the_fifth(*args):
        drawn.append(1)
        if len(drawn) == 5:
            raise OSError("No space left on device")
        return real(*args)

    monkeypatch.setattr(synth, "_image", fails_at_the_fifth)
    with pytest.raises(OSError):
        synth.write_synthetic(out, n_train=12, n_test=6, seed=1)
    # Neither a cut train.jsonl nor the old test.jsonl beside new media: no record file at all.
    assert not (out / "train.jsonl").exists() and not (out / "test.jsonl").exists()
    assert not list(out.glob(".*.tmp")) and not list((out / "media").glob(".*.tmp"))


def test_write_jsonl_keeps_the_old_file_when_a_record_is_bad(tmp_path):
    from emollm.data.records import write_jsonl

    path = tmp_path / "r.jsonl"
    path.write_text(lines(record("1", "humor", "s", "yes", YN)))
    with pytest.raises(RecordError):
        write_jsonl([record("2", "humor", "s", "yes", YN), record("3", "humor", "s", "maybe", YN)], path)
    assert [r.id for r in read_jsonl(path)] == ["1"]


# ---- reading ----

def test_a_whole_last_line_without_newline_is_a_record(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    path.write_text(lines(record("1", "humor", "s", "yes", YN)) + json.dumps(record("2", "humor", "s", "no", YN)))
    code, out, _ = stats(capsys, path)
    assert code == 0 and "2 record(s) in 1 file(s)" in out


def test_a_cut_off_last_line_is_named_as_such(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    path.write_text(lines(record("1", "humor", "s", "yes", YN)) + '{"id": "2", "ta')
    code, _, err = stats(capsys, path)
    assert code == 1 and f"{path}:2: the last line is cut off" in one_line_error(err)


def test_a_byte_order_mark_is_accepted(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + lines(record("1", "humor", "s", "yes", YN)).encode())
    code, out, _ = stats(capsys, path)
    assert code == 0 and "1 record(s)" in out


def test_bytes_that_are_not_utf8_are_named_with_file_and_line(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    good = lines(record("1", "humor", "s", "yes", YN), record("2", "humor", "s", "no", YN)).encode()
    path.write_bytes(good + b'{"id": "3\xff"}\n')
    code, _, err = stats(capsys, path)
    assert code == 1 and f"{path}:3: not UTF-8 text (byte 0xff" in one_line_error(err)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("text", 5, "'text' must be a string or absent"),
    ("source", 7, "'source' must be a non-empty string"),
    ("split", ["train"], "'split' must be a string or absent"),
    ("meta", [], "'meta' must be an object"),
    ("media", [{"type": "image", "path": 5}], "media item {'type': 'image', 'path': 5} needs a 'type' in"),
    ("accept", [1], "'accept' must be a list of labels"),
    ("answer", {"label": "yes"}, "'answer' must be a string"),
])
def test_a_field_of_the_wrong_json_type_is_named(tmp_path, capsys, field, value, message):
    path = tmp_path / "r.jsonl"
    path.write_text(lines(record("1", "humor", "s", "yes", YN), {**record("2", "humor", "s", "yes", YN), field: value}))
    code, _, err = stats(capsys, path)
    assert code == 1 and f"{path}:2: {message}" in one_line_error(err)


def test_deep_nesting_and_huge_lines_are_refused_at_their_line(tmp_path, capsys):
    deep = tmp_path / "deep.jsonl"
    deep.write_text(lines(record("1", "humor", "s", "yes", YN))
                    + '{"id": "2", "meta": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    code, _, err = stats(capsys, deep)
    assert code == 1 and f"{deep}:2: nested deeper than" in one_line_error(err)
    huge = tmp_path / "huge.jsonl"
    huge.write_text(json.dumps({**record("1", "humor", "s", "yes", YN), "text": "x" * 9_000_000}) + "\n")
    code, _, err = stats(capsys, huge)
    assert code == 1 and f"{huge}:1: line longer than" in one_line_error(err)


def test_duplicate_ids_are_reported_not_counted_twice(tmp_path, capsys):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(lines(record("1", "humor", "s", "yes", YN), record("2", "humor", "s", "no", YN)))
    b.write_text(lines(record("3", "humor", "s", "yes", YN), record("2", "humor", "s", "no", YN)))
    code, _, err = stats(capsys, a, b)
    assert code == 1 and f"{b}:2: id '2' was already read at {a}:2" in one_line_error(err)
    a.write_text(lines(record("1", "humor", "s", "yes", YN), record("1", "humor", "s", "no", YN)))
    code, _, err = stats(capsys, a)
    assert code == 1 and f"{a}:2: id '1' repeats line 1" in one_line_error(err)


def test_a_device_or_folder_is_not_read_as_records(tmp_path):
    with pytest.raises(RecordError, match="not a regular file"):
        list(read_jsonl("/dev/zero"))
    with pytest.raises(RecordError, match="is a folder"):
        list(read_jsonl(tmp_path))


# ---- confinement: media paths stay in their data folder ----

def test_emotic_rows_pointing_out_of_the_dataset_are_bad_items(tmp_path):
    root = tmp_path / "EMOTIC"
    image(root / "emotic/mscoco/images/ok.jpg")
    image(tmp_path / "secret.jpg")  # exists, but outside the dataset
    row = ["[640, 480]", "[1, 2, 3, 4]", "['Peace']", "[5, 5, 5]", "Male", "Adult"]
    csv = write_emotic(root, "train", [["0", "mscoco/images", "ok.jpg", *row],
                                       ["1", "mscoco/images", "../../../secret.jpg", *row],
                                       ["2", "/", str(tmp_path / "secret.jpg"), *row]])
    items = list(emotic.convert(root, "train"))
    bad = [i for i in items if isinstance(i, BadItem)]
    assert [(b.path, b.line) for b in bad] == [(str(csv), 3), (str(csv), 4)]
    assert "leads out of the dataset folder" in bad[0].reason and "is absolute" in bad[1].reason
    assert len(items) == 2 + 2  # the good row's two tasks


def test_emotion6_absolute_file_names_are_bad_items(tmp_path):
    image(tmp_path / "images/joy/1.jpg")
    image(tmp_path / "elsewhere/2.jpg")
    probabilities = "\t0\t0\t0\t1\t0\t0\t0"
    (tmp_path / "ground_truth.txt").write_text(
        "header\n" + f"joy/1.jpg\t5\t5{probabilities}\n" + f"{tmp_path / 'elsewhere/2.jpg'}\t5\t5{probabilities}\n")
    items = list(emotion6.convert(tmp_path, "all"))
    bad = [i for i in items if isinstance(i, BadItem)]
    assert len(bad) == 1 and bad[0].line == 3 and "is absolute" in bad[0].reason
    assert len(items) == 3
    for split in ("train", "test"):  # whichever split the name hashes to, it is reported in both
        assert [b.line for b in emotion6.convert(tmp_path, split) if isinstance(b, BadItem)] == [3]


def test_read_jsonl_confines_media_to_the_file_folder(tmp_path):
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "r.jsonl"
    for media_path in ("../secret.png", "/etc/hostname", "img/../../secret.png"):
        media = [{"type": "image", "path": media_path}]
        path.write_text(lines({**record("1", "humor", "s", "yes", YN), "media": media}))
        assert len(list(read_jsonl(path))) == 1  # reading alone is allowed
        with pytest.raises(RecordError, match=rf"{path}:1: image path .* lies outside the data folder"):
            list(read_jsonl(path, confine_media=True))
    path.write_text(lines({**record("1", "humor", "s", "yes", YN), "media": [{"type": "image", "path": "a/../b.png"}]}))
    assert len(list(read_jsonl(path, confine_media=True))) == 1


# ---- failed runs leave nothing behind ----

def test_a_failed_build_leaves_no_file_and_no_folder(tmp_path, capsys):
    root = caer_root(tmp_path)
    (root / "train" / "Happy" / "notes.txt").write_text("not an image")  # a bad item: the build fails
    out = tmp_path / "new" / "deeper" / "caer.jsonl"
    code = cli.main(["data", "build", "--source", "caer-s", "--root", str(root), "--split", "train",
                     "--out", str(out), "--no-progress"])
    assert code == 1 and "nothing written" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_build_notes_media_outside_the_output_folder(tmp_path, capsys):
    out = tmp_path / "emobench" / "caer.jsonl"
    assert cli.main(["data", "build", "--source", "caer-s", "--root", str(caer_root(tmp_path)), "--split", "train",
                     "--out", str(out), "--no-progress"]) == 0
    assert "--allow-outside-media" in capsys.readouterr().out


def test_synth_writes_readable_pictures(tmp_path):
    paths = synth.write_synthetic(tmp_path, n_train=6, n_test=0)
    first = next(read_jsonl(paths["train"], check_media=True, confine_media=True))
    with Image.open(tmp_path / first.media[0]["path"]) as im:
        assert im.size == (synth.IMAGE_SIZE, synth.IMAGE_SIZE)


def test_confinement_follows_symlinks_out_of_the_data_folder(tmp_path):
    (tmp_path / "data" / "media").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("root:x:0:0")
    (tmp_path / "data" / "media" / "link.png").symlink_to(tmp_path / "secret.txt")
    (tmp_path / "data" / "media" / "up").symlink_to(tmp_path)
    path = tmp_path / "data" / "r.jsonl"
    for media_path in ("media/link.png", "media/up/secret.txt"):
        media = [{"type": "image", "path": media_path}]
        path.write_text(lines({**record("1", "humor", "s", "yes", YN), "media": media}))
        with pytest.raises(RecordError, match=rf"{path}:1: image path .* leads through a symlink out of the data"):
            list(read_jsonl(path, confine_media=True))
        assert len(list(read_jsonl(path))) == 1  # reading alone is allowed: --allow-outside-media
    Image.new("RGB", (4, 4)).save(tmp_path / "data" / "a.png")
    (tmp_path / "data" / "media" / "inside.png").symlink_to(tmp_path / "data" / "a.png")
    path.write_text(lines({**record("1", "humor", "s", "yes", YN),
                           "media": [{"type": "image", "path": "media/inside.png"}]}))
    assert len(list(read_jsonl(path, check_media=True, confine_media=True))) == 1  # a link within the folder


def test_confinement_takes_a_linked_data_folder_either_way(tmp_path):
    real = tmp_path / "real"
    (real / "img").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(real / "img" / "a.png")
    (tmp_path / "link").symlink_to(real)
    path = tmp_path / "link" / "r.jsonl"
    for media_path in ("img/a.png", str(real / "img" / "a.png"), str(tmp_path / "link" / "img" / "a.png")):
        media = [{"type": "image", "path": media_path}]
        path.write_text(lines({**record("1", "humor", "s", "yes", YN), "media": media}))
        assert len(list(read_jsonl(path, check_media=True, confine_media=True))) == 1

import json

import pytest

from emollm.prompting.store import (
    Exemplar,
    ExemplarWriter,
    StoreError,
    append_exemplars,
    drop_partial_tail,
    load_store,
    save_store,
    strip_placeholders,
)


def exemplar(i: int, task: str = "emo-c", **kw) -> Exemplar:
    fields = dict(id=f"src/train/{i}", task=task, source="src", question=f"Which emotion, {i}?", label="joy",
                  rationale=f"She smiles widely ({i}), so she feels joy.")
    return Exemplar(**{**fields, **kw})


def good_line(i: int, **kw) -> str:
    return json.dumps(exemplar(i, **kw).to_dict())


def test_round_trip_keeps_every_field_and_relativizes_media(tmp_path):
    media_file = tmp_path / "media" / "a.jpg"
    items = [exemplar(0, media=[{"type": "image", "path": str(media_file)}], embedding=[0.5, -1.0],
                      meta={"model": "m"}),
             exemplar(1, task="sarcasm", label="no")]
    store = tmp_path / "prompts" / "store.jsonl"
    assert save_store(items, store) == 2
    raw = [json.loads(line) for line in store.read_text().splitlines()]
    assert raw[0]["media"] == [{"type": "image", "path": "../media/a.jpg"}]  # relative to the store's folder
    assert "embedding" not in raw[1] and raw[1]["media"] == []
    assert load_store(store) == items  # absolute again in memory


def test_append_adds_lines_and_refuses_a_known_id(tmp_path):
    store = tmp_path / "store.jsonl"
    assert append_exemplars([exemplar(0)], store) == 1
    assert append_exemplars([exemplar(1), exemplar(2)], store) == 2
    assert [e.id for e in load_store(store)] == ["src/train/0", "src/train/1", "src/train/2"]
    with ExemplarWriter(store) as writer, pytest.raises(StoreError, match="already in the store"):
        writer.append(exemplar(1))
    assert len(load_store(store)) == 3


def test_save_refuses_repeated_ids_and_keeps_the_old_file(tmp_path):
    store = tmp_path / "store.jsonl"
    save_store([exemplar(0)], store)
    with pytest.raises(StoreError, match="appears twice"):
        save_store([exemplar(1), exemplar(1)], store)
    assert [e.id for e in load_store(store)] == ["src/train/0"]
    assert not (tmp_path / "store.jsonl.tmp").exists()


@pytest.mark.parametrize(("bad", "message"), [
    ('{"id": "x", "task": ', "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    (json.dumps({"id": "x", "task": "emo-c", "source": "s", "question": "q", "label": "joy"}),
     r"missing field\(s\) \['rationale'\]"),
    (good_line(9, task="mood"), "unknown task 'mood'"),
    (json.dumps({**exemplar(9).to_dict(), "colour": 1}), r"unknown field\(s\) \['colour'\]"),
    (good_line(9, rationale="  "), "'rationale' must be a non-empty string"),
    (good_line(9, label=3), "'label' must be a non-empty string"),
    (good_line(9, question="<image>\nWhich emotion?"), "'question' contains a media placeholder"),
    (good_line(9, media=[{"type": "smell", "path": "a"}]), "'media' must be a list"),
    (good_line(9, embedding=[1.0, float("nan")]), "NaN is not JSON"),  # refused by the JSON-lines reader
    (good_line(9, embedding=[1.0, 2.0, 3.0]), "embedding has 3 values, earlier ones 2"),
    (good_line(0), "id 'src/train/0' repeats line 1"),
])
def test_bad_line_is_reported_with_file_and_line(tmp_path, bad, message):
    store = tmp_path / "store.jsonl"
    store.write_text(good_line(0, embedding=[1.0, 2.0]) + "\n\n" + bad + "\n" + good_line(5) + "\n")
    with pytest.raises(StoreError, match=message) as info:
        load_store(store)
    assert str(info.value).startswith(f"{store}:3: ")  # the blank line 2 is skipped but counted
    assert info.value.line == 3


def test_drop_partial_tail_cuts_only_an_unterminated_last_line(tmp_path):
    store = tmp_path / "store.jsonl"
    whole = good_line(0) + "\n" + good_line(1) + "\n"
    store.write_text(whole)
    assert not drop_partial_tail(store)
    store.write_text(whole + good_line(2)[:25])
    assert drop_partial_tail(store)
    assert store.read_text() == whole
    store.write_text('{"id": "half')  # a first line cut short: nothing is left
    assert drop_partial_tail(store) and store.read_text() == ""
    assert not drop_partial_tail(tmp_path / "missing.jsonl")


def test_strip_placeholders():
    assert strip_placeholders("<video>\n<audio>\nThe speaker says: hi.\nWhich emotion?") == \
        "The speaker says: hi.\nWhich emotion?"
    assert strip_placeholders("Look at <image> here") == "Look at  here"

"""General (objective) instruction data as LLaVA publishes it: a JSON array of conversations with
``image`` / ``video`` paths relative to an ``--image-folder``, for the mix and sequential strategies."""

import json
import re

import pytest
from PIL import Image

from emollm.cli import main as cli_main
from emollm.data.collator import EmoBenchCollator
from emollm.data.dataset import InstructionDataset
from emollm.data.records import RecordError
from emollm.data.synth import write_synthetic


def _llava_item(i, image=None):
    first = ("<image>\n" if image else "") + f"What is shown in picture {i}?"
    item = {"id": f"llava-{i}", "conversations": [{"from": "human", "value": first},
                                                  {"from": "gpt", "value": f"Picture {i} shows a square."},
                                                  {"from": "human", "value": "What colour?"},
                                                  {"from": "gpt", "value": "Red."}]}
    return {**item, "image": image} if image else item


@pytest.fixture
def llava(tmp_path):
    """``(json_file, image_folder)``: LLaVA's layout, the images apart from the JSON file."""
    images = tmp_path / "images"
    (images / "coco" / "train2017").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (40, 30), (200, 10 * i, 10)).save(images / "coco" / "train2017" / f"{i:012d}.jpg")
    items = [_llava_item(i, f"coco/train2017/{i:012d}.jpg") for i in range(3)] + [_llava_item(3)]  # one text-only
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "llava_mix.json"
    path.write_text(json.dumps(items, indent=1))  # an array over many lines, as LLaVA's files are
    return path, images


def test_a_llava_json_array_loads_with_its_image_folder(llava):
    path, images = llava
    data = InstructionDataset(path, image_folder=images)
    assert len(data) == 4 and [r.id for r in data.records] == ["llava-0", "llava-1", "llava-2", "llava-3"]
    item = data[1]
    assert item["images"][0].size == (40, 30) and item["answers"] == ["Picture 1 shows a square.", "Red."]
    assert data[3]["images"] == []


def test_bad_arrays_and_missing_images_are_named(llava, tmp_path):
    path, images = llava
    with pytest.raises(RecordError, match=r"missing image file .*000000000000.jpg \(relative paths are taken "
                                          r"against the file's folder"):
        InstructionDataset(path)  # without --image-folder the paths start from the JSON file's folder
    with pytest.raises(RecordError, match=r"record 0 \(id 'llava-0'\): missing image file .* against --image-folder"):
        InstructionDataset(path, image_folder=tmp_path)
    items = json.loads(path.read_text())
    items[2]["conversations"][0]["value"] = "no placeholder"
    path.write_text(json.dumps(items))
    with pytest.raises(RecordError, match=re.escape(f"{path}: record 2 (id 'llava-2'): 0 <image> placeholder(s)")):
        InstructionDataset(path, image_folder=images)
    path.write_text("[{\"id\": 1,\n")
    with pytest.raises(RecordError, match=r"not valid JSON \(.* at line 2 column 1\)"):
        InstructionDataset(path, image_folder=images)


def test_mix_training_takes_llava_files(llava, tmp_path, monkeypatch):
    path, images = llava
    synth = write_synthetic(tmp_path / "synth", n_train=4, n_test=0, seed=0)
    seen = []
    collate = EmoBenchCollator.__call__

    def spy(self, samples):
        seen.extend(s["id"] for s in samples)
        return collate(self, samples)

    monkeypatch.setattr(EmoBenchCollator, "__call__", spy)
    assert cli_main(["train", "--model", "emollm-tiny", "--data", str(synth["train"]), "--output",
                     str(tmp_path / "run"), "--strategy", "mix", "--general", str(path), "--image-folder",
                     str(images), "--epochs", "1", "--batch-size", "4", "--save-steps", "100"]) == 0
    assert sorted(i for i in seen if i.startswith("llava")) == ["llava-0", "llava-1", "llava-2", "llava-3"]
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["image_folder"] == str(images)


def test_image_folder_without_general_data_is_refused(tmp_path, capsys):
    assert cli_main(["train", "--model", "emollm-tiny", "--data", "d.jsonl", "--output", str(tmp_path / "o"),
                     "--image-folder", str(tmp_path)]) == 2
    assert "image_folder goes with general data (--general FILE)" in capsys.readouterr().err

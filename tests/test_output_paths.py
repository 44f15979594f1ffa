"""Every command that writes refuses an output path it cannot use, in one line with exit code 2,
before it does any work: a folder where a file belongs, a file where a folder belongs, a path
under a file, a folder that cannot be written."""

import importlib.util
import json

import pytest
from PIL import Image

from emollm.cli import main
from emollm.data.synth import write_synthetic
from tests.bad_input_helpers import error_lines, unwritable_folder


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    root = folder / "CAER-S"
    (root / "train" / "Happy").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(root / "train" / "Happy" / "1.png")
    data = write_synthetic(folder / "synth", n_train=6, n_test=0)["train"]
    predictions = folder / "predictions.jsonl"
    predictions.write_text(json.dumps({"id": "a", "task": "humor", "source": "s", "label_set": ["yes", "no"],
                                       "answer": "yes", "output": "yes", "parsed": "yes"}) + "\n")
    return {"ROOT": str(root), "DATA": str(data), "PRED": str(predictions)}


# command -> (argv with OUT where the output path goes, the output is a file rather than a folder)
COMMANDS = {
    "data build": (["data", "build", "--source", "caer-s", "--root", "ROOT", "--split", "train", "--out", "OUT",
                    "--no-progress"], True),
    "prompts generate": (["prompts", "generate", "--data", "DATA", "--out", "OUT", "--base-url",
                          "http://127.0.0.1:9/v1", "--model", "m", "--no-progress"], True),
    "data synth": (["data", "synth", "--out", "OUT", "--train", "6", "--test", "6"], False),
    "eval": (["eval", "--predictions", "PRED", "--out", "OUT"], False),
    "train": (["train", "--model", "emollm-tiny", "--data", "DATA", "--output", "OUT", "--max-steps", "1"], False),
    "demo": (["demo", "--out", "OUT", "--small", "--repeat", "1", "--device", "cpu"], False),
}


def bad_path(kind: str, tmp_path, is_file: bool):
    (tmp_path / "notes.txt").write_text("mine")
    if kind == "a folder" if is_file else kind == "a file":
        if is_file:
            (tmp_path / "taken.jsonl").mkdir()
            return tmp_path / "taken.jsonl", "is a folder"
        return tmp_path / "notes.txt", "is a file, not a folder"
    if kind == "under a file":
        return tmp_path / "notes.txt" / "out.jsonl", "notes.txt is a file, so nothing can be written under it"
    return unwritable_folder(tmp_path) / "out.jsonl", "cannot write in"


@pytest.mark.parametrize("kind", ["a folder or a file", "under a file", "unwritable"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_bad_output_path_is_one_line_and_exit_code_2(command, kind, inputs, tmp_path, capsys, monkeypatch):
    if command == "demo" and not (importlib.util.find_spec("skimage") and importlib.util.find_spec("matplotlib")):
        pytest.skip("the demo needs scikit-image and matplotlib")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    argv, is_file = COMMANDS[command]
    kind = kind if kind != "a folder or a file" else ("a folder" if is_file else "a file")
    out, message = bad_path(kind, tmp_path, is_file)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code = main([{"OUT": str(out), **inputs}.get(a, a) for a in argv])
    (line,) = error_lines(capsys.readouterr().err, "emollm ")
    assert code == 2
    assert line.startswith(f"emollm {command}: ") and message in line, line
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "notes.txt").read_text() == "mine"

import json

import pytest
import torch

from emollm.cli import main
from emollm.evaluation.cli import load_model
from tests.evaluation.helpers import MELD, YN, pred


def _write(path, preds, tail=""):
    path.write_text("".join(json.dumps(p) + "\n" for p in preds) + tail)


def test_rescore_without_a_model(tmp_path, capsys):
    # Stored parses are stale (as from an older parser): re-scoring reads the outputs again.
    preds = [pred("a", "emo-c", "meld", MELD, "joy", "The man is glad.", None, correct=False),
             pred("b", "emo-c", "meld", MELD, "anger", "She looks scared", "anger", correct=True),
             pred("c", "humor", "smile", YN, "yes", "It is funny.", None),
             pred("d", "humor", "smile", YN, "no", "hmm", "no", correct=True)]
    source = tmp_path / "old" / "predictions.jsonl"
    source.parent.mkdir()
    _write(source, preds, tail='{"id": "e", "task"')  # the cut-off line of a killed run
    out = tmp_path / "new"
    assert main(["eval", "--predictions", str(source), "--out", str(out)]) == 0

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["overall"]["count"] == 4 and metrics["overall"]["correct"] == 2
    assert metrics["tasks"]["emo-c"]["accuracy"] == 0.5 and metrics["tasks"]["humor"]["accuracy"] == 0.5
    assert metrics["unparseable"] == [{"id": "d", "task": "humor", "source": "smile", "output": "hmm"}]
    rescored = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [(p["id"], p["parsed"], p["correct"]) for p in rescored] == [
        ("a", "joy", True), ("b", "fear", False), ("c", "yes", True), ("d", None, False)]
    assert (out / "accuracy.png").read_bytes().startswith(b"\x89PNG")
    assert "| 50.00 | – | – | – | 50.00 | – | 50.00 |" in (out / "report.md").read_text()
    assert "Overall" in capsys.readouterr().out


def test_rescore_in_place(tmp_path):
    path = tmp_path / "predictions.jsonl"
    _write(path, [pred("a", "emo-c", "meld", MELD, "joy", "joy", None)])
    assert main(["eval", "--predictions", str(path), "--out", str(tmp_path)]) == 0
    assert json.loads(path.read_text())["parsed"] == "joy"


def test_eval_with_a_named_model(media_records, tmp_path):
    records, folder = media_records
    out = tmp_path / "eval"
    argv = ["eval", "--model", "emollm-tiny", "--data", str(folder / "test.jsonl"), "--out", str(out),
            "--limit", "3", "--batch-size", "2", "--max-new-tokens", "3", "--no-progress", "--device", "cpu"]
    assert main(argv) == 0
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [r.id for r in records[:3]]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["overall"]["count"] == 3
    assert metrics["meta"]["model"] == "emollm-tiny" and metrics["meta"]["dtype"] == "float32"
    assert set(metrics["tasks"]) == {"emo-c", "emo-o", "sarcasm"}


@pytest.mark.parametrize(("argv", "message"), [
    (["--model", "emollm-tiny"], "--model needs --data"),
    (["--predictions", "nope.jsonl"], "--predictions nope.jsonl: no such file"),
    (["--model", "emollm-tiny", "--data", "nope.jsonl"], "--data nope.jsonl: no such file"),
    (["--model", "emollm-tiny", "--data", "x.jsonl", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["--model", "emollm-tiny", "--data", "x.jsonl", "--limit", "0"], "--limit must be at least 1"),
])
def test_bad_arguments(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["eval", *argv, "--out", "out"]) == 2
    assert message in capsys.readouterr().err


def test_a_jsonl_moved_without_its_media_is_refused_up_front(media_records, tmp_path, capsys):
    # Relative media paths follow the JSONL's folder: a copy elsewhere names its first missing file.
    _, folder = media_records
    moved = tmp_path / "moved.jsonl"
    moved.write_text((folder / "test.jsonl").read_text())
    assert main(["eval", "--model", "emollm-tiny", "--data", str(moved), "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{moved}:1: missing image file {tmp_path / 'img' / 'a.png'}" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "predictions.jsonl").exists()


def test_model_or_predictions_is_required(tmp_path):
    with pytest.raises(SystemExit):
        main(["eval", "--out", str(tmp_path)])


def test_bad_predictions_file(tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "task": "emo-c"}\n')
    assert main(["eval", "--predictions", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "lacks field(s)" in capsys.readouterr().err


def test_load_saved_model_and_adapter(tiny, media_records, tmp_path):
    peft = pytest.importorskip("peft")
    from emollm.model import apply_lora, from_named

    model, processor = tiny
    saved = tmp_path / "saved"
    model.save_pretrained(saved)
    processor.save_pretrained(saved)
    loaded, loaded_processor = load_model(str(saved))
    assert type(loaded) is type(model) and type(loaded_processor) is type(processor)
    batch = processor(["USER: <image> feel? ASSISTANT:"], images=[torch.zeros(3, 32, 32)])
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits, rtol=0, atol=0)

        lora = apply_lora(from_named("emollm-tiny", seed=0)[0], r=2, alpha=4, dropout=0.0)
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05)  # B starts at 0: make the adapter change the output
        lora.eval()
        lora.save_pretrained(tmp_path / "adapter")
        adapted, _ = load_model(str(tmp_path / "adapter"), base_model="emollm-tiny")
        assert isinstance(adapted, peft.PeftModel)
        torch.testing.assert_close(adapted(**batch).logits, lora(**batch).logits)
    with pytest.raises(ValueError, match="names no base model"):
        load_model(str(tmp_path / "adapter"))
    with pytest.raises(ValueError, match="neither a folder nor a named set-up"):
        load_model(str(tmp_path / "missing"))

"""`emollm ask`: one question about an image, a video or an audio clip; JSON, streaming, bad media."""

import json

import pytest

from emollm import cli
from emollm.evaluation import parse_answer
from emollm.prompting.store import Exemplar, save_store

pytest.importorskip("av")


def ask(capsys, *args):
    code = cli.main(["ask", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("kind", ["image", "video", "audio"])
def test_json_gives_answer_label_and_timings(capsys, two_word_model, media_files, kind):
    code, out, err = ask(capsys, "--model", two_word_model, f"--{kind}", media_files[kind], "--task", "emo-c",
                         "--json", "--max-new-tokens", "4", "How does the speaker feel?")
    assert code == 0, err
    result = json.loads(out)
    assert result["answer"] and result["label"] in ("joy", "anger")  # only those two words can be generated
    assert result["label"] == parse_answer(result["answer"], "emo-c", result["labels"])
    assert result["media"] == {kind: str(media_files[kind])}
    timings = result["timings"]
    assert set(timings) >= {"load", "media", "preprocess", "first_token", "generate", "new_tokens", "tokens_per_s"}
    assert 0 < timings["first_token"] <= timings["generate"] and 1 <= timings["new_tokens"] <= 4
    assert result["device"] == "cpu" and result["dtype"] == "float32"


def test_all_three_media_at_once_and_greedy_is_deterministic(capsys, tiny_dir, media_files):
    args = ["--model", tiny_dir, "--json", "--max-new-tokens", "6", *(x for k, f in media_files.items()
                                                                       for x in (f"--{k}", f)), "What happens?"]
    first, second = (json.loads(ask(capsys, *args)[1]) for _ in range(2))
    assert first["answer"] == second["answer"] and first["label"] is None and first["task"] is None
    assert set(first["media"]) == {"image", "video", "audio"}


def test_the_answer_is_printed_as_it_streams(capsys, two_word_model, media_files):
    code, out, err = ask(capsys, "--model", two_word_model, "--image", media_files["image"], "--task", "emo-o",
                         "--max-new-tokens", "3", "How?")
    assert code == 0, err
    answer, label = out.splitlines()
    assert label in ("label: joy", "label: anger") and answer.strip()
    assert "tokens" in err and "tokens/s" in err


def test_task_without_question_asks_the_task_question(capsys, two_word_model, media_files):
    code, out, _ = ask(capsys, "--model", two_word_model, "--image", media_files["image"], "--task", "humor",
                         "--json", "--max-new-tokens", "2")
    result = json.loads(out)
    assert code == 0 and "yes or no" in result["question"].lower() and result["labels"] == ["yes", "no"]


def test_prompts_put_an_exemplar_of_the_task_first(capsys, tmp_path, two_word_model, media_files, monkeypatch):
    store = tmp_path / "prompts.jsonl"
    save_store([Exemplar(id="x1", task="emo-c", source="meld", question="Which emotion?", label="joy",
                         rationale="She smiles broadly.")], store)
    seen = {}
    from emollm.inference import session

    real = session.Session.ask

    def spy(self, question, media=None, **kwargs):
        reply = real(self, question, media, **kwargs)
        seen["prompt"] = reply.prompt
        return reply

    monkeypatch.setattr(session.Session, "ask", spy)
    code, out, err = ask(capsys, "--model", two_word_model, "--image", media_files["image"], "--task", "emo-c",
                         "--prompts", store, "--json", "--max-new-tokens", "2", "Which emotion?")
    assert code == 0, err
    assert json.loads(out)["exemplar"] is True
    assert "She smiles broadly." in seen["prompt"] and seen["prompt"].index("Reasoning") < seen["prompt"].index(
        "<image>")


@pytest.mark.parametrize(("flag", "content", "message"), [
    ("--image", None, "no such file"),
    ("--image", b"not a picture", "cannot be read as image"),
    ("--video", b"\x00\x00\x00\x18ftypmp42 truncated", "cannot be read as video"),
    ("--audio", b"RIFF\x00\x00", "cannot be read as audio"),
])
def test_bad_media_is_one_line_and_exit_code_2(capsys, tmp_path, flag, content, message):
    path = tmp_path / f"bad{ {'--image': '.png', '--video': '.mp4', '--audio': '.wav'}[flag]}"
    if content is not None:
        path.write_bytes(content)
    # A model name that does not exist: the media are refused before any model is loaded.
    code, out, err = ask(capsys, "--model", "no-such-model", flag, path, "Why?")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err and str(path) in err


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "emollm-tiny"], "give a question"),
    (["--model", "emollm-tiny", "--labels", "a,b", "Q?"], "--labels goes with --task"),
    (["--model", "emollm-tiny", "--prompts", "p.jsonl", "Q?"], "--prompts needs --task"),
    (["--model", "emollm-tiny", "--max-new-tokens", "0", "Q?"], "--max-new-tokens must be from 1 to 8192, got 0"),
    (["--model", "emollm-tiny", "--max-new-tokens", "100000", "Q?"], "--max-new-tokens must be from 1 to 8192"),
    (["--model", "no/such/dir", "Q?"], "neither a folder nor a named set-up"),
    (["--model", "emollm-tiny", "--temperature", "nan", "Q?"], "--temperature must be 0 (greedy) or a finite "
                                                                "number >= 0.001"),
    (["--model", "emollm-tiny", "--temperature", "inf", "Q?"], "--temperature must be 0 (greedy) or a finite"),
    # Logits over 1e-45 overflow: sampling would stop on inf/NaN in a traceback.
    (["--model", "emollm-tiny", "--temperature", "1e-45", "Q?"], "smaller ones overflow the logits), got 1e-45"),
    (["--model", "emollm-tiny", "--top-p", "nan", "Q?"], "--top-p must lie in (0, 1], got nan"),
    (["--model", "emollm-tiny", "--seed", "-1", "Q?"], "--seed must lie in [0, 2**63), got -1"),
    # Labels the answer's parser cannot tell apart: refused before any model loads (no-such-model).
    (["--model", "no-such-model", "--task", "emo-c", "--labels", "joy,joy", "Q?"],
     "--labels 'joy,joy': has labels that differ only in case or spacing: ['joy', 'joy']"),
    (["--model", "no-such-model", "--task", "emo-c", "--labels", "Joy,joy", "Q?"], "differ only in case"),
    (["--model", "no-such-model", "--task", "humor", "--labels", "funny,not", "Q?"],
     "--labels 'funny,not': of the yes/no task 'humor' must be ['yes', 'no']"),
])
def test_bad_arguments_are_one_line(capsys, args, message):
    code, _, err = ask(capsys, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1

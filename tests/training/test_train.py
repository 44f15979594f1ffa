"""emollm train: settings, data order per strategy, a short run, resumption, and that it learns."""

import json
import re

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from emollm.cli import build_parser
from emollm.cli import main as cli_main
from emollm.data.collator import EmoBenchCollator
from emollm.data.synth import CHANCE, write_synthetic
from emollm.training.config import TrainConfig, load_config
from emollm.training.schedule import EMO, GENERAL, ScheduledDataset, schedule
from emollm.training.train import train


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("synth"), n_train=24, n_test=6, seed=0)


# ---- settings ----

def test_preset_is_the_papers():
    c = TrainConfig()
    assert (c.lr, c.epochs, c.batch_size, c.warmup_ratio, c.lora, c.strategy) == (2e-5, 5, 16, 0.03, True, "emo")


def test_flags_override_yaml_which_overrides_the_preset(tmp_path):
    (tmp_path / "c.yaml").write_text("model: emollm-tiny\ndata: d.jsonl\noutput: out\nlr: 1.0e-3\nbatch-size: 8\n"
                                     "epochs: 2\n")
    c = load_config(tmp_path / "c.yaml", lr=5e-4, epochs=None, lora=False)
    assert (c.lr, c.batch_size, c.epochs, c.lora, c.warmup_ratio) == (5e-4, 8, 2, False, 0.03)


@pytest.mark.parametrize(("overrides", "match"), [
    ({"data": None}, "data is required"),
    ({"strategy": "mix"}, "needs general instruction data"),
    ({"strategy": "other"}, "strategy must be one of"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"max_steps": 0}, "max_steps must be an integer >= 1"),
    ({"warmup_ratio": 1.0}, "warmup_ratio"),
    ({"lr": 0.0}, "lr must be > 0"),
    ({"bogus": 1}, r"unknown training setting\(s\) \['bogus'\]"),
    ({"lr": float("inf")}, "lr must be a finite number, got inf"),
    ({"weight_decay": float("nan")}, "weight_decay must be a finite number, got nan"),
    ({"fps": float("inf")}, "fps must be a finite number, got inf"),
    ({"weight_decay": -0.1}, "weight_decay must be >= 0"),
    ({"lora_alpha": -1}, r"lora_alpha must be an integer >= 1 \(LoRA scales by lora_alpha / lora_r\), got -1"),
    ({"lora_alpha": 0}, "lora_alpha must be an integer >= 1"),
    ({"seed": -1}, r"seed must lie in \[0, 2\*\*32\), got -1"),
    ({"seed": 2**32}, "seed must lie in"),
    ({"num_workers": -1}, "num_workers must be >= 0, got -1"),
    ({"lora": "maybe"}, "lora must be true or false, got 'maybe'"),
    ({"lr": [1, 2]}, r"lr must be a finite number, got \[1, 2\]"),
    ({"epochs": 2.5}, "epochs must be an integer, got 2.5"),
    ({"bf16": 1}, "bf16 must be true or false or null, got 1"),
    ({"model": 7}, "model must be a string or null, got 7"),
])
def test_bad_settings_are_named(overrides, match):
    base = {"model": "emollm-tiny", "data": "d.jsonl", "output": "out"}
    with pytest.raises(ValueError, match=match):
        load_config(None, **{**base, **overrides})  # a None override is "not given": data stays missing


def test_a_float_yaml_reads_as_a_string_is_taken_as_the_number(tmp_path):
    (tmp_path / "c.yaml").write_text("model: m\ndata: d.jsonl\noutput: out\nlr: 2e-5\nfps: 2\n")  # PyYAML: '2e-5'
    config = load_config(tmp_path / "c.yaml")
    assert (config.lr, config.fps) == (2e-5, 2.0) and isinstance(config.fps, float)


@pytest.mark.parametrize(("content", "message"), [
    ("lora: maybe\n", "lora must be true or false, got 'maybe'"),
    ("lr: [1, 2]\n", r"lr must be a finite number, got \[1, 2\]"),
    ("lr: .inf\n", "lr must be a finite number, got inf"),
    ("batch_size: [1, 2\n  x: :\n", r"--config \S*c\.yaml:2: not valid YAML: "),
    (b"seed: 1 # \xff\n", r"--config \S*c\.yaml: not UTF-8 text \(byte 0xff at offset 10\)"),
])
def test_a_bad_config_is_one_line_naming_the_setting_or_file(tmp_path, capsys, content, message):
    config = tmp_path / "c.yaml"
    config.write_bytes(content if isinstance(content, bytes) else content.encode())
    code = cli_main(["train", "--model", "emollm-tiny", "--data", "d.jsonl", "--output", str(tmp_path / "run"),
                     "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err and re.search(message, err)
    assert not (tmp_path / "run").exists()


def test_a_folder_given_as_config_is_called_a_folder(tmp_path, capsys):
    assert cli_main(["train", "--config", str(tmp_path), "--output", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == f"emollm train: --config {tmp_path}: a folder, not a file\n"


@pytest.mark.parametrize(("flags", "message"), [
    (["--lr", "inf"], "lr must be a finite number, got inf"),
    (["--weight-decay", "nan"], "weight_decay must be a finite number, got nan"),
    (["--warmup-ratio", "nan"], "warmup_ratio must be a finite number, got nan"),
    (["--lora-dropout=-inf"], "lora_dropout must be a finite number, got -inf"),
    (["--fps", "inf"], "fps must be a finite number, got inf"),
    (["--num-workers", "-1"], "num_workers must be >= 0, got -1"),
    (["--seed", "-1"], r"seed must lie in \[0, 2\*\*32\), got -1"),
    (["--lora-alpha", "-1"], "lora_alpha must be an integer >= 1"),
    (["--batch-size", str(10**23)], "batch_size must be at most 1000000000"),  # the sampler's traceback
])
def test_bad_numbers_are_refused_before_anything_is_written(synth, tmp_path, capsys, flags, message):
    code = cli_main(["train", "--model", "emollm-tiny", "--data", str(synth["train"]), "--output",
                     str(tmp_path / "run"), "--max-steps", "1", *flags])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and re.search(message, err)
    assert not (tmp_path / "run").exists()


def test_cli_flags_default_to_none_so_yaml_values_survive():
    args = build_parser().parse_args(["train", "--model", "m", "--data", "d", "--output", "o", "--lr", "0.1",
                                      "--no-lora", "--strategy", "sequential", "--general", "g.jsonl"])
    assert (args.lr, args.lora, args.strategy, args.general) == (0.1, False, "sequential", "g.jsonl")
    assert args.epochs is None and args.batch_size is None and args.resume is None


# ---- data order ----

def _epochs(order, size):
    return [order[i:i + size] for i in range(0, len(order), size)]


def test_emo_strategy_is_emobench_reshuffled_each_epoch():
    order = schedule("emo", 10, 0, epochs=3, seed=1)
    assert len(order) == 30 and {s for s, _ in order} == {EMO}
    epochs = _epochs([i for _, i in order], 10)
    assert all(sorted(e) == list(range(10)) for e in epochs) and epochs[0] != epochs[1]


def test_mix_strategy_shuffles_both_sources_together():
    order = schedule("mix", 6, 4, epochs=2, seed=0)
    for epoch in _epochs(order, 10):
        assert sorted(epoch) == sorted([(EMO, i) for i in range(6)] + [(GENERAL, i) for i in range(4)])
    sources = [s for s, _ in order[:10]]
    first_emo, last_general = sources.index(EMO), len(sources) - 1 - sources[::-1].index(GENERAL)
    assert first_emo < last_general  # interleaved, not one block after the other


def test_sequential_strategy_is_all_general_data_then_all_emobench():
    order = schedule("sequential", 5, 3, epochs=2, seed=0)
    assert [s for s, _ in order] == [GENERAL] * 6 + [EMO] * 5 * 2
    assert all(sorted(i for _, i in e) == list(range(3)) for e in _epochs(order[:6], 3))
    assert all(sorted(i for _, i in e) == list(range(5)) for e in _epochs(order[6:], 5))


def test_schedule_is_seeded_and_checks_its_inputs():
    assert schedule("mix", 7, 5, 2, seed=3) == schedule("mix", 7, 5, 2, seed=3) != schedule("mix", 7, 5, 2, seed=4)
    with pytest.raises(ValueError, match="needs general data"):
        schedule("sequential", 5, 0, 1, 0)
    with pytest.raises(ValueError, match="strategy must be one of"):
        schedule("random", 5, 0, 1, 0)


def test_scheduled_dataset_follows_the_order():
    data = ScheduledDataset([["e0", "e1"], ["g0"]], [(GENERAL, 0), (EMO, 1), (EMO, 0)])
    assert len(data) == 3 and [data[i] for i in range(3)] == ["g0", "e1", "e0"]


# ---- runs ----

class _Interrupted(Exception):
    pass


class _StopAtFirstSave(TrainerCallback):
    """Stands in for a killed process: raises right after the first checkpoint is on disk."""

    def on_save(self, args, state, control, **kwargs):
        raise _Interrupted(state.global_step)


class _Steps(TrainerCallback):
    def __init__(self):
        self.steps = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def _config(data, output, **kw):
    return TrainConfig(**{"model": "emollm-tiny", "data": str(data), "output": str(output), "max_steps": 6,
                          "batch_size": 4, "lr": 1e-3, "save_steps": 2, "logging_steps": 1, **kw})


def test_short_lora_run_saves_a_merged_loadable_model(synth, tmp_path):
    from emollm.model import EmoLLMForConditionalGeneration, EmoLLMProcessor

    result = train(_config(synth["train"], tmp_path / "run", max_steps=3, save_steps=10))
    assert result.global_step == 3 and result.resumed_from is None
    history = json.loads((tmp_path / "run" / "checkpoint-3" / "trainer_state.json").read_text())["log_history"]
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == 3 and all(0 < v < 20 for v in losses)
    # The adapters name their base, so `emollm eval --model CHECKPOINT` needs no --base-model.
    adapter = json.loads((tmp_path / "run" / "checkpoint-3" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "emollm-tiny"
    model = EmoLLMForConditionalGeneration.from_pretrained(tmp_path / "run")  # plain EmoLLM: LoRA merged
    assert not any("lora" in name for name, _ in model.named_parameters())
    processor = EmoLLMProcessor.from_pretrained(tmp_path / "run")
    inputs = processor(text=["USER: hi ASSISTANT:"])
    assert torch.isfinite(model(**inputs).logits).all()
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["max_steps"] == 3


def test_resume_after_interruption_finishes_the_same_run(synth, tmp_path):
    whole = train(_config(synth["train"], tmp_path / "whole"))

    with pytest.raises(_Interrupted):
        train(_config(synth["train"], tmp_path / "cut"), callbacks=[_StopAtFirstSave()])
    assert sorted(p.name for p in (tmp_path / "cut").glob("checkpoint-*")) == ["checkpoint-2"]
    steps = _Steps()
    resumed = train(_config(synth["train"], tmp_path / "cut"), callbacks=[steps])

    assert resumed.resumed_from == str(tmp_path / "cut" / "checkpoint-2")
    assert steps.steps == [3, 4, 5, 6]  # continued from step 2, nothing redone, nothing lost
    assert resumed.global_step == whole.global_step == 6
    # Same data order, optimizer, schedule and RNG: the same weights as the uninterrupted run.
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


def _cut_in_half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_torn_newest_checkpoint_is_passed_over_for_the_one_before(synth, tmp_path, capsys):
    out = tmp_path / "run"
    train(_config(synth["train"], out, max_steps=4))
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    (weights,) = (out / "checkpoint-4").glob("*.safetensors")
    _cut_in_half(weights)  # a kill while the Trainer wrote it
    capsys.readouterr()
    steps = _Steps()
    resumed = train(_config(synth["train"], out, max_steps=6, resume_with_changes=True), callbacks=[steps])
    assert resumed.resumed_from == str(out / "checkpoint-2") and steps.steps == [3, 4, 5, 6]
    err = capsys.readouterr().err
    assert f"emollm train: note: {out / 'checkpoint-4'} is incomplete ({weights.name}: " in err
    assert "resuming from the checkpoint before it" in err
    # No whole checkpoint left: one line naming it, nothing trained.
    for checkpoint in out.glob("checkpoint-*"):
        _cut_in_half(checkpoint / weights.name)
    code = cli_main(["train", "--model", "emollm-tiny", "--data", str(synth["train"]), "--output", str(out),
                     "--max-steps", "8", "--save-steps", "2", "--batch-size", "4", "--resume-with-changes"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert re.search(r"emollm train: \S*checkpoint-\d is incomplete \(.*\) and no whole checkpoint is left to "
                     r"resume from; remove it \(or pass --no-resume\) to start again", err)


def test_a_checkpoint_without_its_weights_is_incomplete(tmp_path):
    from emollm.training.train import torn

    checkpoint = tmp_path / "checkpoint-4"
    checkpoint.mkdir()
    (checkpoint / "trainer_state.json").write_text("{}")
    assert "no model weights file" in torn(checkpoint)  # deleted, or never written
    (checkpoint / "model.safetensors").write_bytes(b"")
    assert torn(checkpoint) is not None  # there, but not whole


def test_sequential_run_trains_on_general_data_first(synth, tmp_path, monkeypatch):
    general = tmp_path / "general.jsonl"
    turns = [{"from": "human", "value": "Name a colour."}, {"from": "gpt", "value": "blue"}]
    general.write_text("".join(json.dumps({"id": f"g{i}", "conversations": turns}) + "\n" for i in range(4)))
    seen = []
    collate = EmoBenchCollator.__call__

    def spy(self, samples):
        seen.extend(s["id"] for s in samples)
        return collate(self, samples)

    monkeypatch.setattr(EmoBenchCollator, "__call__", spy)
    result = train(_config(synth["train"], tmp_path / "seq", strategy="sequential", general=str(general),
                           epochs=1, max_steps=None, save_steps=100))
    assert result.global_step == 7  # (4 general + 24 EmoBench) / 4
    assert [s.startswith("g") for s in seen] == [True] * 4 + [False] * 24


# ---- it learns ----

@pytest.mark.slow
def test_synthetic_emobench_is_learned_well_above_chance(tmp_path):
    """data synth -> train emollm-tiny (full weights: LoRA on a random LM learns slowly) -> eval.

    Margin: macro accuracy at least chance + 0.3 (chance = 0.375, the mean over tasks of 1/|labels|),
    and every image task at least 0.15 above its own chance (10 test records per task). The audio
    task (sarcasm) is not held to a margin: emollm-tiny's frozen random Whisper makes it slow to learn.
    Measured here: emo-c, emo-o, hate, humor 1.0; intent 0.6; sarcasm 0.6; macro 0.87 (180 steps)."""
    data = tmp_path / "synth"
    assert cli_main(["data", "synth", "--out", str(data), "--train", "240", "--test", "60", "--seed", "1"]) == 0
    assert cli_main(["train", "--model", "emollm-tiny", "--data", str(data / "train.jsonl"), "--output",
                     str(tmp_path / "run"), "--no-lora", "--lr", "2e-3", "--epochs", "6", "--batch-size", "8",
                     "--save-steps", "1000", "--logging-steps", "50"]) == 0
    assert cli_main(["eval", "--model", str(tmp_path / "run"), "--data", str(data / "test.jsonl"), "--out",
                     str(tmp_path / "eval"), "--batch-size", "30", "--max-new-tokens", "6", "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    per_task = {task: m["accuracy"] for task, m in metrics["tasks"].items()}
    assert per_task.keys() == CHANCE.keys()
    chance = sum(CHANCE.values()) / len(CHANCE)
    assert metrics["overall"]["macro"] >= chance + 0.3, per_task
    for task in ("emo-c", "emo-o", "intent", "humor", "hate"):
        assert per_task[task] >= CHANCE[task] + 0.15, per_task


# ---- bad input: one line on stderr, exit code 2, no traceback ----

@pytest.mark.parametrize(("case", "match"), [
    ("missing data", "No such file"),
    ("malformed data", r"bad\.jsonl:2: not valid JSON"),
    ("empty data", r"empty\.jsonl: no records to train on"),
    ("moved data", r"moved\.jsonl:1: missing image file"),
    ("not a model", "not a loadable EmoLLM folder"),
])
def test_bad_inputs_are_reported_in_one_line(synth, tmp_path, capsys, case, match):
    train_file = synth["train"]
    first = train_file.read_text().splitlines()[0]
    (tmp_path / "bad.jsonl").write_text("\n{not json\n")
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "moved.jsonl").write_text(first + "\n")  # its media paths are relative to synth/, not here
    (tmp_path / "weightless").mkdir()
    (tmp_path / "weightless" / "config.json").write_text("{}")
    model, data = {
        "missing data": ("emollm-tiny", tmp_path / "nope.jsonl"),
        "malformed data": ("emollm-tiny", tmp_path / "bad.jsonl"),
        "empty data": ("emollm-tiny", tmp_path / "empty.jsonl"),
        "moved data": ("emollm-tiny", tmp_path / "moved.jsonl"),
        "not a model": (str(tmp_path / "weightless"), train_file),
    }[case]
    code = cli_main(["train", "--model", model, "--data", str(data), "--output", str(tmp_path / "run"),
                     "--max-steps", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("emollm train: ") and "Traceback" not in err
    assert re.search(match, err)
    assert not (tmp_path / "run").exists()


def test_ctrl_c_ends_with_a_line_and_exit_code_130(synth, tmp_path, capsys, monkeypatch):
    def interrupted(config, callbacks=()):
        raise KeyboardInterrupt

    monkeypatch.setattr("emollm.training.train.train", interrupted)
    code = cli_main(["train", "--model", "emollm-tiny", "--data", str(synth["train"]),
                     "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 130
    assert f"interrupted; run the same command again to continue from the last checkpoint in {tmp_path / 'run'}" in err

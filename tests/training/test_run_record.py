"""Following and resuming a run safely: the loss log, checkpoints kept, reruns of finished or
changed runs, and train_config.json's record of each part."""

import csv
import json

import pytest
from transformers import TrainerCallback

from emollm.cli import main as cli_main
from emollm.data.synth import write_synthetic
from emollm.training.config import TrainConfig
from emollm.training.train import train


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("synth"), n_train=24, n_test=0, seed=0)


def _argv(data, output, *extra):
    return ["train", "--model", "emollm-tiny", "--data", str(data), "--output", str(output), "--max-steps", "4",
            "--batch-size", "4", "--lr", "1e-3", "--save-steps", "2", "--logging-steps", "1", *extra]


class _Interrupted(Exception):
    pass


class _StopAtFirstSave(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        raise _Interrupted


def _interrupted_run(data, output, **kw):
    """A run killed right after its first checkpoint (step 2 of 4)."""
    config = TrainConfig(model="emollm-tiny", data=str(data), output=str(output), max_steps=4, batch_size=4, lr=1e-3,
                         save_steps=2, logging_steps=1, **kw)
    with pytest.raises(_Interrupted):
        train(config, callbacks=[_StopAtFirstSave()])


@pytest.mark.slow
def test_loss_log_and_curve_cover_the_whole_resumed_run(synth, tmp_path):
    run = tmp_path / "run"
    _interrupted_run(synth["train"], run)
    assert cli_main(_argv(synth["train"], run)) == 0
    rows = list(csv.DictReader((run / "loss.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]  # the steps before the interruption too
    assert all(0 < float(r["loss"]) < 20 for r in rows) and rows[0].keys() == {"step", "epoch", "loss",
                                                                                  "learning_rate", "grad_norm"}
    assert (run / "loss.png").read_bytes().startswith(b"\x89PNG")
    assert not list(run.glob(".*.tmp*"))  # written atomically, nothing left behind


def test_rerunning_a_finished_run_says_so(synth, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli_main(_argv(synth["train"], run)) == 0
    weights = (run / "model.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    assert cli_main(_argv(synth["train"], run, "--logging-steps", "2")) == 0  # how it logs is no new setting
    out = capsys.readouterr().out
    assert f"emollm train: {run} holds a finished run (4 steps) with these settings: nothing to do" in out
    assert "loss 0" not in out
    assert (run / "model.safetensors").stat().st_mtime_ns == weights


def test_changed_settings_on_old_checkpoints_are_refused_unless_asked(synth, tmp_path, capsys):
    run = tmp_path / "run"
    _interrupted_run(synth["train"], run)
    capsys.readouterr()  # the interrupted run's progress bar
    assert cli_main(_argv(synth["train"], run, "--lr", "5e-4")) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"emollm train: {run} holds a run with other settings (lr 0.001 -> 0.0005); continue it "
                           "anyway with --resume-with-changes, start over with --no-resume, or pick another --output")

    assert cli_main(_argv(synth["train"], run, "--lr", "5e-4", "--resume-with-changes")) == 0
    record = json.loads((run / "train_config.json").read_text())
    assert record["status"] == "finished" and record["lr"] == 5e-4
    first, second = record["parts"]
    assert (first["from_step"], first["to_step"], first["settings"]["lr"]) == (0, None, 1e-3)  # killed
    assert (second["from_step"], second["to_step"], second["settings"]["lr"]) == (2, 4, 5e-4)
    assert second["processes"] == 1 and second["versions"]["transformers"] and second["ended"]


def test_two_checkpoints_are_kept_by_default(synth, tmp_path):
    run = tmp_path / "run"
    assert cli_main(_argv(synth["train"], run, "--max-steps", "3", "--save-steps", "1")) == 0
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    assert TrainConfig().save_total_limit == 2

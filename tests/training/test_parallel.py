"""Several processes: torchrun on CPU (gloo) against one process with the same global batch, for
DDP and FSDP; the DeepSpeed presets as the Trainer receives them; bf16 on CPU."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from emollm.cli import main as cli_main
from emollm.data.synth import write_synthetic
from emollm.training import parallel
from emollm.training.config import TrainConfig
from emollm.training.train import TrainInputError, training_arguments
from tests.torchrun import ROOT, torchrun

RECORD_BATCHES = str(ROOT / "tests" / "training" / "record_batches.py")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("synth"), n_train=24, n_test=0, seed=0)


def _argv(data, output):
    # lora-dropout 0: dropout draws random numbers per sample, which one and two processes draw differently.
    return ["train", "--model", "emollm-tiny", "--data", str(data), "--output", str(output), "--max-steps", "4",
            "--batch-size", "4", "--lr", "1e-3", "--lora-dropout", "0", "--save-steps", "100", "--logging-steps", "1"]


@pytest.fixture(scope="module")
def one_process(synth, tmp_path_factory):
    """``(output folder, batches)`` of a one-process run that records the ids of each batch."""
    folder = tmp_path_factory.mktemp("one")
    torchrun([str(folder / "log"), *_argv(synth["train"], folder / "run")], nproc=1, script=RECORD_BATCHES)
    return folder / "run", _batches(folder / "log" / "rank0.jsonl")


def _batches(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _assert_same_weights(a_dir, b_dir):
    a, b = load_file(a_dir / "model.safetensors"), load_file(b_dir / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow
def test_two_processes_split_each_global_batch_and_train_the_same_weights(synth, one_process, tmp_path):
    one_dir, one_batches = one_process
    log = tmp_path / "log"
    log.mkdir()
    done = torchrun([str(log), *_argv(synth["train"], tmp_path / "run")], script=RECORD_BATCHES)

    # The data loader collates one batch ahead of the step it trains: the 4 steps are the first 4.
    rank0, rank1 = _batches(log / "rank0.jsonl")[:4], _batches(log / "rank1.jsonl")[:4]
    assert len(one_batches[:4]) == len(rank0) == len(rank1) == 4
    for whole, first, second in zip(one_batches[:4], rank0, rank1, strict=True):
        assert len(first) == len(second) == 2 and first + second == whole  # each rank: half of the global batch
    _assert_same_weights(one_dir, tmp_path / "run")
    assert done.stdout.count("trained 4 steps") == 1  # process 0 reports, once
    config = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert config["parallel"] == "ddp"


@pytest.mark.slow
def test_fsdp_on_two_processes_trains_the_same_weights(synth, one_process, tmp_path):
    one_dir, _ = one_process
    torchrun([*_argv(synth["train"], tmp_path / "run"), "--parallel", "fsdp"])
    _assert_same_weights(one_dir, tmp_path / "run")
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()  # gathered from the shards


@pytest.mark.slow
def test_two_processes_fill_one_feature_cache_and_train_the_same_weights(synth, one_process, tmp_path):
    # Each process computes its share of the missing entries, then both read all of them.
    one_dir, _ = one_process
    torchrun([*_argv(synth["train"], tmp_path / "run"), "--feature-cache", str(tmp_path / "cache")])
    _assert_same_weights(one_dir, tmp_path / "run")
    assert len(list((tmp_path / "cache").glob("image-*/*.safetensors"))) == 2  # one shard per process


def _args(**kw):
    return training_arguments(TrainConfig(**{"model": "emollm-tiny", "data": "d.jsonl", "output": "out", **kw}))


def test_fsdp_preset_as_the_trainer_receives_it(tmp_path):
    args = _args(parallel="fsdp", output=str(tmp_path))
    assert args.fsdp_plugin_args["fsdp_version"] == 2
    assert args.fsdp_plugin_args["transformer_cls_names_to_wrap"] == "LlamaDecoderLayer"
    assert args.fsdp_plugin_args["state_dict_type"] == "FULL_STATE_DICT"


@pytest.mark.parametrize("name", ["zero2", "zero3"])
def test_deepspeed_presets_are_the_shipped_json(name):
    shipped = json.loads((ROOT / "configs" / "deepspeed" / f"{name}.json").read_text())
    assert shipped == parallel.DEEPSPEED_PRESETS[name]
    assert shipped["zero_optimization"]["stage"] == int(name[-1])
    # The Trainer fills every "auto" from the run's settings; none is left for the user.
    assert shipped["train_micro_batch_size_per_gpu"] == shipped["gradient_accumulation_steps"] == "auto"


@pytest.mark.parametrize("name", ["zero2", "zero3"])
def test_deepspeed_presets_reach_the_trainer(name, monkeypatch, tmp_path):
    if importlib.util.find_spec("deepspeed") is None:
        # What the Trainer would receive: the preset as its `deepspeed` argument.
        monkeypatch.setattr(parallel.importlib.util, "find_spec", lambda name: object())
        assert parallel.parallel_arguments(name)["deepspeed"] == parallel.DEEPSPEED_PRESETS[name]
        pytest.skip("deepspeed is not installed: the Trainer's own parsing of the preset is not run")
    args = _args(parallel=name, output=str(tmp_path), batch_size=8)
    config = args.hf_deepspeed_config.config
    assert config["zero_optimization"]["stage"] == int(name[-1])
    assert config["train_micro_batch_size_per_gpu"] == args.per_device_train_batch_size


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="deepspeed is installed")
def test_zero_without_deepspeed_is_one_line(synth, tmp_path, capsys):
    code = cli_main([*_argv(synth["train"], tmp_path / "run"), "--parallel", "zero3"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip() == ("emollm train: --parallel zero3 needs DeepSpeed, which is not installed (pip install "
                           "deepspeed); --parallel fsdp shards without it")


def test_deepspeed_file_needs_a_zero_preset():
    with pytest.raises(TrainInputError, match="--deepspeed FILE goes with --parallel zero2 or zero3"):
        _args(parallel="fsdp", deepspeed="ds.json")


def test_bf16_on_cpu_trains(synth, tmp_path):
    assert cli_main([*_argv(synth["train"], tmp_path / "run")[:-4], "--max-steps", "1", "--bf16"]) == 0
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["bf16"] is True


def test_bf16_on_a_gpu_without_it_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla V100")
    with pytest.raises(ValueError, match=r"--bf16: this GPU \(Tesla V100\) has no bf16 support .* --no-bf16"):
        parallel.bf16_setting(True)
    assert parallel.bf16_setting(None) is False


def test_cpu_runs_tell_the_trainer_so():
    # Without use_cpu the Trainer would leave each torchrun process alone (world size 1).
    if torch.accelerator.is_available():
        pytest.skip("an accelerator is present")
    assert parallel.parallel_arguments("ddp") == {"use_cpu": True}

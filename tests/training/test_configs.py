"""The shipped configs (configs/): each loads as the run it says it is."""

import pytest

from emollm.cli import build_parser
from emollm.evaluation.cli import _settle
from emollm.training.config import load_config
from tests.torchrun import ROOT

CONFIGS = ROOT / "configs"


@pytest.mark.parametrize("strategy", ["emo", "mix", "sequential"])
def test_training_configs_are_the_papers_settings(strategy):
    config = load_config(CONFIGS / "train" / f"{strategy}.yaml")
    assert config.strategy == strategy and config.model == "emollm-7b"
    assert (config.epochs, config.lr, config.batch_size, config.warmup_ratio, config.lora) == (5, 2e-5, 16, 0.03, True)
    assert (config.general is None) == (strategy == "emo")
    assert load_config(CONFIGS / "train" / f"{strategy}.yaml", seed=2).seed == 2  # a flag overrides the file


def test_eval_config_and_flags(tmp_path):
    args = build_parser().parse_args(["eval", "--config", str(CONFIGS / "eval" / "emobench.yaml"), "--model", "m",
                                      "--out", "o", "--batch-size", "4"])
    _settle(args)
    assert (args.data, args.prompt_seed, args.max_new_tokens, args.bootstrap_seed) == (
        "data/emobench/test.jsonl", 0, 200, 0)
    assert args.batch_size == 4  # the flag wins over the file's 16
    plain = build_parser().parse_args(["eval", "--model", "m", "--out", "o"])
    _settle(plain)
    assert (plain.batch_size, plain.max_new_tokens, plain.bootstrap, plain.dtype) == (8, 32, 1000, "auto")
    (tmp_path / "bad.yaml").write_text("temperature: 0.7\n")
    bad = build_parser().parse_args(["eval", "--config", str(tmp_path / "bad.yaml"), "--model", "m", "--out", "o"])
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['temperature'\]"):
        _settle(bad)

"""Frozen towers computed once: the feature cache holds what the towers make of each media file,
is recomputed when the file or the tower changes, and training and evaluation on it match the
media-based runs."""

import json

import pytest
import torch
from PIL import Image

from emollm.cli import main as cli_main
from emollm.data.dataset import EmoBenchDataset
from emollm.data.synth import write_synthetic
from emollm.model import from_named
from emollm.model.feature_cache import FeatureCache, file_digest, tower_fingerprints
from emollm.training.cached_data import open_feature_cache


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("synth"), n_train=12, n_test=6, seed=0)


@pytest.fixture(scope="module")
def tiny():
    return from_named("emollm-tiny", seed=0)


def _open(root, model, processor, data):
    return open_feature_cache(root, model, processor, [(data.records, data.base_dir)], fps=1.0, max_frames=64)


def test_entries_are_the_towers_outputs(synth, tiny, tmp_path):
    model, processor = tiny
    data = EmoBenchDataset(synth["train"])
    cache, digests = _open(tmp_path / "cache", model, processor, data)
    image = next(m for r in data.records for m in r.media if m["type"] == "image")
    audio = next(m for r in data.records for m in r.media if m["type"] == "audio")
    base = data.base_dir
    pixels = processor.image_processor([Image.open(base / image["path"]).convert("RGB")],
                                       return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = model.model._patch_tokens(pixels)[0]
    got = cache.get("image", digests[str(base / image["path"])])
    assert got.shape == (64, 32)  # emollm-tiny: 8x8 patches of width 32
    torch.testing.assert_close(got, expected)
    assert cache.get("audio", digests[str(base / audio["path"])]).shape == (50, 32)  # Whisper positions x width


def test_a_changed_file_or_another_tower_is_computed_again(synth, tiny, tmp_path):
    model, processor = tiny
    data = EmoBenchDataset(synth["train"])
    root = tmp_path / "cache"
    cache, _ = _open(root, model, processor, data)
    items = [(m["type"], str(data.base_dir / m["path"]), file_digest(data.base_dir / m["path"]))
             for r in data.records for m in r.media]
    assert cache.fill(items, model, processor, fps=1.0, max_frames=64) == 0  # all there: nothing to compute

    changed = data.base_dir / next(m["path"] for r in data.records for m in r.media if m["type"] == "image")
    Image.new("RGB", (32, 32), (1, 2, 3)).save(changed)
    reopened = FeatureCache(root, cache.fingerprints)
    items = [(k, p, file_digest(p)) for k, p, _ in items]
    assert reopened.fill(items, model, processor, fps=1.0, max_frames=64) == 1  # only the changed image

    other, _ = from_named("emollm-tiny", seed=1)  # other weights: other fingerprints, other folders
    fingerprints = tower_fingerprints(other, processor, fps=1.0, max_frames=64)
    assert fingerprints["image"] != cache.fingerprints["image"] and fingerprints["audio"] != cache.fingerprints["audio"]
    assert FeatureCache(root, fingerprints).fill(items, other, processor, fps=1.0, max_frames=64) == len(set(items))
    assert tower_fingerprints(model, processor, fps=2.0, max_frames=64)["video"] != cache.fingerprints["video"]
    assert len(list(root.iterdir())) == 4  # image and audio folders of each tower


def _train_argv(data, output, *extra):
    return ["train", "--model", "emollm-tiny", "--data", str(data), "--output", str(output), "--max-steps", "3",
            "--batch-size", "4", "--lr", "1e-3", "--lora-dropout", "0", "--save-steps", "3", "--logging-steps", "1",
            *extra]


def test_cached_training_gives_the_loss_of_uncached_training(synth, tmp_path):
    assert cli_main(_train_argv(synth["train"], tmp_path / "plain")) == 0
    assert cli_main(_train_argv(synth["train"], tmp_path / "cached", "--feature-cache", str(tmp_path / "cache"))) == 0
    losses = {}
    for run in ("plain", "cached"):
        history = json.loads((tmp_path / run / "checkpoint-3" / "trainer_state.json").read_text())["log_history"]
        losses[run] = [h["loss"] for h in history if "loss" in h]
    assert len(losses["plain"]) == 3
    torch.testing.assert_close(losses["cached"], losses["plain"], rtol=1e-5, atol=1e-6)
    assert json.loads((tmp_path / "cached" / "train_config.json").read_text())["feature_cache"] == str(
        tmp_path / "cache")


def test_cached_eval_answers_as_uncached_eval(synth, tmp_path):
    argv = ["eval", "--model", "emollm-tiny", "--data", str(synth["test"]), "--batch-size", "3",
            "--max-new-tokens", "3", "--no-progress", "--device", "cpu", "--bootstrap", "0"]
    assert cli_main([*argv, "--out", str(tmp_path / "plain")]) == 0
    assert cli_main([*argv, "--out", str(tmp_path / "cached"), "--feature-cache", str(tmp_path / "cache")]) == 0
    assert (tmp_path / "cached" / "predictions.jsonl").read_text() == (tmp_path / "plain" / "predictions.jsonl"
                                                                       ).read_text()
    assert any(p.suffix == ".safetensors" for p in (tmp_path / "cache").rglob("*"))

"""EmoLLMConfig.mvp through MVPConfig: typed access, save/load, old configs, one token count."""

import json

import pytest
import torch
from transformers import AutoConfig

from emollm.model import EmoLLMConfig, EmoLLMForConditionalGeneration, from_named
from emollm.projector import MVPConfig

# k=20 above the second stage's 8 clusters: stored (and saved) as the k it runs with, 3.
CUSTOM = MVPConfig(stages=((32, 4), (8, 20)), tau=0.25, alpha=0.5, gcn_layers=1, combine="concat")


@pytest.fixture(scope="module")
def custom(tmp_path_factory):
    """emollm-tiny with the CUSTOM projector settings, saved; ``(model, processor, path)``."""
    model, processor = from_named("emollm-tiny", seed=0, mvp=CUSTOM)
    path = tmp_path_factory.mktemp("emollm-mvp")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return model, processor, path


def test_mvp_is_stored_as_a_plain_dict_and_read_back_typed():
    cfg = EmoLLMConfig(mvp=CUSTOM)
    assert cfg.mvp == CUSTOM.to_dict() and cfg.mvp["stages"] == [[32, 4], [8, 3]]
    assert cfg.mvp_config == CUSTOM and cfg.num_image_tokens == CUSTOM.num_tokens == 80
    assert EmoLLMConfig(mvp={"tau": 0.3}).mvp == MVPConfig(tau=0.3).to_dict()  # complete, as saved
    assert EmoLLMConfig().mvp_config == MVPConfig()


@pytest.mark.parametrize("mvp, error, match", [
    ({"tau": 2.0}, ValueError, r"mvp: tau must lie in \[0, 1\]"),
    ({"stages": [[16.5, 3]]}, TypeError, "mvp: every stage must be"),
    ({"temperature": 1.0}, ValueError, r"mvp: unknown MVPProjector settings \['temperature'\]"),
])
def test_bad_mvp_names_the_field(mvp, error, match):
    with pytest.raises(error, match=match):
        EmoLLMConfig(mvp=mvp)


def test_save_and_load_keep_the_settings(custom):
    model, _, path = custom
    saved = json.loads((path / "config.json").read_text())
    assert saved["mvp"] == CUSTOM.to_dict()
    assert AutoConfig.from_pretrained(path).mvp_config == CUSTOM
    loaded = EmoLLMForConditionalGeneration.from_pretrained(path)
    assert loaded.config.mvp_config == CUSTOM and loaded.model.projector.config == CUSTOM
    before, after = model.state_dict(), loaded.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_old_partial_mvp_dict_loads_with_defaults(custom, tmp_path):
    # A config.json written before every setting was saved: only some keys, and a k above its
    # stage's clusters as given by hand.
    _, _, path = custom
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((path / name).read_bytes())
    config = json.loads((tmp_path / "config.json").read_text())
    config["mvp"] = {"stages": [[32, 4], [8, 20]], "combine": "concat"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    expected = MVPConfig(stages=((32, 4), (8, 3)), combine="concat")
    assert AutoConfig.from_pretrained(tmp_path).mvp == expected.to_dict()
    loaded = EmoLLMForConditionalGeneration.from_pretrained(tmp_path)
    assert loaded.model.projector.config == expected and loaded.config.num_image_tokens == 80


def test_one_token_count_everywhere(custom, media):
    model, processor, _ = custom
    n = CUSTOM.num_tokens
    assert model.model.projector.num_tokens == model.config.num_image_tokens == processor.num_image_tokens == n
    batch = processor(["USER: <image> <image> ASSISTANT:"], images=media["images"][:2])
    assert int((batch["input_ids"] == model.config.image_token_id).sum()) == 2 * n
    with torch.no_grad():
        assert model.model.get_image_features(batch["pixel_values"]).shape[:2] == (2, n)

import json

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
)

from emollm.model import EmoLLMConfig, EmoLLMForConditionalGeneration, EmoLLMModel, EmoLLMProcessor


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory):
    model, processor = tiny
    path = tmp_path_factory.mktemp("emollm-tiny")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def test_writes_safetensors(saved):
    assert (saved / "model.safetensors").exists()
    assert not list(saved.glob("*.bin"))
    config = json.loads((saved / "config.json").read_text())
    assert config["model_type"] == "emollm"
    assert config["mvp"]["stages"] == [[64, 5], [32, 3], [16, 3]]


def test_round_trip_bit_exact(tiny, media, saved):
    model, processor = tiny
    loaded = AutoModelForImageTextToText.from_pretrained(saved)
    assert type(loaded) is EmoLLMForConditionalGeneration
    before, after = model.state_dict(), loaded.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    batch = processor(["USER: <image> <audio> <video> ASSISTANT:", "USER: text ASSISTANT:"],
                      images=media["images"][:1], audio=media["audio"][:1], videos=media["videos"][:1])
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded.eval()(**batch).logits)


def test_loaded_towers_stay_frozen(saved):
    loaded = EmoLLMForConditionalGeneration.from_pretrained(saved)
    assert not any(p.requires_grad for p in loaded.model.vision_tower.parameters())
    assert not any(p.requires_grad for p in loaded.model.audio_tower.parameters())
    assert all(p.requires_grad for p in loaded.model.projector.parameters())
    assert all(p.requires_grad for p in loaded.model.audio_projector.parameters())


def test_auto_classes_resolve(saved):
    assert type(AutoConfig.from_pretrained(saved)) is EmoLLMConfig
    assert type(AutoModelForCausalLM.from_pretrained(saved)) is EmoLLMForConditionalGeneration
    assert type(AutoModel.from_pretrained(saved)) is EmoLLMModel


def test_processor_round_trip(tiny, media, saved):
    _, processor = tiny
    loaded = AutoProcessor.from_pretrained(saved)
    assert type(loaded) is EmoLLMProcessor
    assert (loaded.num_image_tokens, loaded.frames_per_event, loaded.audio_pool_stride, loaded.num_audio_tokens) == (
        processor.num_image_tokens, processor.frames_per_event, processor.audio_pool_stride,
        processor.num_audio_tokens)
    texts = ["USER: <image> <video> ASSISTANT:", "USER: <audio> hi ASSISTANT:"]
    kwargs = {"images": media["images"][:1], "videos": media["videos"][1:], "audio": media["audio"][:1]}
    a, b = processor(texts, **kwargs), loaded(texts, **kwargs)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert loaded.tokenizer.chat_template == processor.tokenizer.chat_template


def test_one_off_padding_side_is_not_saved(tmp_path):
    from emollm.model import from_named

    _, processor = from_named("emollm-tiny", seed=0)
    processor(["USER: hi ASSISTANT:", "USER: a longer prompt ASSISTANT:"], padding_side="left")
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    ids = loaded(["USER: hi ASSISTANT:", "USER: a longer prompt ASSISTANT:"])["attention_mask"]
    assert ids[0, 0] == 1 and ids[0, -1] == 0  # padded on the right, the tokenizer's own default

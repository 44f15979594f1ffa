"""`emollm train --model <LLaVA folder>` trains the MVP swapped into a tiny random LLaVA: the
projector alone (--no-lora) or with LoRA on the LM; nothing else moves."""

import pytest
import torch
from PIL import Image

pytest.importorskip("peft")

from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from emollm import cli
from emollm.data.records import EmoRecord, write_jsonl
from emollm.integrations.llava import MVPLlavaForConditionalGeneration
from emollm.model import build_tiny_tokenizer
from emollm.model.lora import LM_PROJECTIONS

SIDE, PATCH = 32, 4  # 64 patches + CLS: enough for the MVP's 64-cluster first stage


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    """A tiny random LLaVA-1.5-like checkpoint: CLIP 32 px, a 1-layer LLaMA, the tiny BPE tokenizer
    (it has <image> and </s>), the MLP projector LLaVA ships with."""
    tokenizer = build_tiny_tokenizer()
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=SIDE, patch_size=PATCH)
    text = LlamaConfig(hidden_size=48, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                       num_key_value_heads=2, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_index=tokenizer.convert_tokens_to_ids("<image>"))
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    images = CLIPImageProcessor(size={"shortest_edge": SIDE}, crop_size={"height": SIDE, "width": SIDE})
    processor = LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=PATCH,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1)
    folder = tmp_path_factory.mktemp("llava")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def image_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("emobench")
    records = []
    for i, (label, colour) in enumerate([("joy", (250, 200, 0)), ("anger", (200, 0, 0))] * 2):
        Image.new("RGB", (40, 40), colour).save(folder / f"{i}.png")
        records.append(EmoRecord(id=f"r{i}", task="emo-c", source="synth", label_set=["joy", "anger"], answer=label,
                                 media=[{"type": "image", "path": f"{i}.png"}],
                                 conversations=[{"from": "human", "value": "<image>\nWhich emotion? joy, anger"},
                                                {"from": "gpt", "value": label}]))
    write_jsonl(records, folder / "train.jsonl")
    return folder / "train.jsonl"


def _train(llava_dir, data, out, *flags):
    return cli.main(["train", "--model", str(llava_dir), "--data", str(data), "--output", str(out), "--max-steps",
                     "2", "--batch-size", "2", "--lr", "1e-2", "--save-steps", "100", "--no-resume", *flags])


def _weights(folder):
    return MVPLlavaForConditionalGeneration.from_pretrained(folder).state_dict()


def _changed(before, after):
    assert set(before) == set(after)
    return {k for k in after if not torch.equal(before[k], after[k])}


@pytest.fixture(scope="module")
def mvp_start(llava_dir, tmp_path_factory):
    """The model every run starts from: the LLaVA with its new (seed 0) MVP, before any step."""
    from emollm.integrations.llava_training import load_llava

    with pytest.warns(UserWarning, match="random weights"):
        model, _ = load_llava(llava_dir, seed=0)
    return model.state_dict()


def test_no_lora_trains_the_projector_only(llava_dir, image_data, mvp_start, tmp_path):
    assert _train(llava_dir, image_data, tmp_path / "run", "--no-lora") == 0
    changed = _changed(mvp_start, _weights(tmp_path / "run"))
    assert changed and all(k.startswith("model.multi_modal_projector.") for k in changed), sorted(changed)[:5]


def test_lora_trains_the_projector_and_the_lm_projections(llava_dir, image_data, mvp_start, tmp_path):
    assert _train(llava_dir, image_data, tmp_path / "run", "--lora", "--lora-r", "2") == 0
    changed = _changed(mvp_start, _weights(tmp_path / "run"))
    projector = {k for k in changed if k.startswith("model.multi_modal_projector.")}
    lm = changed - projector
    assert projector and lm
    # The merged adapters change the LM's q/k/v/o/gate/up/down weights and nothing else of the LLaVA.
    assert all(k.startswith("model.language_model.") and k.split(".")[-2] in LM_PROJECTIONS for k in lm), lm


def test_a_trained_mvp_is_kept_when_training_goes_on(llava_dir, image_data, tmp_path):
    assert _train(llava_dir, image_data, tmp_path / "first", "--no-lora") == 0
    first = _weights(tmp_path / "first")
    assert _train(tmp_path / "first", image_data, tmp_path / "second", "--no-lora") == 0  # no "random weights"
    changed = _changed(first, _weights(tmp_path / "second"))
    assert changed and all(k.startswith("model.multi_modal_projector.") for k in changed)


def test_video_or_audio_records_are_refused_in_one_line(llava_dir, tmp_path, capsys):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    record = EmoRecord(id="v1", task="sarcasm", source="s", label_set=["yes", "no"], answer="no",
                       media=[{"type": "audio", "path": "a.wav"}],
                       conversations=[{"from": "human", "value": "<audio>\nSarcastic?"},
                                      {"from": "gpt", "value": "no"}])
    write_jsonl([record], tmp_path / "d.jsonl")
    assert _train(llava_dir, tmp_path / "d.jsonl", tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert "record 'v1' has audio media; a LLaVA model is trained on images only" in err

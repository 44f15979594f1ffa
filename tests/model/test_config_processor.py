import pytest
from transformers import CLIPVisionConfig, LlamaConfig, WhisperConfig

from emollm.model import (
    EmoLLMConfig,
    build_tiny_tokenizer,
    from_named,
)
from emollm.model.tokenizer import SPECIAL_TOKENS, VICUNA_V1_SYSTEM


def test_config_defaults_are_the_paper_setup():
    cfg = EmoLLMConfig()
    assert isinstance(cfg.vision_config, CLIPVisionConfig)
    vision = cfg.vision_config
    assert (vision.hidden_size, vision.patch_size, vision.image_size) == (1024, 14, 224)
    assert isinstance(cfg.audio_config, WhisperConfig) and cfg.audio_config.d_model == 512
    assert isinstance(cfg.text_config, LlamaConfig) and cfg.text_config.hidden_size == 4096
    assert cfg.mvp == {"stages": [[64, 5], [32, 3], [16, 3]], "tau": 0.1, "alpha": 1.0, "gcn_layers": 2,
                       "combine": "sum"}
    assert (cfg.vision_feature_layer, cfg.frames_per_event, cfg.video_mode) == (-2, 16, "expand")
    assert cfg.freeze_vision and cfg.freeze_audio
    assert cfg.num_image_tokens == 112 and cfg.num_audio_tokens == 150


def test_config_dict_round_trip():
    cfg = EmoLLMConfig(text_config={"hidden_size": 64, "num_attention_heads": 4}, mvp={"combine": "concat"},
                       audio_pool_stride=3)
    again = EmoLLMConfig.from_dict(cfg.to_dict())
    assert again.text_config.hidden_size == 64 and again.mvp == cfg.mvp and again.audio_pool_stride == 3
    assert again.num_image_tokens == 224


def test_config_rejects_unknown_mvp_setting():
    with pytest.raises(ValueError, match="unknown MVPProjector settings"):
        EmoLLMConfig(mvp={"temperature": 1.0})


def test_tokenizer_specials_and_round_trip():
    tok = build_tiny_tokenizer()
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    ids = tok("Is this <image> funny? Ünïcode ✓")["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.convert_tokens_to_ids("<image>") in ids
    assert tok.decode(ids, skip_special_tokens=False) == "<s>Is this <image> funny? Ünïcode ✓"
    assert tok.unk_token_id not in ids  # byte-level: nothing is unknown


def test_vicuna_v1_chat_template():
    tok = build_tiny_tokenizer()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How does she feel?"}]},
                {"role": "assistant", "content": "Happy."},
                {"role": "user", "content": "Why?"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == f"{VICUNA_V1_SYSTEM} USER: <image>\nHow does she feel? ASSISTANT: Happy.</s>USER: Why? ASSISTANT:"


def test_named():
    with pytest.raises(ValueError, match="unknown EmoLLM name"):
        from_named("emollm-13b")


def test_named_overrides():
    model, processor = from_named("emollm-tiny", mvp={"stages": [[16, 3], [8, 3]]}, frames_per_event=4,
                                  text_config={"num_hidden_layers": 1}, attn_implementation="eager")
    assert model.model.projector.num_tokens == processor.num_image_tokens == 24
    assert processor.frames_per_event == 4 and model.config.text_config.num_hidden_layers == 1
    assert model.model.language_model.config._attn_implementation == "eager"

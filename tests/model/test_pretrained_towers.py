"""emollm-7b's loading code, offline: tiny CLIP / Whisper / LLaMA checkpoints (with a LLaMA-style
byte-fallback tokenizer that, like Vicuna's, has no pad token, no chat template and no
placeholders) are saved to temp folders and built through ``from_named("emollm-7b", ...)``.
The loaded weights are checked against the safetensors files themselves, not against the loader."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoProcessor,
    CLIPConfig,
    CLIPImageProcessorPil,
    CLIPModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaTokenizer,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
)

from emollm.model import VICUNA_V1_TEMPLATE, EmoLLMForConditionalGeneration, EmoLLMProcessor, from_named
from emollm.model.pretrained_towers import resolve_source

WORDS = ["▁", "▁USER", ":", "▁ASSISTANT", "▁how", "▁does", "▁she", "▁feel", "?", "▁happy", "▁sad"]


def _llama_tokenizer() -> LlamaTokenizer:
    """<unk>, <s>, </s>, the 256 byte-fallback tokens and a few words: any text encodes."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{i:02X}>": 3 + i for i in range(256)}}
    vocab.update({w: len(vocab) + i for i, w in enumerate(WORDS)})
    return LlamaTokenizer(vocab=vocab, merges=[], add_bos_token=True)


def _save_towers(root):
    torch.manual_seed(0)
    clip = CLIPModel(CLIPConfig(
        text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 4},
        projection_dim=8))
    clip.save_pretrained(root / "clip")
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        root / "clip")
    whisper = WhisperForConditionalGeneration(WhisperConfig(
        d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64, decoder_layers=1,
        decoder_attention_heads=2, decoder_ffn_dim=64, num_mel_bins=80, max_source_positions=50, vocab_size=64,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1, begin_suppress_tokens=None,
        suppress_tokens=None))
    whisper.save_pretrained(root / "whisper")
    WhisperFeatureExtractor(feature_size=80, chunk_length=1).save_pretrained(root / "whisper")
    tokenizer = _llama_tokenizer()
    llama = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, vocab_size=len(tokenizer),
                                         bos_token_id=1, eos_token_id=2))
    llama.save_pretrained(root / "llama")
    tokenizer.save_pretrained(root / "llama")
    return {"vision": root / "clip", "audio": root / "whisper", "text": root / "llama"}


@pytest.fixture(scope="module")
def towers(tmp_path_factory):
    return _save_towers(tmp_path_factory.mktemp("towers"))


@pytest.fixture(scope="module")
def built(towers):
    return from_named("emollm-7b", **towers, seed=0)


TEXTS = ["USER: <image> <audio> how does she feel? ASSISTANT: happy", "USER: <audio> ASSISTANT: sad"]


def _media():
    rng = np.random.default_rng(0)
    return {"images": [rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)],
            "audio": [rng.standard_normal(12000).astype(np.float32) for _ in range(2)]}


@pytest.fixture(scope="module")
def batch(built):
    _, processor = built
    return processor(TEXTS, **_media())


def _weights(folder):
    return load_file(folder / "model.safetensors")


def test_tower_weights_are_the_saved_ones(built, towers):
    model, _ = built
    base = model.model
    clip, whisper, llama = _weights(towers["vision"]), _weights(towers["audio"]), _weights(towers["text"])
    vision = base.vision_tower.state_dict()
    assert vision.keys() == {k.removeprefix("vision_model.") for k in clip if k.startswith("vision_model.")}
    for key, value in vision.items():
        assert torch.equal(value, clip[f"vision_model.{key}"]), key
    audio = base.audio_tower.state_dict()
    assert audio.keys() == {k.removeprefix("model.encoder.") for k in whisper if k.startswith("model.encoder.")}
    for key, value in audio.items():
        assert torch.equal(value, whisper[f"model.encoder.{key}"]), key
    old_vocab = llama["model.embed_tokens.weight"].shape[0]
    for key, value in base.language_model.state_dict().items():
        if key != "embed_tokens.weight":
            assert torch.equal(value, llama[f"model.{key}"]), key
    for got, saved in ((base.language_model.embed_tokens.weight, llama["model.embed_tokens.weight"]),
                       (model.lm_head.weight, llama["lm_head.weight"])):
        assert got.shape == (old_vocab + 3, saved.shape[1])
        assert torch.equal(got[:old_vocab], saved)
        # The three placeholder rows start at the mean of the pretrained rows.
        torch.testing.assert_close(got[old_vocab:], saved.mean(0).expand(3, -1))


def test_config_from_the_towers(built, towers):
    model, processor = built
    cfg = model.config
    saved = {name: json.loads((towers[part] / "config.json").read_text())
             for name, part in (("clip", "vision"), ("whisper", "audio"), ("llama", "text"))}
    assert cfg.vision_config.hidden_size == saved["clip"]["vision_config"]["hidden_size"] == 32
    assert cfg.audio_config.d_model == saved["whisper"]["d_model"] == 32
    assert cfg.text_config.hidden_size == saved["llama"]["hidden_size"] == 64
    old_vocab = saved["llama"]["vocab_size"]
    tok = processor.tokenizer
    assert (cfg.image_token_id, cfg.video_token_id, cfg.audio_token_id) == (old_vocab, old_vocab + 1, old_vocab + 2)
    assert tok.convert_tokens_to_ids(["<image>", "<video>", "<audio>"]) == [old_vocab, old_vocab + 1, old_vocab + 2]
    assert cfg.text_config.vocab_size == len(tok) == old_vocab + 3
    assert tok.pad_token == "<unk>" and cfg.text_config.pad_token_id == 0
    assert tok.chat_template == VICUNA_V1_TEMPLATE
    assert cfg.text_config._attn_implementation == "sdpa"
    assert processor.num_image_tokens == model.model.projector.num_tokens == 112
    assert processor.num_audio_tokens == cfg.num_audio_tokens == 50 // 10


def test_new_projectors_are_initialized_and_trainable(built):
    model, _ = built
    base = model.model
    assert not any(p.requires_grad for p in base.vision_tower.parameters())
    assert not any(p.requires_grad for p in base.audio_tower.parameters())
    weights = [base.projector.content.weight, base.audio_projector.linear_1.weight]
    for w in weights:  # post_init's initialization: N(0, 0.02), not PyTorch's uniform default
        assert w.requires_grad
        assert 0.015 < w.std().item() < 0.025 and abs(w.mean().item()) < 0.005


def test_forward_backward_and_generate(built, batch):
    model, processor = built
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    model.train()
    try:
        out = model(**batch, labels=labels)
        assert torch.isfinite(out.loss)
        out.loss.backward()
    finally:
        model.eval()
    assert model.model.projector.content.weight.grad.abs().sum() > 0
    assert model.model.audio_projector.linear_1.weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    prompt = processor(["USER: <image> how does she feel? ASSISTANT:"],
                       images=[np.zeros((32, 32, 3), dtype=np.uint8)])
    out = model.generate(**prompt, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert out.shape == (1, prompt["input_ids"].shape[1] + 3)
    assert isinstance(processor.decode(out[0], skip_special_tokens=True), str)


def test_save_and_load_round_trip(built, batch, tmp_path):
    model, processor = built
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = EmoLLMForConditionalGeneration.from_pretrained(tmp_path).eval()
    before, after = model.state_dict(), loaded.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded(**batch).logits)
    again = AutoProcessor.from_pretrained(tmp_path)
    assert type(again) is EmoLLMProcessor
    redo = again(TEXTS, **_media())
    assert redo.keys() == batch.keys()
    for key in batch:
        assert torch.equal(redo[key], batch[key]), key


def test_checkpoint_dtype_is_kept_and_shared(towers, tmp_path, batch):
    # dtype=None means the LM checkpoint's dtype ("auto"); towers and projectors follow it.
    text = tmp_path / "llama-bf16"
    LlamaForCausalLM.from_pretrained(towers["text"]).to(torch.bfloat16).save_pretrained(text)
    shutil.copy(towers["text"] / "tokenizer.json", text)
    shutil.copy(towers["text"] / "tokenizer_config.json", text)
    model, _ = from_named("emollm-7b", vision=towers["vision"], audio=towers["audio"], text=text)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    with torch.no_grad():
        out = model(**batch, labels=batch["input_ids"])
    assert torch.isfinite(out.loss)
    model32, _ = from_named("emollm-7b", vision=towers["vision"], audio=towers["audio"], text=text,
                            torch_dtype=torch.float32, attn_implementation="eager")
    assert {p.dtype for p in model32.parameters()} == {torch.float32}
    assert model32.model.language_model.config._attn_implementation == "eager"


def test_sources_from_arguments_environment_and_defaults(towers, monkeypatch):
    for env in ("EMOLLM_CLIP", "EMOLLM_WHISPER", "EMOLLM_VICUNA"):
        monkeypatch.delenv(env, raising=False)
    assert resolve_source("vision") == "openai/clip-vit-large-patch14"
    assert resolve_source("audio") == "openai/whisper-base"
    assert resolve_source("text") == "lmsys/vicuna-7b-v1.5"
    monkeypatch.setenv("EMOLLM_CLIP", str(towers["vision"]))
    monkeypatch.setenv("EMOLLM_WHISPER", str(towers["audio"]))
    monkeypatch.setenv("EMOLLM_VICUNA", str(towers["text"]))
    assert resolve_source("vision") == str(towers["vision"])
    assert resolve_source("text", towers["audio"]) == str(towers["audio"])  # the argument wins
    model, _ = from_named("emollm-7b", seed=0)
    assert model.config.text_config.hidden_size == 64 and model.config.vision_config.image_size == 32


def test_missing_or_wrong_checkpoints_raise(towers, tmp_path):
    with pytest.raises(ValueError, match=r"vision='/no/such/clip': no such folder.*EMOLLM_CLIP"):
        from_named("emollm-7b", vision="/no/such/clip", audio=towers["audio"], text=towers["text"])
    with pytest.raises(ValueError, match=r"audio=.*has no config.json"):
        from_named("emollm-7b", vision=towers["vision"], audio=tmp_path, text=towers["text"])
    with pytest.raises(ValueError, match=r"vision=.* is a 'whisper' checkpoint; expected a CLIP"):
        from_named("emollm-7b", vision=towers["audio"], audio=towers["audio"], text=towers["text"])
    with pytest.raises(ValueError, match=r"text=.* is a 'clip' checkpoint; expected a LLaMA"):
        from_named("emollm-7b", vision=towers["vision"], audio=towers["audio"], text=towers["vision"])


def _without(folder, dest, key):
    shutil.copytree(folder, dest)
    weights = _weights(folder)
    del weights[key]
    save_file(weights, dest / "model.safetensors", metadata={"format": "pt"})
    return dest


def test_missing_weights_raise_only_where_used(towers, tmp_path):
    clip = _without(towers["vision"], tmp_path / "clip", "vision_model.encoder.layers.1.mlp.fc1.weight")
    with pytest.raises(ValueError, match=r"vision=.* lacks weights .*encoder.layers.1.mlp.fc1.weight"):
        from_named("emollm-7b", vision=clip, audio=towers["audio"], text=towers["text"])
    encoder = _without(towers["audio"], tmp_path / "whisper-enc", "model.encoder.layers.0.fc2.weight")
    with pytest.raises(ValueError, match=r"audio=.* lacks weights .*encoder.layers.0.fc2.weight"):
        from_named("emollm-7b", vision=towers["vision"], audio=encoder, text=towers["text"])
    # A missing decoder weight does not matter: EmoLLM keeps only Whisper's encoder.
    decoder = _without(towers["audio"], tmp_path / "whisper-dec", "model.decoder.layers.0.fc2.weight")
    model, _ = from_named("emollm-7b", vision=towers["vision"], audio=decoder, text=towers["text"])
    assert torch.equal(model.model.audio_tower.layers[0].fc2.weight,
                       _weights(towers["audio"])["model.encoder.layers.0.fc2.weight"])


def test_preprocessors_are_checked_or_defaulted(towers, tmp_path):
    clip = tmp_path / "clip"
    shutil.copytree(towers["vision"], clip)
    CLIPImageProcessorPil(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}).save_pretrained(clip)
    with pytest.raises(ValueError, match=r"makes .*64.* images but the vision tower takes 32x32"):
        from_named("emollm-7b", vision=clip, audio=towers["audio"], text=towers["text"])
    (clip / "preprocessor_config.json").unlink()
    with pytest.warns(UserWarning, match="no preprocessor_config.json"):
        _, processor = from_named("emollm-7b", vision=clip, audio=towers["audio"], text=towers["text"])
    assert processor.image_processor.crop_size == {"height": 32, "width": 32}


def test_named_arguments_are_checked(towers):
    with pytest.raises(ValueError, match=r"dtype=.* and torch_dtype=.* disagree"):
        from_named("emollm-7b", **towers, dtype=torch.bfloat16, torch_dtype=torch.float32)
    with pytest.raises(ValueError, match="device_map is for emollm-7b"):
        from_named("emollm-tiny", device_map="cpu")


def test_placement_for_the_attention_choice():
    from emollm.model.pretrained_towers import _placement

    assert _placement("cuda:1", "auto") == "cuda:1"  # device wins
    assert _placement(None, None) is None
    assert _placement(None, 0) == torch.device("cuda", 0)
    assert _placement(None, "auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert _placement(None, {"model.embed_tokens": 0, "lm_head": "cpu"}) == "cuda"
    assert _placement(None, {"model": "cpu", "lm_head": "disk"}) == "cpu"


def test_vision_only_and_base_whisper_checkpoints(towers, tmp_path):
    # The other two layouts the towers come in: a CLIPVisionModel and a WhisperModel checkpoint.
    from transformers import CLIPVisionModel, WhisperModel

    vision, audio = tmp_path / "clip-vision", tmp_path / "whisper-model"
    CLIPVisionModel.from_pretrained(towers["vision"]).save_pretrained(vision)
    WhisperModel.from_pretrained(towers["audio"]).save_pretrained(audio)
    with pytest.warns(UserWarning, match="no preprocessor_config.json"):
        model, processor = from_named("emollm-7b", vision=vision, audio=audio, text=towers["text"])
    clip, whisper = _weights(towers["vision"]), _weights(towers["audio"])
    assert torch.equal(model.model.vision_tower.encoder.layers[1].mlp.fc2.weight,
                       clip["vision_model.encoder.layers.1.mlp.fc2.weight"])
    assert torch.equal(model.model.audio_tower.layers[1].self_attn.k_proj.weight,
                       whisper["model.encoder.layers.1.self_attn.k_proj.weight"])
    assert processor.num_audio_tokens == 5  # the default extractor matches the 1 s encoder

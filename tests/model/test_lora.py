import pytest
import torch

from emollm.model import LM_PROJECTIONS, apply_lora, from_named

peft = pytest.importorskip("peft")


@pytest.fixture
def lora():
    model, processor = from_named("emollm-tiny", seed=0)
    return apply_lora(model, r=4, alpha=8, dropout=0.0), processor


def _batch(processor, media):
    return processor(["USER: <image> <audio> feel? ASSISTANT: happy"], images=media["images"][:1],
                     audio=media["audio"][:1])


def test_adapters_only_on_the_language_model(lora):
    model, _ = lora
    adapted = [name for name, module in model.named_modules() if hasattr(module, "lora_A") and len(module.lora_A)]
    assert adapted
    assert all(".language_model." in name for name in adapted)
    assert {name.rsplit(".", 1)[-1] for name in adapted} == set(LM_PROJECTIONS)
    assert not any("vision_tower" in n or "audio_tower" in n for n, _ in model.named_modules() if "lora_" in n)


def test_trainable_parameters(lora):
    model, _ = lora
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in trainable)
    assert any(".projector.modules_to_save." in n for n in trainable)
    assert any("audio_projector.modules_to_save." in n for n in trainable)
    for name in trainable:
        assert "lora_" in name or "modules_to_save" in name, name


def test_backward_reaches_adapters_and_projectors(lora, media):
    model, processor = lora
    batch = _batch(processor, media)
    out = model(**batch, labels=batch["input_ids"])
    assert torch.isfinite(out.loss)
    out.loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert all(g is not None for n, g in grads.items() if "lora_B" in n or "modules_to_save" in n)
    assert any(g.abs().sum() > 0 for n, g in grads.items() if "projector.modules_to_save" in n)


def test_save_load_and_merge(lora, media, tmp_path):
    model, processor = lora
    with torch.no_grad():  # make the adapters non-zero (B starts at 0)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05)
    model.eval()
    batch = _batch(processor, media)
    with torch.no_grad():
        want = model(**batch).logits
    model.save_pretrained(tmp_path)
    assert (tmp_path / "adapter_model.safetensors").exists()
    base, _ = from_named("emollm-tiny", seed=0)
    loaded = peft.PeftModel.from_pretrained(base, tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, want)
        merged = loaded.merge_and_unload()
        assert not any("lora_" in n for n, _ in merged.named_modules())
        torch.testing.assert_close(merged(**batch).logits, want, rtol=1e-4, atol=1e-4)


def test_generate_through_peft(lora, media):
    model, processor = lora
    batch = _batch(processor, media)
    out = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == batch["input_ids"].shape[1] + 3


def test_bad_arguments():
    model, _ = from_named("emollm-tiny", seed=0)
    with pytest.raises(ValueError, match="r must be"):
        apply_lora(model, r=0)
    with pytest.raises(ValueError, match="unknown"):
        apply_lora(model, targets=("fc1",))

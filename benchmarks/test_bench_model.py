"""Training-step throughput of ``emollm-tiny`` (issue 5): forward + backward + AdamW step on a
batch of 4 image+audio samples, LoRA on the LM (the paper's set-up) and full fine-tuning of the
trainable parts without LoRA. CPU numbers say what the tiny preset costs in the test suite and in
quick experiments; the GPU attention comparison belongs on a GPU machine."""

import numpy as np
import pytest
import torch
from conftest import DEVICE, run

pytest.importorskip("transformers")
from emollm.model import apply_lora, from_named


def _batch(processor):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(4)]
    audio = [rng.standard_normal(16000).astype(np.float32) for _ in range(4)]
    texts = [f"USER: <image> <audio> how do they feel? ASSISTANT: answer {i}" for i in range(4)]
    batch = processor(texts, images=images, audio=audio).to(DEVICE)
    batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    return batch


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "no-lora"])
def test_train_step(benchmark, lora):
    model, processor = from_named("emollm-tiny", seed=0)
    model = (apply_lora(model, r=8) if lora else model).to(DEVICE).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batch = _batch(processor)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        return loss

    benchmark.group = f"emollm-tiny train step B=4 image+audio {DEVICE.type}"
    run(benchmark, "lora" if lora else "no-lora", step, tokens=int(batch["attention_mask"].sum()))

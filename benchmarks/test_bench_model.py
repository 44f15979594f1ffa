"""EmoLLM model benchmarks.

CPU and GPU: training-step throughput of ``emollm-tiny`` (forward + backward + AdamW step on a
batch of 4 image+audio samples), LoRA on the LM (the paper's set-up) and full fine-tuning of the
trainable parts without LoRA. CPU numbers say what the tiny preset costs in the test suite and in
quick experiments.

GPU only (``EMOLLM_BENCH_DEVICE=cuda``): the attention implementations side by side, bf16,
random weights: the LM forward at sequence 2048, batch 1, with vicuna-7b-v1.5's dimensions
(``EMOLLM_BENCH_LM_LAYERS`` of its 32 layers, default all 32: 13.5 GB), and the CLIP ViT-L/14
vision tower at B=64 (how much an attention kernel can matter for the tower: the xformers
question of docs/model.md). Unavailable implementations are skipped with the reason.
"""

import os

import numpy as np
import pytest
import torch
from conftest import DEVICE, DRY_RUN, run

pytest.importorskip("transformers")
import transformers

from emollm.model import ATTN_IMPLEMENTATIONS, apply_lora, attn_implementation_status, from_named


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


# ---- GPU: attention implementations ----

SEQ = 2048
LM_LAYERS = int(os.environ.get("EMOLLM_BENCH_LM_LAYERS", "32"))
VICUNA_7B = {"hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32, "num_key_value_heads": 32,
             "vocab_size": 32000, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5}
CLIP_VIT_L14 = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
                "image_size": 224, "patch_size": 14}
CLIP_BATCH = 64
if DRY_RUN:  # make gpu-check's dry run: the same code on CPU with tiny stand-ins
    SEQ, LM_LAYERS, CLIP_BATCH = 64, 2, 2
    VICUNA_7B = {**VICUNA_7B, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
                 "num_key_value_heads": 4, "vocab_size": 128}
    CLIP_VIT_L14 = {**CLIP_VIT_L14, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                    "num_attention_heads": 2, "image_size": 28}


def attn_providers() -> list:
    """One ``pytest.param`` per attention implementation; all skipped, with the reason, off CUDA
    (except in make gpu-check's dry run). All are in make gpu-check (``gpu_check``)."""
    status = attn_implementation_status(DEVICE)
    params = []
    for impl in ATTN_IMPLEMENTATIONS:
        usable, why = status[impl]
        if DEVICE.type != "cuda" and not DRY_RUN:
            why, usable = "GPU benchmark: set EMOLLM_BENCH_DEVICE=cuda on a GPU machine", False
        marks = [pytest.mark.gpu, pytest.mark.gpu_check] + ([] if usable else [pytest.mark.skip(reason=why)])
        params.append(pytest.param(impl, id=impl, marks=marks))
    return params


def _random_bf16(model_class, config, impl: str):
    """``model_class`` with random weights, built directly on the device in bf16."""
    with torch.device(DEVICE):
        model = model_class._from_config(config, dtype=torch.bfloat16, attn_implementation=impl)
    return model.eval()


def _timed_forward(benchmark, impl: str, forward, **info) -> None:
    if DEVICE.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(DEVICE)
    run(benchmark, impl, forward, **info)
    if DEVICE.type == "cuda":
        benchmark.extra_info["peak_gb"] = round(torch.cuda.max_memory_allocated(DEVICE) / 2**30, 2)


@pytest.mark.parametrize("impl", attn_providers())
def test_lm_forward_attention(benchmark, impl):
    config = transformers.LlamaConfig(**VICUNA_7B, num_hidden_layers=LM_LAYERS)
    model = _random_bf16(transformers.LlamaForCausalLM, config, impl)
    ids = torch.randint(0, config.vocab_size, (1, SEQ), generator=torch.Generator().manual_seed(0)).to(DEVICE)

    def forward():
        with torch.no_grad():
            return model(input_ids=ids, use_cache=False).logits

    benchmark.group = f"vicuna-7b dims LM forward B=1 L={SEQ} layers={LM_LAYERS} bfloat16 {DEVICE.type}"
    _timed_forward(benchmark, impl, forward, layers=LM_LAYERS, of_layers=32, tokens=SEQ, op="lm_attention",
                   shape=[1, 2048, 4096], dtype="bfloat16")


@pytest.mark.parametrize("impl", attn_providers())
def test_clip_vit_l14_attention(benchmark, impl):
    model = _random_bf16(transformers.CLIPVisionModel, transformers.CLIPVisionConfig(**CLIP_VIT_L14), impl)
    size = CLIP_VIT_L14["image_size"]
    pixels = torch.randn(CLIP_BATCH, 3, size, size, generator=torch.Generator().manual_seed(0)).to(DEVICE,
                                                                                                    torch.bfloat16)

    def forward():
        with torch.no_grad():
            return model(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]

    benchmark.group = f"clip_vitl14 forward B={CLIP_BATCH} N=257 bfloat16 {DEVICE.type}"
    _timed_forward(benchmark, impl, forward, images=CLIP_BATCH, op="clip_attention", shape=[64, 257, 1024],
                   dtype="bfloat16")

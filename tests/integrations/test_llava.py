"""The MVP projector swapped into a tiny random transformers LLaVA (emollm.integrations.llava).

The tiny LLaVA: CLIP vision tower on 32 px images with 4 px patches (64 patches + CLS, enough for
the MVP's 64-cluster first stage), a one-layer LLaMA, a word-level tokenizer built here; no
downloads. Each model builds in ~50 ms.
"""

import pickle

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from transformers import (  # noqa: E402
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from emollm.integrations.llava import (  # noqa: E402
    MVPLlavaForConditionalGeneration,
    mvp_settings,
    use_mvp_projector,
)
from emollm.projector import MVPConfig, MVPProjector  # noqa: E402

WORDS = ["<pad>", "<unk>", "<s>", "</s>", "<image>", "user", ":", "what", "is", "this", "?", "assistant", "a", "cat"]
IMAGE_ID = WORDS.index("<image>")
PROMPT = "user : <image> what is this ? assistant : a cat"
IMAGE, PATCH, HIDDEN = 32, 4, 32
PATCHES = (IMAGE // PATCH) ** 2  # 64


def tiny_tokenizer():
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", extra_special_tokens={"image_token": "<image>"})


def tiny_llava(strategy="default", feature_layer=-2, image_size=IMAGE):
    vision = CLIPVisionConfig(hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=image_size, patch_size=PATCH)
    text = LlamaConfig(hidden_size=48, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                       num_key_value_heads=2, vocab_size=len(WORDS), pad_token_id=0, bos_token_id=2, eos_token_id=3)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=IMAGE_ID,
                         vision_feature_select_strategy=strategy, vision_feature_layer=feature_layer)
    return LlavaForConditionalGeneration(config).eval()


def tiny_processor(strategy="default"):
    images = CLIPImageProcessor(size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE})
    # num_additional_image_tokens=1: the CLS token, as the llava-hf checkpoints set it.
    return LlavaProcessor(image_processor=images, tokenizer=tiny_tokenizer(), patch_size=PATCH,
                          vision_feature_select_strategy=strategy, num_additional_image_tokens=1)


def image(seed=0, shape=(40, 48, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def inputs(processor, n=1):
    return processor(text=[PROMPT] * n, images=[image(i) for i in range(n)], return_tensors="pt")


def with_labels(batch):
    labels = batch["input_ids"].clone()
    labels[labels == IMAGE_ID] = -100
    return {**batch, "labels": labels}


def image_tokens(batch):
    return (batch["input_ids"] == IMAGE_ID).sum(-1).tolist()


@pytest.mark.parametrize("strategy, tower_tokens", [("default", PATCHES), ("full", PATCHES + 1)])
def test_processor_expands_image_to_num_tokens(strategy, tower_tokens):
    model, processor = tiny_llava(strategy), tiny_processor(strategy)
    assert image_tokens(inputs(processor)) == [tower_tokens]  # LLaVA's own count, before the swap
    model, processor = use_mvp_projector(model, processor)
    projector = model.model.multi_modal_projector
    assert isinstance(projector, MVPProjector) and projector.num_tokens == 112
    assert image_tokens(inputs(processor, n=2)) == [112, 112]
    sizes = processor._get_num_multimodal_tokens(image_sizes=[[40, 48], [64, 32]])
    assert sizes.num_image_tokens == [112, 112] and sizes.num_image_patches == [1, 1]
    assert model.config.image_seq_length == 112

    seen = []
    projector.register_forward_hook(lambda mod, args, out: seen.append((args[0].shape, out.shape)))
    with torch.no_grad():
        logits = model(**inputs(processor, n=2)).logits  # LLaVA raises if tokens and features disagree
    # The projector clusters what the strategy hands it: the patches, or the patches and CLS.
    assert seen == [(torch.Size([2, tower_tokens, HIDDEN]), torch.Size([2, 112, 48]))]
    assert torch.isfinite(logits).all()


def test_loss_is_finite_and_backward_reaches_every_mvp_parameter():
    model, processor = use_mvp_projector(tiny_llava(), tiny_processor())
    model.train()
    loss = model(**with_labels(inputs(processor, n=2))).loss
    assert torch.isfinite(loss)
    loss.backward()
    params = dict(model.model.multi_modal_projector.named_parameters())
    assert len(params) == 2 + 3 * 2 * 2  # content Linear; per stage, two GCN layers of weight and bias
    for name, p in params.items():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    # ... and through the cluster merges back into the vision tower.
    patch_embedding = next(p for n, p in model.model.vision_tower.named_parameters() if "patch_embedding" in n)
    assert patch_embedding.grad.abs().sum() > 0


def test_generate():
    model, processor = use_mvp_projector(tiny_llava(), tiny_processor())
    batch = processor(text=["user : <image> what is this ? assistant :"], images=[image()], return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert out.shape == (1, batch["input_ids"].shape[1] + 3)
    assert torch.equal(out[:, :batch["input_ids"].shape[1]], batch["input_ids"])


def test_concat_gives_224_tokens():
    model, processor = use_mvp_projector(tiny_llava(), tiny_processor(), combine="concat", tau=0.3)
    assert model.model.multi_modal_projector.num_tokens == 224
    batch = with_labels(inputs(processor))
    assert image_tokens(batch) == [224]
    assert torch.isfinite(model(**batch).loss)
    assert model.config.mvp_projector["combine"] == "concat" and model.config.mvp_projector["tau"] == 0.3


def test_feature_layer_list_concatenates_hidden_sizes():
    model, processor = use_mvp_projector(tiny_llava(feature_layer=[-2, -1]), tiny_processor())
    assert model.model.multi_modal_projector.in_dim == 2 * HIDDEN
    with torch.no_grad():
        assert torch.isfinite(model(**inputs(processor)).logits).all()


def test_hand_placed_mvp_is_kept_and_recorded():
    model = tiny_llava()
    mvp = MVPProjector(HIDDEN, 48, stages=((32, 8), (4, 9)), combine="concat")
    model.model.multi_modal_projector = mvp
    model, processor = use_mvp_projector(model, tiny_processor())
    assert model.model.multi_modal_projector is mvp
    assert model.config.mvp_projector["stages"] == [[32, 8], [4, 2]]  # k as the projector runs it
    assert image_tokens(inputs(processor)) == [72]


def test_settings_recorded_through_mvp_config():
    settings = {"stages": [[40, 5], [8, 20]], "tau": 0.3, "gcn_layers": 1, "combine": "concat"}
    expected = MVPConfig(**settings)
    model, processor = use_mvp_projector(tiny_llava(), tiny_processor(), **settings)
    assert model.model.multi_modal_projector.config == expected
    assert model.config.mvp_projector == expected.to_dict()  # complete, k as it runs: [8, 3]
    assert mvp_settings(model.config) == expected
    # One token count: the config's, the projector's, LLaVA's and the patched processor's.
    n = expected.num_tokens
    assert n == 96 and model.model.multi_modal_projector.num_tokens == model.config.image_seq_length == n
    assert image_tokens(inputs(processor, n=2)) == [n, n]
    assert processor._get_num_multimodal_tokens(image_sizes=[[40, 48]]).num_image_tokens == [n]


def test_hand_placed_mvp_records_its_own_config():
    model = tiny_llava()
    model.model.multi_modal_projector = MVPProjector(HIDDEN, 48, gcn_layers=1, tau=0.4)
    model = use_mvp_projector(model)
    assert mvp_settings(model.config) == MVPConfig(gcn_layers=1, tau=0.4)


def test_projector_follows_the_model_dtype():
    model = use_mvp_projector(tiny_llava().to(torch.float64))
    assert {p.dtype for p in model.model.multi_modal_projector.parameters()} == {torch.float64}


def test_rejects_non_llava():
    with pytest.raises(TypeError, match="LlavaForConditionalGeneration"):
        use_mvp_projector(nn.Linear(2, 2))
    llama = LlamaForCausalLM(LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, vocab_size=8))
    with pytest.raises(TypeError, match=r"LlavaForConditionalGeneration.*LlamaForCausalLM"):
        use_mvp_projector(llama)
    model = tiny_llava()
    with pytest.raises(TypeError, match="LlavaProcessor"):
        use_mvp_projector(model, tiny_tokenizer())
    assert not isinstance(model.model.multi_modal_projector, MVPProjector)


@pytest.mark.parametrize("kwargs, error", [({"combine": "max"}, ValueError), ({"tau": 2.0}, ValueError),
                                           ({"clusters": 8}, TypeError)])
def test_bad_kwargs_raise_and_leave_the_model_alone(kwargs, error):
    model = tiny_llava()
    with pytest.raises(error):
        use_mvp_projector(model, **kwargs)
    assert not isinstance(model.model.multi_modal_projector, MVPProjector)
    assert getattr(model.config, "mvp_projector", None) is None


def test_too_few_vision_tokens():
    with pytest.raises(ValueError, match=r"stages\[0\]\[0\]=64"):
        use_mvp_projector(tiny_llava(image_size=16))  # 16 patches + CLS
    use_mvp_projector(tiny_llava(image_size=16), stages=((8, 3), (4, 3)))  # fits


def test_save_and_reload(tmp_path):
    settings = {"stages": ((48, 5), (24, 3)), "tau": 0.2, "alpha": 0.5}  # 72 tokens
    model, processor = use_mvp_projector(tiny_llava(), tiny_processor(), **settings)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    batch = inputs(processor)
    assert image_tokens(batch) == [72]
    assert image_tokens(inputs(pickle.loads(pickle.dumps(processor)))) == [72]  # the patch pickles
    with torch.no_grad():
        expected = model(**batch).logits

    # One step, weights included; a second call keeps the loaded projector and patches the processor.
    loaded = MVPLlavaForConditionalGeneration.from_pretrained(tmp_path).eval()
    projector = loaded.model.multi_modal_projector
    assert isinstance(projector, MVPProjector) and projector.stages == ((48, 5), (24, 3))
    assert projector.config == MVPConfig(**settings)
    fresh = LlavaProcessor.from_pretrained(tmp_path)
    assert image_tokens(inputs(fresh)) == [PATCHES]  # the processor's patch is not saved
    loaded, fresh = use_mvp_projector(loaded, fresh)
    assert loaded.model.multi_modal_projector is projector
    assert image_tokens(inputs(fresh)) == [72]
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs(fresh)).logits, expected)

    # A plain LLaVA drops the MVP weights; use_mvp_projector rebuilds it from the config.
    plain = LlavaForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert plain.config.mvp_projector["tau"] == 0.2
    plain = use_mvp_projector(plain)
    assert plain.model.multi_modal_projector.stages == ((48, 5), (24, 3))
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(plain(**batch).logits, expected)

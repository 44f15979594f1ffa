import math

import pytest
import torch

from emollm.model._compat import CACHE_NAME, one_cache

# Prompt + answer per sample; the answer (after "ASSISTANT:") is what the loss is taken on.
BATCHES = {
    "image": (["USER: <image>\nHow does she feel? ASSISTANT: happy", "USER: <image> and <image> ASSISTANT: sad"],
              {"images": [0, 1, 2]}),
    "video": (["USER: <video> what happens? ASSISTANT: anger", "USER: <video> ASSISTANT: fear"],
              {"videos": [0, 1]}),
    "audio": (["USER: <audio> tone? ASSISTANT: calm", "USER: <audio> ASSISTANT: tense"], {"audio": [0, 1]}),
    "image+audio": (["USER: <image> <audio> joke? ASSISTANT: yes", "USER: <audio> <image> ASSISTANT: no"],
                    {"images": [0, 1], "audio": [0, 1]}),
    "text": (["USER: is this sarcasm? ASSISTANT: yes", "USER: hi ASSISTANT: hello there"], {}),
    "mixed": (["USER: <image> <video> ASSISTANT: joy", "USER: only text here ASSISTANT: neutral",
               "USER: <audio> ASSISTANT: surprise"], {"images": [0], "videos": [1], "audio": [0]}),
}


def _inputs(processor, media, name, **kwargs):
    texts, picks = BATCHES[name]
    given = {key: [media[key][i] for i in idx] for key, idx in picks.items()}
    return processor(texts, **given, **kwargs)


def _labels(processor, batch):
    """Loss on the answer tokens only: everything up to the last "ASSISTANT:" and padding -> -100."""
    labels = batch["input_ids"].clone()
    marker = processor.tokenizer(" ASSISTANT:", add_special_tokens=False)["input_ids"]
    for row in labels:
        ids = row.tolist()
        starts = [i for i in range(len(ids) - len(marker) + 1) if ids[i:i + len(marker)] == marker]
        row[: starts[-1] + len(marker)] = -100
    labels[batch["attention_mask"] == 0] = -100
    return labels


@pytest.mark.parametrize("name", list(BATCHES))
def test_forward_backward(tiny, media, name):
    model, processor = tiny
    batch = _inputs(processor, media, name)
    labels = _labels(processor, batch)
    assert (labels != -100).any()
    model.zero_grad(set_to_none=True)
    model.train()
    try:
        out = model(**batch, labels=labels)
        assert out.logits.shape == (*batch["input_ids"].shape, model.config.text_config.vocab_size)
        assert torch.isfinite(out.loss)
        out.loss.backward()
    finally:
        model.eval()
    base = model.model
    visual = "images" in BATCHES[name][1] or "videos" in BATCHES[name][1]
    heard = "audio" in BATCHES[name][1]
    mvp_grad = base.projector.content.weight.grad
    audio_grad = base.audio_projector.linear_1.weight.grad
    assert (mvp_grad is not None and mvp_grad.abs().sum() > 0) == visual
    assert (audio_grad is not None and audio_grad.abs().sum() > 0) == heard
    assert all(p.grad is None for p in base.vision_tower.parameters())
    assert all(p.grad is None for p in base.audio_tower.parameters())
    assert base.language_model.embed_tokens.weight.grad is not None
    model.zero_grad(set_to_none=True)


def test_features_fill_placeholders_in_order(tiny, media):
    # Independent check of the scatter: every placeholder row of the embeddings holds the next
    # feature row of its modality, every other row the token embedding.
    model, processor = tiny
    batch = _inputs(processor, media, "mixed")
    base, cfg = model.model, model.config
    with torch.no_grad():
        embeds = base.embed(batch["input_ids"], None, batch["pixel_values"], batch["pixel_values_videos"],
                            batch["video_frame_mask"], batch["input_features"])
        expected = base.get_input_embeddings()(batch["input_ids"]).clone()
        features = {cfg.image_token_id: base.get_image_features(batch["pixel_values"]).flatten(0, 1),
                    cfg.video_token_id: base.get_video_features(batch["pixel_values_videos"],
                                                                batch["video_frame_mask"]),
                    cfg.audio_token_id: base.get_audio_features(batch["input_features"]).flatten(0, 1)}
    used = dict.fromkeys(features, 0)
    for b, row in enumerate(batch["input_ids"].tolist()):
        for i, tok in enumerate(row):
            if tok in features:
                expected[b, i] = features[tok][used[tok]]
                used[tok] += 1
    assert used == {k: v.shape[0] for k, v in features.items()}
    torch.testing.assert_close(embeds, expected, rtol=0, atol=0)


def test_processor_counts_match_model(tiny, media):
    model, processor = tiny
    cfg = model.config
    assert processor.num_image_tokens == model.model.projector.num_tokens == cfg.num_image_tokens == 112
    assert processor.num_audio_tokens == cfg.num_audio_tokens == 10
    texts = ["<image>", "<video>", "<audio>", "<video><video><video>"]
    vids = [media["videos"][1][:1], media["videos"][0][:16], media["videos"][0][:17]]
    batch = processor(texts, images=media["images"][:1], videos=[media["videos"][0], *vids],
                      audio=media["audio"][:1])
    ids = batch["input_ids"]
    with torch.no_grad():
        n_img = model.model.get_image_features(batch["pixel_values"]).flatten(0, 1).shape[0]
        n_aud = model.model.get_audio_features(batch["input_features"]).flatten(0, 1).shape[0]
        per_video = [model.model.get_video_features(batch["pixel_values_videos"][i:i + 1],
                                                    batch["video_frame_mask"][i:i + 1]).shape[0] for i in range(4)]
    assert int((ids == cfg.image_token_id).sum()) == n_img == 112
    assert int((ids == cfg.audio_token_id).sum()) == n_aud == 10
    assert per_video == [112 * math.ceil(t / 16) for t in (20, 1, 16, 17)]
    assert int((ids[1] == cfg.video_token_id).sum()) == per_video[0]
    assert int((ids[3] == cfg.video_token_id).sum()) == sum(per_video[1:])


@pytest.mark.parametrize("modality", ["image", "video", "audio"])
def test_placeholder_mismatch_raises(tiny, media, modality):
    model, processor = tiny
    name = {"image": "image", "video": "video", "audio": "audio"}[modality]
    batch = _inputs(processor, media, name)
    token_id = getattr(model.config, f"{modality}_token_id")
    ids = batch["input_ids"].clone()
    first = (ids == token_id).nonzero()[0]
    ids[first[0], first[1]] = processor.tokenizer.unk_token_id
    batch["input_ids"] = ids
    expected = int((batch["input_ids"] == token_id).sum()) + 1
    with pytest.raises(ValueError, match=rf"{modality}.*expected {expected}, found {expected - 1}"):
        with torch.no_grad():
            model(**batch)


def test_placeholders_without_media_raise(tiny, media):
    model, processor = tiny
    batch = _inputs(processor, media, "image")
    del batch["pixel_values"]
    with pytest.raises(ValueError, match=r"image.*no image input"):
        with torch.no_grad():
            model(**batch)


def test_processor_refuses_wrong_media_count(tiny, media):
    _, processor = tiny
    with pytest.raises(ValueError, match="2 <image> placeholders but 1 images"):
        processor(["<image><image>"], images=media["images"][:1])


@pytest.mark.parametrize("name", ["image+audio", "mixed"])
def test_generate_cached_equals_uncached(tiny, media, name):
    # With the cache the media go in at prefill only; without it every step re-embeds them.
    # Greedy decoding must agree token for token.
    model, processor = tiny
    texts, picks = BATCHES[name]
    prompts = [t.rsplit("ASSISTANT:", 1)[0] + "ASSISTANT:" for t in texts]
    given = {key: [media[key][i] for i in idx] for key, idx in picks.items()}
    batch = processor(prompts, **given, padding_side="left")
    kwargs = {"max_new_tokens": 6, "min_new_tokens": 6, "do_sample": False,
              "pad_token_id": processor.tokenizer.pad_token_id}
    cached = model.generate(**batch, **kwargs)
    uncached = model.generate(**batch, use_cache=False, **kwargs)
    prompt_len = batch["input_ids"].shape[1]
    assert cached.shape == (len(prompts), prompt_len + 6)
    assert torch.equal(cached[:, :prompt_len], batch["input_ids"])
    assert torch.equal(cached, uncached)
    texts_out = processor.batch_decode(cached[:, prompt_len:], skip_special_tokens=True)
    assert len(texts_out) == len(prompts) and all(isinstance(t, str) for t in texts_out)


@pytest.mark.parametrize("name", ["image+audio", "text"])
def test_generate_reuses_the_kv_cache(tiny, media, name):
    # A cache that is dropped between steps still decodes the right tokens (the test above passes),
    # only every step then re-runs the whole sequence. So watch what reaches the language model:
    # the prompt once, then one new token per step, each time with the cache of the step before.
    model, processor = tiny
    texts, picks = BATCHES[name]
    prompts = [t.rsplit("ASSISTANT:", 1)[0] + "ASSISTANT:" for t in texts]
    batch = processor(prompts, **{k: [media[k][i] for i in idx] for k, idx in picks.items()}, padding_side="left")
    calls = []

    def record(module, args, kwargs):
        cache = one_cache(kwargs.get("cache"), kwargs.get("past_key_values"))
        calls.append((kwargs["inputs_embeds"].shape[1], None if cache is None else cache.get_seq_length()))

    hook = model.model.language_model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        model.generate(**batch, max_new_tokens=5, min_new_tokens=5, do_sample=False,
                       pad_token_id=processor.tokenizer.pad_token_id)
    finally:
        hook.remove()
    prompt_len = batch["input_ids"].shape[1]
    assert calls[0] == (prompt_len, 0)
    assert calls[1:] == [(1, prompt_len + step) for step in range(4)]


def test_output_carries_the_cache_under_the_installed_name(tiny, media):
    # transformers >= 5.24 reads outputs["cache"], earlier releases outputs["past_key_values"].
    model, processor = tiny
    batch = processor(["USER: <image> feel? ASSISTANT:"], images=media["images"][:1])
    with torch.no_grad():
        out = model(**batch, use_cache=True)
        assert CACHE_NAME in out and out[CACHE_NAME].get_seq_length() == batch["input_ids"].shape[1]
        # Both names are accepted as input; one step on top of the prompt's cache.
        step = {"input_ids": batch["input_ids"][:, -1:], "use_cache": True}
        for name in ("cache", "past_key_values"):
            cache = model(**batch, use_cache=True)[CACHE_NAME]
            assert model(**step, **{name: cache})[CACHE_NAME].get_seq_length() == batch["input_ids"].shape[1] + 1
        with pytest.raises(ValueError, match="not both"):
            model(**step, cache=cache, past_key_values=cache)


def test_media_change_the_logits(tiny, media):
    # The answer depends on the image: a different image gives different logits after it.
    model, processor = tiny
    batch = processor(["USER: <image> feel? ASSISTANT:"], images=media["images"][:1])
    other = processor(["USER: <image> feel? ASSISTANT:"], images=media["images"][1:2])
    with torch.no_grad():
        a, b = model(**batch).logits[:, -1], model(**other).logits[:, -1]
    assert not torch.allclose(a, b)


def test_generate_never_emits_a_placeholder(tiny, media):
    # A model that prefers placeholder ids (all three pushed to the top of the logits) must still
    # decode: a generated <audio> fed back at the next step would claim audio that no input carries.
    model, processor = tiny
    cfg = model.config
    placeholders = [cfg.image_token_id, cfg.video_token_id, cfg.audio_token_id]

    def favour_placeholders(module, args, logits):
        logits = logits.clone()
        logits[..., placeholders] += 1e4
        return logits

    texts, picks = BATCHES["mixed"]
    prompts = [t.rsplit("ASSISTANT:", 1)[0] + "ASSISTANT:" for t in texts]
    batch = processor(prompts, **{k: [media[k][i] for i in idx] for k, idx in picks.items()})
    hook = model.lm_head.register_forward_hook(favour_placeholders)
    try:
        out = model.generate(**batch, max_new_tokens=4, min_new_tokens=4, do_sample=False,
                             pad_token_id=processor.tokenizer.pad_token_id, suppress_tokens=[5])
    finally:
        hook.remove()
    new = out[:, batch["input_ids"].shape[1]:]
    assert new.shape == (len(prompts), 4)
    assert not torch.isin(new, torch.tensor([*placeholders, 5])).any()

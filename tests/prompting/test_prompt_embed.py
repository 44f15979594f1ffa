import json

import pytest

from emollm.cli import main
from emollm.prompting.embed import VisionEmbedder, embed_exemplars
from emollm.prompting.select import ExemplarSelector
from emollm.prompting.store import Exemplar, load_store, save_store
from tests.prompting.helpers import make_record

transformers = pytest.importorskip("transformers")
np = pytest.importorskip("numpy")
Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A tiny CLIP vision tower with random weights and its image processor, saved like a checkpoint."""
    from emollm.model.processing_emollm import clip_image_processor

    path = tmp_path_factory.mktemp("clip")
    config = transformers.CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                           num_attention_heads=4, image_size=32, patch_size=8)
    transformers.set_seed(0)
    transformers.CLIPVisionModel(config).save_pretrained(path)
    clip_image_processor(32).save_pretrained(path)
    return path


def picture(path, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return str(path)


def test_nearest_finds_the_exemplar_with_the_same_picture(clip_dir, tmp_path):
    store = [Exemplar(id=k, task="emo-c", source="s", question="q", label="joy", rationale="r",
                      media=[{"type": "image", "path": picture(tmp_path / f"{k}.png", seed)}])
             for seed, k in enumerate("abc")]
    store.append(Exemplar(id="audio", task="emo-c", source="s", question="q", label="joy", rationale="r",
                          media=[{"type": "audio", "path": str(tmp_path / "x.wav")}]))
    embedder = VisionEmbedder.from_pretrained(clip_dir, base=tmp_path)
    done, skipped = embed_exemplars(store, embedder)
    assert (done, skipped) == (3, ["audio"])
    assert all(len(e.embedding) == 32 for e in store[:3])
    # The query shows b's picture, saved again under another (relative) name.
    picture(tmp_path / "query.png", 1)
    query = make_record("q", media=[{"type": "image", "path": "query.png"}])
    assert embedder(query).tolist() == pytest.approx(store[1].embedding, abs=1e-6)
    selector = ExemplarSelector(store[:3], "nearest-torch", embed=embedder)
    assert selector.select(query)[0].id == "b"
    with pytest.raises(ValueError, match="'audio' has no image or video to embed"):
        embedder(store[3])


def test_embed_command_fills_the_store(clip_dir, tmp_path, capsys):
    store = tmp_path / "store.jsonl"
    save_store([Exemplar(id=str(i), task="emo-c", source="s", question="q", label="joy", rationale="r",
                         media=[{"type": "image", "path": picture(tmp_path / f"{i}.png", i)}]) for i in range(2)],
               store)
    assert main(["prompts", "embed", str(store), "--vision", str(clip_dir)]) == 0
    assert "2 exemplars embedded, 0 without" in capsys.readouterr().out
    assert [len(json.loads(line)["embedding"]) for line in store.read_text().splitlines()] == [32, 32]
    assert main(["prompts", "embed", str(store), "--vision", str(tmp_path / "nothing")]) == 2
    assert "cannot load a CLIP vision tower" in capsys.readouterr().err
    assert len(load_store(store)) == 2

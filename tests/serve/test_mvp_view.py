"""The model's own MVP on one picture (no gradio needed), and the serve page's guards (gradio)."""

import pytest
from PIL import Image

from emollm import cli
from emollm.serve.mvp_view import display_square, mvp_view


@pytest.fixture(scope="module")
def tiny():
    from emollm.model import from_named

    return from_named("emollm-tiny", seed=0)


def test_mvp_view_draws_and_times_the_models_three_stages(tiny):
    model, processor = tiny
    view = mvp_view(model, processor, Image.new("RGB", (60, 40), "teal"), tau=0.5)
    assert [s["clusters"] for s in view.stages] == [64, 32, 16]  # emollm-tiny's 8×8 patches, the paper's stages
    assert all(s["cluster_ms"] > 0 and s["graph_ms"] > 0 for s in view.stages)
    assert set(view.backends) == {"dpc_cluster_merge", "gcn_adjacency"}
    assert set(view.backends.values()) <= {"cpu", "reference"}  # cpu where emollm._C is built
    assert view.picture.width >= 3 * 224 and view.picture.height >= 224
    table = view.table()
    assert table.count("\n| ") == 3 and "vision tower" in table  # a row per stage after the header


def test_display_square_is_the_centre_crop():
    image = Image.new("RGB", (300, 100), "black")
    image.paste((255, 0, 0), (100, 0, 200, 100))  # a red centre square between black sides
    square = display_square(image, size=32)
    assert square.shape == (32, 32, 3) and square[..., 0].min() > 0.99 and square[..., 1].max() < 0.01


def test_confined_upload_refuses_paths_outside_the_upload_folder(tmp_path):
    pytest.importorskip("gradio", reason="needs gradio: pip install 'emollm[serve]'")
    import gradio as gr

    from emollm.serve.app import confined_upload

    assert confined_upload(None) is None
    with pytest.raises(gr.Error, match="not an upload"):
        confined_upload("/etc/passwd")
    with pytest.raises(gr.Error, match="not an upload"):
        confined_upload(f"{gr.utils.get_upload_folder()}/../../etc/passwd")


@pytest.mark.parametrize(("args", "message"), [
    (["--port", "0"], "--port"), (["--max-upload-mb", "0"], "--max-upload-mb"), (["--view-tau", "2"], "--view-tau"),
])
def test_serve_refuses_bad_arguments_in_one_line(capsys, args, message):
    pytest.importorskip("gradio", reason="needs gradio: pip install 'emollm[serve]'")
    assert cli.main(["serve", "--model", "emollm-tiny", *args]) == 2
    assert message in capsys.readouterr().err

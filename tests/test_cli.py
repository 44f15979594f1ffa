"""``python -m emollm env`` and ``emollm demo``: they run, and say what they should."""

import subprocess
import sys

import numpy as np
import pytest
import torch

import emollm
from emollm import _extension, cli, ops
from emollm.ops import _backend

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_env_lists_every_backend_and_the_extension():
    out = subprocess.run([sys.executable, "-m", "emollm", "env"], capture_output=True, text=True, check=True).stdout
    backends = out.split("\nbackends:\n", 1)[1]
    assert "reference" in backends
    for name, (ok, _) in ops.backend_status().items():
        # One line per backend, and its state as backend_status reports it.
        line = next(line for line in backends.splitlines() if line.split()[:1] == [name])
        assert line.split()[1] == ("available" if ok else "missing")
    assert ("emollm._C compiled extension: loaded" in out) == (_extension.C is not None)


def _assert_picture(path):
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert path.stat().st_size > 20_000  # three photo panels, not an empty canvas
    with Image.open(path) as png:
        width, height = png.size
    assert width >= 3 * 224 and height >= 224  # three 224-px panels side by side


def test_demo_draws_each_image_and_times_every_cpu_backend(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("skimage")
    assert cli.main(["demo", "--out", str(tmp_path), "--images", "astronaut,camera", "--repeat", "1",
                     "--device", "cpu"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["astronaut.png", "camera.png"]
    for png in tmp_path.glob("*.png"):
        _assert_picture(png)
    table = (tmp_path / "timings.txt").read_text()
    assert "B=2 N=256" in table  # the two images' tokens, not random ones
    rows = {line.split()[0] for line in table.splitlines() if line.strip()}
    runnable = {b for b in ops.available_backends() if b not in ("triton", "cuda")}  # GPU-only ones
    # A row only for a backend that runs every op of a stage itself (faiss has knn_density only).
    full = {b for b in runnable if all(_backend.implements(b, op) for op in cli.PIPELINE_OPS)}
    assert {"reference", "cpu"} <= full <= rows
    assert "dpc_cluster_merge -> gcn_adjacency -> gcn_propagate" in table  # what the projector runs
    for partial in runnable - full:
        assert partial not in rows
        assert f"note: {partial} not timed: it implements" in table
    assert "all backends agree with reference" in table
    out = capsys.readouterr().out
    assert "camera.png" in out  # per-image progress
    assert "timing reference" in out  # per-backend progress


def test_demo_small_draws_one_image(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("skimage")
    assert cli.main(["demo", "--out", str(tmp_path), "--repeat", "1", "--small", "--device", "cpu"]) == 0
    assert len(list(tmp_path.glob("*.png"))) == 1
    assert (tmp_path / "timings.txt").is_file()


def test_demo_clusters_follow_regions():
    """Two flat halves, red and blue: no cluster of any stage straddles them, every stage's clusters
    are unions of the previous stage's, and tau = 1 joins every pair of clusters."""
    demo = pytest.importorskip("emollm.demo")
    rng = np.random.default_rng(0)
    image = np.zeros((1, 224, 224, 3), np.float32)
    image[0, :, :112] = (0.9, 0.1, 0.1)
    image[0, :, 112:] = (0.1, 0.1, 0.9)
    image += rng.uniform(0, 0.02, image.shape).astype(np.float32)  # no exact ties
    stages = demo.cluster_stages(demo.pixel_tokens(image), tau=1.0)[0]
    assert [s.num_clusters for s in stages] == [64, 32, 16]
    previous = np.arange(256).reshape(16, 16)
    for stage in stages:
        labels = stage.labels
        assert not set(labels[:, :8].ravel()) & set(labels[:, 8:].ravel())
        for old in np.unique(previous):
            assert len(np.unique(labels[previous == old])) == 1  # nested in the previous stage
        rows, cols = np.indices(labels.shape)
        for c in np.unique(labels):
            assert np.allclose(stage.centroids[c], (rows[labels == c].mean(), cols[labels == c].mean()))
        assert len(stage.edges) == stage.num_clusters * (stage.num_clusters - 1) // 2
        previous = labels


def test_demo_on_clip_features_of_a_local_checkpoint(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("skimage")
    transformers = pytest.importorskip("transformers")
    config = transformers.CLIPVisionConfig(image_size=224, patch_size=14, hidden_size=32, intermediate_size=64,
                                           num_hidden_layers=2, num_attention_heads=2)
    transformers.CLIPVisionModel(config).save_pretrained(tmp_path / "clip")
    out = tmp_path / "out"
    assert cli.main(["demo", "--out", str(out), "--vision", str(tmp_path / "clip"), "--small", "--repeat", "1",
                     "--device", "cpu"]) == 0
    _assert_picture(out / "astronaut.png")
    assert "B=1 N=256 D=32" in (out / "timings.txt").read_text()  # 16×16 patch tokens of width 32


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--vision", "no-such-clip-folder", "not a local CLIP checkpoint folder"),
    ("--images", "no-such-sample", "neither a sample"),
])
def test_demo_explains_bad_paths(tmp_path, capsys, flag, value, message):
    pytest.importorskip("matplotlib")
    pytest.importorskip("skimage")
    assert cli.main(["demo", "--out", str(tmp_path), flag, value, "--device", "cpu"]) == 2
    assert message in capsys.readouterr().err


def test_demo_without_the_extra_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)  # `import skimage` now fails
    monkeypatch.delitem(sys.modules, "emollm.demo", raising=False)
    monkeypatch.delattr(emollm, "demo", raising=False)
    assert cli.main(["demo", "--out", str(tmp_path), "--small"]) == 2
    assert "pip install 'emollm[demo]'" in capsys.readouterr().err


# Every optional package, by import name; with all of them gone the CLI must still start.
OPTIONAL_MODULES = ["PIL", "av", "scipy", "tqdm", "transformers", "peft", "accelerate", "yaml", "matplotlib",
                    "skimage", "faiss", "triton", "nvtx"]
_WITHOUT_EXTRAS = f"""
import sys
for name in {OPTIONAL_MODULES!r}:
    sys.modules[name] = None  # `import name` now raises ModuleNotFoundError
from emollm.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _cli_without_extras(*args, cwd):
    return subprocess.run([sys.executable, "-c", _WITHOUT_EXTRAS, *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.mark.parametrize("args", [["env"], ["--help"], ["data", "--help"], ["data", "stats", "--help"],
                                  ["train", "--help"], ["eval", "--help"], ["prompts", "show", "--help"]])
def test_cli_starts_with_the_base_dependencies_only(tmp_path, args):
    proc = _cli_without_extras(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("args", "extra"), [
    (["data", "synth", "--out", "synth"], "data"),
    (["train", "--model", "emollm-tiny", "--data", "train.jsonl", "--output", "run"], "train"),
    (["demo", "--small"], "demo"),
])
def test_a_missing_extra_is_named_in_one_line(tmp_path, args, extra):
    proc = _cli_without_extras(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"pip install 'emollm[{extra}]'" in proc.stderr


def test_env_reports_the_versions_errors_depend_on():
    out = subprocess.run([sys.executable, "-m", "emollm", "env"], capture_output=True, text=True, check=True).stdout
    versions = out.split("\nbackends:\n", 1)[0]
    for package, distributions in cli.OPTIONAL_PACKAGES.items():
        line = next(line for line in versions.splitlines() if line.split()[:1] == [package])
        assert line.split()[1] == (cli.installed_version(*distributions) or "not")


@pytest.mark.parametrize("args", [["--repeat", "0"], ["--tau", "1.5"]])
def test_demo_rejects_bad_numbers(tmp_path, args):
    with pytest.raises(SystemExit):
        cli.main(["demo", "--out", str(tmp_path), *args])


def test_demo_reports_the_first_stage_that_differs():
    same = [torch.zeros(2, 8, dtype=torch.long), torch.ones(2, 4, dtype=torch.long)]
    other = [same[0].clone(), same[1].clone()]
    other[1][0, :3] = 2
    assert cli._agreement(same, [t.clone() for t in same]) == "agree"
    assert cli._agreement(other, same) == "DIFFER: stage 2, 3 of 8 tokens"


def test_ctrl_c_ends_any_command_in_one_line_with_exit_code_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_env", interrupted)
    assert cli.main(["env"]) == 130
    assert capsys.readouterr().err == "\nemollm env: interrupted\n"

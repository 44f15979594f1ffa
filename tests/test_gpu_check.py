"""make gpu-check without a GPU: the script's whole flow as a dry run (tiny shapes on CPU), its step
runner's time limits, and the evaluation of the design's GPU targets on made-up groups."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402
import gpu_targets  # noqa: E402


def _row(ms: float, **info) -> dict:
    return {"median_ms": ms * 3, "rounds": 5, "extra_info": {"do_bench_median_ms": ms, **info}}


def _group(op, shape, dtype, **times) -> dict:
    return {provider: _row(t, op=op, shape=list(shape), dtype=dtype) for provider, t in times.items()}


def test_targets_met_missed_and_not_run():
    groups = {
        "a": _group("dpc_cluster", gpu_targets.IMAGE, "bfloat16", **{"chat-univi": 50.0, "reference": 80.0,
                                                                     "triton": 2.0, "cuda": 8.0, "bmm": 1.0}),
        "b": _group("knn_density", gpu_targets.IMAGE, "bfloat16", triton=2.0, cuda=5.0, bmm=1.0),
        "c": _group("dpc_cluster", gpu_targets.EVENT, "bfloat16", triton=300.0, bmm=10.0),
    }
    groups["c"]["bmm"]["extra_info"]["gemm_slices"] = 8  # one GEMM pass is 8 slices: 80 ms
    got = {t.name: gpu_targets.evaluate(t, groups, "triton") for t in gpu_targets.TARGETS}
    assert got["dpc_cluster_vs_reference"]["status"] == "met"
    assert got["dpc_cluster_vs_reference"]["value"] == pytest.approx(25.0)
    assert got["dpc_cluster_vs_reference"]["vs_reference"] == pytest.approx(40.0)
    assert got["density_gemm_rate"]["status"] == "met"  # 1 / 2 = 50% of the GEMM's rate
    assert got["video_event"]["value"] == pytest.approx(300 / 80)
    assert got["video_event"]["status"] == "met"
    assert got["mvp_vs_clip"]["status"].startswith("not run")
    slow = gpu_targets.evaluate(gpu_targets.TARGETS[1], {"b": _group("knn_density", gpu_targets.IMAGE, "bfloat16",
                                                                     triton=5.0, cuda=4.0, bmm=1.0)}, "triton")
    assert slow["status"] == "missed by 2.00×" and slow["best"] == "cuda"


def test_questions_verdicts():
    groups = {"a": _group("knn_density", gpu_targets.IMAGE, "bfloat16", triton=1.0, cuda=3.0),
              "b": _group("knn_density", gpu_targets.IMAGE, "float32", triton=4.0, cuda=3.0,
                          **{gpu_targets.SPLIT: 2.0}),
              "c": _group("lm_attention", (1, 2048, 4096), "bfloat16", sdpa=10.0, eager=25.0)}
    q = gpu_targets.questions(groups)
    assert q["auto_order"]["verdict"].startswith("triton faster in 1 of 2")
    assert q["f32_split"]["verdict"].startswith("bf16x3 faster")
    assert "2.50×" in q["attention"]["verdict"]
    assert gpu_targets.questions({})["auto_order"]["verdict"].startswith("not measured")


def test_a_step_past_its_limit_is_stopped_and_recorded(tmp_path):
    start = time.monotonic()
    step, output = gpu_check.run_step("sleep", [sys.executable, "-c", "import time; print('started', flush=True); "
                                                "time.sleep(60)"], env=None, limit=2, log=tmp_path / "sleep.log")
    assert step.status == "timeout" and "after 2 s" in step.detail
    assert time.monotonic() - start < 30 and "started" in output
    step, _ = gpu_check.run_step("false", [sys.executable, "-c", "raise SystemExit(3)"], env=None, limit=10,
                                 log=tmp_path / "false.log")
    assert step.status == "failed" and step.detail == "exit 3"


@pytest.mark.slow
def test_dry_run(tmp_path):
    """The script end to end on CPU: every step runs, the JSON holds the targets and the groups,
    and the summary table comes last (the time limits: the test above)."""
    cmd = [sys.executable, str(ROOT / "benchmarks/gpu_check.py"), "--dry-run", "--out-dir", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results = list(tmp_path.glob("*.json"))
    assert len(results) == 1
    result = json.loads(results[0].read_text())
    assert result["dry_run"] and [s["name"] for s in result["steps"]] == ["facts", "build", "tests", "bench"]
    assert all(s["status"] == "ok" for s in result["steps"]), result["steps"]
    assert {t["target"] for t in result["targets"]} == {t.name for t in gpu_targets.TARGETS}
    assert all(t["status"] == "met" or t["status"].startswith("missed by") for t in result["targets"]), \
        result["targets"]
    assert {"auto_order", "f32_split", "attention"} <= set(result["questions"])
    assert result["sources_sha256"] and result["versions"]["torch"]
    tail = out.stdout.strip().splitlines()
    assert tail[-1].startswith("=====") and any("GPU targets" in line for line in tail[-20:])

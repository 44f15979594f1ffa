"""The GPU targets of docs/design.md#performance-targets, evaluated on make gpu-check's benchmark
groups, plus the three questions the check exists to answer: the automatic order on CUDA, float32
on tensor cores, and sdpa against eager attention.

Pure functions over ``report.summarize``'s groups (``{group: {provider: row}}``); a row is found
by what its benchmark recorded in ``extra_info`` (op, nominal shape, dtype), so a dry run's tiny
stand-ins are evaluated by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGE = (64, 576, 1024)
EVENT = (1, 131072, 1024)
MVP = (64, 256, 1024)
SPLIT = "triton+bf16x3"


@dataclass(frozen=True)
class Target:
    """One row of the design's GPU targets.

    Attributes:
        name: short key in the results JSON.
        text: the target as docs/design.md states it.
        op, shape, dtype: the benchmark group it is read from.
        kind: ``"speedup"`` (baseline time / ours >= threshold), ``"gemm_rate"`` (GEMM time /
            ours >= threshold: a share of the GEMM's rate, same FLOPs), ``"gemm_passes"`` (ours /
            one GEMM pass <= threshold), ``"fraction"`` (ours / baseline time <= threshold).
        baseline: the provider compared against (``bmm`` for the GEMM kinds).
    """

    name: str
    text: str
    op: str
    shape: tuple[int, ...]
    dtype: str
    kind: str
    threshold: float
    baseline: str = "bmm"


TARGETS = (
    Target("dpc_cluster_vs_reference", "dpc_cluster B=64 N=576 D=1024 bf16: >= 10x faster than reference (f32 cdist)",
           "dpc_cluster", IMAGE, "bfloat16", "speedup", 10.0, "chat-univi"),
    Target("density_gemm_rate", "knn_density (the density pass) B=64 N=576 D=1024 bf16: >= 40% of a bf16 GEMM's rate",
           "knn_density", IMAGE, "bfloat16", "gemm_rate", 0.40),
    Target("video_event", "dpc_cluster, one video event N=131072 D=1024 bf16: <= 4x one bf16 GEMM pass",
           "dpc_cluster", EVENT, "bfloat16", "gemm_passes", 4.0),
    Target("mvp_vs_clip", "MVP forward B=64 bf16: <= 5% of the CLIP ViT-L/14 forward time",
           "mvp_vs_clip", MVP, "bfloat16", "fraction", 0.05, "clip"),
)


def ms(row: dict) -> float:
    """A row's time: the CUDA-event median of do_bench where recorded, else pytest-benchmark's."""
    return row["extra_info"].get("do_bench_median_ms") or row["median_ms"]


def find(groups: dict, op: str, shape: tuple[int, ...], dtype: str) -> dict | None:
    """The rows of the group that benchmarked ``op`` at nominal ``shape`` in ``dtype``."""
    for rows in groups.values():
        info = next(iter(rows.values()))["extra_info"]
        if info.get("op") == op and tuple(info.get("shape", ())) == tuple(shape) and info.get("dtype") == dtype:
            return rows
    return None


def evaluate(target: Target, groups: dict, auto: str) -> dict:
    """``{"target", "status", "value", "provider", ...}`` for the automatic backend ``auto`` (and the
    best backend of the group, when another is faster). Status: ``met``, ``missed by N×`` or
    ``not run (...)``."""
    out = {"target": target.name, "text": target.text, "provider": auto, "threshold": target.threshold}
    rows = find(groups, target.op, target.shape, target.dtype)
    if rows is None:
        return {**out, "status": "not run (no benchmark group)"}
    base = rows.get(target.baseline)
    if base is None:
        return {**out, "status": f"not run (no {target.baseline} row)"}
    ours = {p: r for p, r in rows.items() if p not in (target.baseline, "bmm", "chat-univi", "reference", "clip")}
    if auto not in ours:
        return {**out, "status": f"not run (no {auto} row)"}

    def value(row: dict) -> float:
        base_ms = ms(base) * (base["extra_info"].get("gemm_slices") or 1)  # one GEMM pass in row slices
        if target.kind in ("speedup", "gemm_rate"):
            return base_ms / ms(row)
        return ms(row) / base_ms

    higher_is_better = target.kind in ("speedup", "gemm_rate")
    measured = value(ours[auto])
    met = measured >= target.threshold if higher_is_better else measured <= target.threshold
    miss = target.threshold / measured if higher_is_better else measured / target.threshold
    out.update(value=measured, ms=ms(ours[auto]), baseline_ms=ms(base),
               status="met" if met else f"missed by {miss:.2f}×")
    if target.kind == "speedup" and "reference" in rows:
        out["vs_reference"] = ms(rows["reference"]) / ms(ours[auto])
    best = max(ours, key=lambda p: value(ours[p])) if higher_is_better else min(ours, key=lambda p: value(ours[p]))
    if best != auto:
        out.update(best=best, best_value=value(ours[best]))
    return out


def compare(groups: dict, first: str, second: str, dtype: str | None = None) -> list[dict]:
    """Every group holding both providers (of ``dtype``, if given): ``second``'s time over ``first``'s."""
    found = []
    for name, rows in groups.items():
        if first in rows and second in rows:
            info = rows[first]["extra_info"]
            if dtype is None or info.get("dtype") == dtype:
                found.append({"group": name, "op": info.get("op", name), first: ms(rows[first]),
                              second: ms(rows[second]), "ratio": ms(rows[second]) / ms(rows[first])})
    return found


def questions(groups: dict) -> dict:
    """The automatic order (triton against cuda), float32 on tensor cores (the bf16x3 split against
    ieee), and sdpa against eager attention: each a list of per-group ratios and a verdict."""
    order = compare(groups, "triton", "cuda")
    faster = sum(c["ratio"] > 1 for c in order)
    split = compare(groups, "triton", SPLIT, "float32")
    attention = [c for c in compare(groups, "sdpa", "eager")]
    return {
        "auto_order": {"groups": order, "verdict": (
            "not measured (no group with both triton and cuda)" if not order else
            f"triton faster in {faster} of {len(order)} groups: keep triton first" if faster * 2 >= len(order) else
            f"cuda faster in {len(order) - faster} of {len(order)} groups: put cuda first (auto_rank)")},
        "f32_split": {"groups": split, "verdict": (
            "not measured" if not split else
            "bf16x3 faster than ieee in every float32 group: a candidate default (after the gpu tests pass)"
            if all(c["ratio"] < 1 for c in split) else "ieee is as fast or faster in some group: keep ieee")},
        "attention": {"groups": attention, "verdict": (
            "not measured" if not attention else
            ", ".join(f"sdpa {c['ratio']:.2f}× faster than eager ({c['op']})" for c in attention))},
    }

"""``dpc_cluster`` against ``reference`` and the ``bmm`` floor (CPU targets: docs/design.md#performance-targets).

Targets: B=64 N=256 D=1024 ≥ 4× faster than reference and ≤ 1.5× bmm; B=1 N=16384 D=1024
≥ 2.5× faster than reference with ≤ 64 MB extra memory (``extra_info["extra_peak_mb"]``).
"""

import chat_univi
import pytest
import torch
from conftest import (
    DEVICE,
    DRY_RUN,
    PEAK_MEMORY,
    TRITON_SPLIT,
    bmm_floor,
    case_info,
    extra_peak_mb,
    gemm_floor,
    gpu_only,
    group_name,
    on_provider,
    providers,
    run,
    sized,
    tokens,
)

from emollm import ops

NUM_CLUSTERS, K = 64, 5

# The big shape takes ~16 s per reference call on 2 cores, so it gets 3 fixed rounds; the
# memory it needs (N×N matrices in reference) is the other half of what it measures.
SHAPES = [
    pytest.param((64, 256, 1024), None, id="B64-N256-D1024"),
    pytest.param((1, 16384, 1024), 3, id="B1-N16384-D1024", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("provider", providers("dpc_cluster", floor=True))
@pytest.mark.parametrize(("shape", "rounds"), SHAPES)
def test_dpc_cluster(benchmark, provider, shape, rounds):
    b, n, d = shape
    x = tokens(shape)
    benchmark.group = group_name("dpc_cluster", B=b, N=n, D=d)
    if provider == "bmm":
        fn = bmm_floor(x)
    else:
        fn = on_provider(provider, lambda: ops.dpc_cluster(x, NUM_CLUSTERS, K))
    run(benchmark, provider, fn, rounds=rounds, num_clusters=NUM_CLUSTERS, k=K)
    if n >= 16384:
        benchmark.extra_info["extra_peak_mb"] = extra_peak_mb(provider, shape, NUM_CLUSTERS, K)


# GPU targets (docs/design.md#performance-targets): B=64 N=576 D=1024 bf16 >= 10x faster than
# reference; N=131072 completes in <= 4x one bf16 GEMM pass (x xᵀ, timed in row slices:
# ``gemm_slices`` calls make one pass). make gpu-check runs the image shape in both dtypes and
# the video event in bf16.
IMAGE, EVENT = (64, 576, 1024), (1, 131072, 1024)
CASES = [(shape, dtype) for shape in (IMAGE, (1, 4096, 1024), (1, 16384, 1024), EVENT)
         for dtype in (torch.float32, torch.bfloat16)]


@pytest.mark.parametrize("provider", providers("dpc_cluster", floor=True, split=True))
@pytest.mark.parametrize("case", gpu_only(*CASES, check=[(IMAGE, torch.float32), (IMAGE, torch.bfloat16),
                                                          (EVENT, torch.bfloat16)]))
def test_dpc_cluster_gpu(benchmark, provider, case):
    shape, dtype = case
    b, n, d = sized(shape)
    if provider in ("reference", chat_univi.NAME) and shape[1] > 16384:
        pytest.skip(f"{provider} needs N×N float32 matrices (68 GB at N=131072)")
    if provider == TRITON_SPLIT and dtype != torch.float32:
        pytest.skip("the bf16x3 split is for float32 tokens")
    x = tokens((b, n, d), dtype=dtype)
    benchmark.group = group_name("dpc_cluster", dtype, B=b, N=n, D=d)
    times = 1
    if provider == "bmm":
        fn, times = gemm_floor(x, max_rows=16384 if not DRY_RUN else 16)
    else:
        fn = on_provider(provider, lambda: ops.dpc_cluster(x, min(NUM_CLUSTERS, n // 2), K))  # n // 2: dry runs
    run(benchmark, provider, fn, rounds=3 if shape[1] >= 16384 else None, num_clusters=NUM_CLUSTERS, k=K,
        gemm_slices=times, **case_info("dpc_cluster", shape, dtype))
    if n >= 16384 and provider != "bmm" and DEVICE.type == "cuda" and PEAK_MEMORY:
        benchmark.extra_info["extra_peak_mb"] = extra_peak_mb(provider, (b, n, d), NUM_CLUSTERS, K)

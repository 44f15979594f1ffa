"""``knn_density`` (the pass that dominates ``dpc_cluster``) against ``reference`` and ``bmm``."""

import pytest
import torch
from conftest import (
    TRITON_SPLIT,
    bmm_floor,
    case_info,
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

K = 5


@pytest.mark.parametrize("provider", providers("knn_density", floor=True))
@pytest.mark.parametrize("shape", [(64, 256, 1024)], ids=["B64-N256-D1024"])
def test_knn_density(benchmark, provider, shape):
    b, n, d = shape
    x = tokens(shape)
    benchmark.group = group_name("knn_density", B=b, N=n, D=d)
    fn = bmm_floor(x) if provider == "bmm" else on_provider(provider, lambda: ops.knn_density(x, K))
    run(benchmark, provider, fn, k=K)


# The GPU target shapes: images (B=64, N=576) and video events (B=1, N up to 131072), f32 and bf16, on a GPU.
# The density pass against the GEMM of the same shape (target: >= 40% of its rate in bf16).
# make gpu-check runs the image shape in both dtypes (float32 also with the bf16x3 split).
IMAGE = (64, 576, 1024)
CASES = [(shape, dtype) for shape in (IMAGE, (1, 4096, 1024), (1, 16384, 1024), (1, 131072, 1024))
         for dtype in (torch.float32, torch.bfloat16)]


@pytest.mark.parametrize("provider", providers("knn_density", floor=True, split=True))
@pytest.mark.parametrize("case", gpu_only(*CASES, check=[(IMAGE, torch.float32), (IMAGE, torch.bfloat16)]))
def test_knn_density_gpu(benchmark, provider, case):
    shape, dtype = case
    b, n, d = sized(shape)
    if provider in ("reference", "chat-univi") and shape[1] > 16384:
        pytest.skip(f"{provider} needs N×N float32 matrices (68 GB at N=131072)")
    if provider == TRITON_SPLIT and dtype != torch.float32:
        pytest.skip("the bf16x3 split is for float32 tokens")
    x = tokens((b, n, d), dtype=dtype)
    benchmark.group = group_name("knn_density", dtype, B=b, N=n, D=d)
    times = 1
    if provider == "bmm":
        fn, times = gemm_floor(x)
    else:
        fn = on_provider(provider, lambda: ops.knn_density(x, K))
    run(benchmark, provider, fn, rounds=3 if shape[1] >= 16384 else None, k=K, gemm_slices=times,
        **case_info("knn_density", shape, dtype))

"""``knn_density`` (the pass that dominates ``dpc_cluster``) against ``reference`` and ``bmm``."""

import pytest
import torch
from conftest import bmm_floor, gemm_floor, gpu_only, group_name, on_provider, providers, run, tokens

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
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("provider", providers("knn_density", floor=True))
@pytest.mark.parametrize("shape", gpu_only((64, 576, 1024), (1, 4096, 1024), (1, 16384, 1024), (1, 131072, 1024)))
def test_knn_density_gpu(benchmark, provider, shape, dtype):
    b, n, d = shape
    if provider == "reference" and n > 16384:
        pytest.skip("reference needs N×N float32 matrices (68 GB at N=131072)")
    x = tokens(shape, dtype=dtype)
    benchmark.group = group_name("knn_density", dtype, B=b, N=n, D=d)
    times = 1
    if provider == "bmm":
        fn, times = gemm_floor(x)
    else:
        fn = on_provider(provider, lambda: ops.knn_density(x, K))
    run(benchmark, provider, fn, rounds=3 if n >= 16384 else None, k=K, gemm_slices=times)

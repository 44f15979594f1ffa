"""``cluster_merge``: N tokens averaged into C clusters, the shape of a 24×24-patch image stage."""

import pytest
import torch
from conftest import DEVICE, case_info, gpu_only, group_name, on_provider, providers, run, sized, tokens

from emollm import ops


@pytest.mark.parametrize("provider", providers("cluster_merge"))
@pytest.mark.parametrize("shape", [(64, 576, 1024, 64)], ids=["B64-N576-D1024-C64"])
def test_cluster_merge(benchmark, provider, shape):
    b, n, d, c = shape
    x = tokens((b, n, d))
    g = torch.Generator().manual_seed(1)
    # Uniform random clusters: every cluster non-empty, sizes like a real stage's (~N/C each).
    assign = torch.randint(0, c, (b, n), generator=g).to(DEVICE)
    benchmark.group = group_name("cluster_merge", B=b, N=n, D=d, C=c)
    run(benchmark, provider, on_provider(provider, lambda: ops.cluster_merge(x, assign, c)))


@pytest.mark.parametrize("provider", providers("cluster_merge"))
@pytest.mark.parametrize("case", gpu_only(((64, 576, 1024, 64), torch.bfloat16), check=[((64, 576, 1024, 64),
                                                                                        torch.bfloat16)]))
def test_cluster_merge_gpu(benchmark, provider, case):
    """The image shape of the GPU targets in bf16 (make gpu-check)."""
    shape, dtype = case
    b, n, d, c = sized(shape)
    x = tokens((b, n, d), dtype=dtype)
    assign = torch.randint(0, c, (b, n), generator=torch.Generator().manual_seed(1)).to(DEVICE)
    benchmark.group = group_name("cluster_merge", dtype, B=b, N=n, D=d, C=c)
    fn = on_provider(provider, lambda: ops.cluster_merge(x, assign, c))
    run(benchmark, provider, fn, **case_info("cluster_merge", shape, dtype))

"""``dpc_delta`` (distance to the nearest denser token) on a GPU: the image shape of the GPU targets,
B=64 N=576 D=1024 bf16, every backend against ``reference``, the peer baseline and one ``bmm`` of the
shape (the scan's N²·D multiply-adds). The densities are the same for every provider
(``reference``'s, computed once)."""

import pytest
import torch
from conftest import bmm_floor, case_info, gpu_only, group_name, on_provider, providers, run, sized, tokens

from emollm import ops

IMAGE = (64, 576, 1024)


@pytest.mark.parametrize("provider", providers("dpc_delta", floor=True))
@pytest.mark.parametrize("case", gpu_only((IMAGE, torch.bfloat16), check=[(IMAGE, torch.bfloat16)]))
def test_dpc_delta_gpu(benchmark, provider, case):
    shape, dtype = case
    b, n, d = sized(shape)
    x = tokens((b, n, d), dtype=dtype)
    with ops.use_backend("reference"):
        rho = ops.knn_density(x, 5)
    benchmark.group = group_name("dpc_delta", dtype, B=b, N=n, D=d)
    fn = bmm_floor(x) if provider == "bmm" else on_provider(provider, lambda: ops.dpc_delta(x, rho))
    run(benchmark, provider, fn, **case_info("dpc_delta", shape, dtype))

"""``dpc_cluster_merge`` (one MVP stage) against ``reference`` and against the two separate
ops on the same backend (``<backend>+separate``), which shows what the fusion saves."""

import pytest
import torch
from conftest import DEVICE, bmm_floor, case_info, gpu_only, group_name, on_provider, providers, run, sized, tokens

from emollm import ops

NUM_CLUSTERS, K = 64, 5


def _separate(x):
    _, assign = ops.dpc_cluster(x, NUM_CLUSTERS, K)
    return ops.cluster_merge(x, assign, NUM_CLUSTERS)


@pytest.mark.parametrize("separate", [False, True], ids=["fused", "separate"])
@pytest.mark.parametrize("provider", providers("dpc_cluster_merge"))
def test_dpc_cluster_merge(benchmark, provider, separate):
    if separate and provider == "reference":
        pytest.skip("the reference is the two separate ops already")
    b, n, d = 64, 256, 1024
    x = tokens((b, n, d))
    benchmark.group = group_name("dpc_cluster_merge", B=b, N=n, D=d)
    fn = _separate if separate else (lambda x: ops.dpc_cluster_merge(x, NUM_CLUSTERS, K))
    run(benchmark, f"{provider}+separate" if separate else provider, on_provider(provider, lambda: fn(x)),
        num_clusters=NUM_CLUSTERS, k=K)


# The CPU targets (docs/cpu-profile.md): one MVP stage, and one video event of N tokens, each beside
# Chat-UniVi's arithmetic and one bmm of the same shape, in one run. The reference (float64 cdist,
# seconds per call at N=4096) is the spec, not a speed baseline: it sits these out.
CPU_STAGES = [(64, 256, 1024), (1, 4096, 1024), (1, 8192, 1024)]


@pytest.mark.parametrize("provider", providers("dpc_cluster_merge", floor=True))
@pytest.mark.parametrize("shape", CPU_STAGES, ids=lambda s: "B{}-N{}-D{}".format(*s))
def test_dpc_cluster_merge_cpu_stage(benchmark, provider, shape):
    if DEVICE.type != "cpu":
        pytest.skip("the CPU targets' group")
    if provider == "reference":
        pytest.skip("the reference is the spec, not a speed baseline (float64 cdist: seconds per call)")
    b, n, d = shape
    x = tokens(shape)
    benchmark.group = group_name("dpc_cluster_merge stage", B=b, N=n, D=d)
    fn = bmm_floor(x) if provider == "bmm" else on_provider(provider, lambda: ops.dpc_cluster_merge(x, NUM_CLUSTERS, K))
    run(benchmark, provider, fn, num_clusters=NUM_CLUSTERS, k=K)


# One MVP stage at the image shape of the GPU targets (make gpu-check).
IMAGE = (64, 576, 1024)


@pytest.mark.parametrize("provider", providers("dpc_cluster_merge", floor=True))
@pytest.mark.parametrize("case", gpu_only((IMAGE, torch.bfloat16), check=[(IMAGE, torch.bfloat16)]))
def test_dpc_cluster_merge_gpu(benchmark, provider, case):
    shape, dtype = case
    b, n, d = sized(shape)
    x = tokens((b, n, d), dtype=dtype)
    benchmark.group = group_name("dpc_cluster_merge", dtype, B=b, N=n, D=d)
    fn = bmm_floor(x) if provider == "bmm" else \
        on_provider(provider, lambda: ops.dpc_cluster_merge(x, min(NUM_CLUSTERS, n // 2), K))
    run(benchmark, provider, fn,
        num_clusters=NUM_CLUSTERS, k=K, **case_info("dpc_cluster_merge", shape, dtype))

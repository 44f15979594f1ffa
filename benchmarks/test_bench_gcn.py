"""``gcn_adjacency`` and ``gcn_propagate`` on a stage-1 sized graph (C=64 nodes of width F)."""

import pytest
import torch
from conftest import DEVICE, case_info, gpu_only, group_name, on_provider, providers, run, sized

from emollm import ops

SHAPE = (64, 64, 1024)  # B, C, F
TAU = 0.1


def nodes(b: int, c: int, f: int, groups: int = 8, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Nodes in ``groups`` tight groups: Gaussian nodes would all sit at nearly the same distance
    (d/max d ≈ 0.9-1) and give an empty graph at tau=0.1; here each node has ~c/groups neighbours."""
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(b, groups, f, generator=g)
    z = centers[:, torch.arange(c) % groups] + 0.03 * torch.randn(b, c, f, generator=g)
    return z.to(DEVICE, dtype)


def _mean_degree(graph) -> float:
    return (graph.dense() > 0).sum(-1).float().mean().item()


@pytest.mark.parametrize("provider", providers("gcn_adjacency"))
def test_gcn_adjacency(benchmark, provider):
    b, c, f = SHAPE
    z = nodes(b, c, f)
    benchmark.group = group_name("gcn_adjacency", B=b, C=c, F=f)
    fn = on_provider(provider, lambda: ops.gcn_adjacency(z, TAU))
    run(benchmark, provider, fn, tau=TAU, mean_degree=_mean_degree(fn()))


@pytest.mark.parametrize("provider", providers("gcn_propagate"))
def test_gcn_propagate(benchmark, provider):
    b, c, f = SHAPE
    z = nodes(b, c, f)
    with ops.use_backend("reference"):  # the same graph for every provider
        graph = ops.gcn_adjacency(z, TAU)
    benchmark.group = group_name("gcn_propagate", B=b, C=c, F=f)
    run(benchmark, provider, on_provider(provider, lambda: ops.gcn_propagate(graph, z)),
        tau=TAU, mean_degree=_mean_degree(graph))


# The stage-1 graph in bf16 on a GPU (make gpu-check).
GPU_CASE = (SHAPE, torch.bfloat16)


@pytest.mark.parametrize("provider", providers("gcn_adjacency"))
@pytest.mark.parametrize("case", gpu_only(GPU_CASE, check=[GPU_CASE]))
def test_gcn_adjacency_gpu(benchmark, provider, case):
    shape, dtype = case
    b, c, f = sized(shape)
    z = nodes(b, c, f, dtype=dtype)
    benchmark.group = group_name("gcn_adjacency", dtype, B=b, C=c, F=f)
    fn = on_provider(provider, lambda: ops.gcn_adjacency(z, TAU))
    run(benchmark, provider, fn, tau=TAU, **case_info("gcn_adjacency", shape, dtype))


@pytest.mark.parametrize("provider", providers("gcn_propagate"))
@pytest.mark.parametrize("case", gpu_only(GPU_CASE, check=[GPU_CASE]))
def test_gcn_propagate_gpu(benchmark, provider, case):
    shape, dtype = case
    b, c, f = sized(shape)
    z = nodes(b, c, f, dtype=dtype)
    with ops.use_backend("reference"):
        graph = ops.gcn_adjacency(z, TAU)
    benchmark.group = group_name("gcn_propagate", dtype, B=b, C=c, F=f)
    fn = on_provider(provider, lambda: ops.gcn_propagate(graph, z))
    run(benchmark, provider, fn, tau=TAU, **case_info("gcn_propagate", shape, dtype))

"""``dpc_cluster`` against ``reference`` and the ``bmm`` floor (DESIGN.md §8 CPU targets).

Targets: B=64 N=256 D=1024 ≥ 4× faster than reference and ≤ 1.5× bmm; B=1 N=16384 D=1024
≥ 2.5× faster than reference with ≤ 64 MB extra memory (``extra_info["extra_peak_mb"]``).
"""

import pytest
from conftest import bmm_floor, extra_peak_mb, group_name, on_provider, providers, run, tokens

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

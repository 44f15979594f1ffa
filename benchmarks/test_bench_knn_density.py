"""``knn_density`` (the pass that dominates ``dpc_cluster``) against ``reference`` and ``bmm``."""

import pytest
from conftest import bmm_floor, group_name, on_provider, providers, run, tokens

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

"""MVP projector forward per backend: B=64 images of 256 tokens, D=1024 (CLIP ViT-L/14 width),
out_dim=4096 (Vicuna-7B's hidden size). ``cluster`` rows time the three DPC-KNN stages alone;
``forward`` rows the whole projector (content Linear + three 2-layer GCNs, which dominate on CPU)."""

import pytest
import torch
from conftest import DEVICE, group_name, on_provider, providers, run, tokens

from emollm.projector import MVPProjector

B, N, D, OUT = 64, 256, 1024, 4096


@pytest.fixture(scope="module")
def projector():
    torch.manual_seed(0)
    return MVPProjector(D, OUT).to(DEVICE).eval()


@pytest.mark.parametrize("part", ["cluster", "forward"])
@pytest.mark.parametrize("provider", providers("dpc_cluster_merge"))
def test_mvp(benchmark, projector, provider, part):
    x = tokens((B, N, D))
    benchmark.group = group_name(f"mvp_{part}", B=B, N=N, D=D, out=OUT)
    fn = projector.cluster if part == "cluster" else projector

    def call():
        with torch.no_grad():
            return fn(x)

    run(benchmark, provider, on_provider(provider, call), rounds=3 if part == "forward" else None)

"""The interpreter at the GPU's own launch configurations (kernels/_launch.py, ``gpu_family``):
the block shapes, masks and loop bounds that sm_80 and sm_90 run, on small shapes whose N and D
fit no block evenly, against the float64 oracle. What is left for a GPU is its arithmetic (the
interpreter multiplies bf16 operands as float32, where bf16 products are exact anyway)."""

import pytest
import torch

from emollm import ops
from emollm.kernels import _launch
from emollm.ops.reference import unpack_bits
from tests import oracle
from tests.kernels.helpers import needs_triton, triton
from tests.ops.helpers import close, close_dist, random_mask, tokens, with_duplicates

pytestmark = [pytest.mark.triton, needs_triton]

# N = 2 row tiles of 64 and a partial one (and 9 exact-nearest tiles of 16); D = two 32-wide
# chunks and a partial one (one 64-wide and a partial one).
B, N, D = 2, 131, 67
MODES = [pytest.param(torch.bfloat16, "ieee", id="bf16"), pytest.param(torch.float32, "ieee", id="f32-ieee"),
         pytest.param(torch.float32, "bf16x3", id="f32-bf16x3")]


@pytest.fixture(params=_launch.FAMILIES)
def family(request):
    with _launch.gpu_family(request.param):
        yield request.param


def _inputs(dtype, seed=0, dup=False):
    x = tokens(B, N, D, seed=seed)
    x = with_duplicates(x, seed) if dup else x
    return x.to(dtype)


def test_the_launchers_read_the_table(family):
    """Under gpu_family the interpreter's launches are the GPU's (the exact-nearest tile included),
    and outside it the interpreter's own entries."""
    x = torch.zeros(1, 4, 4, dtype=torch.bfloat16)
    assert _launch.launch("knn_scan", x) == _launch.TABLE["knn_scan"]["tc"][family]
    assert _launch.launch("exact_nearest", x)["BLOCK_R"] == 16
    with _launch.f32_dot_mode("bf16x3"):
        assert _launch.launch("denser_scan", x.float()) == _launch.TABLE["denser_scan"]["split"][family]


def test_the_interpreter_keeps_its_own_steps_unless_asked():
    x = torch.zeros(1, 4, 4)
    assert _launch.family(x.device) == _launch.INTERPRETER
    assert _launch.launch("exact_nearest", x)["BLOCK_R"] == 64
    with pytest.raises(ValueError, match="unknown GPU family"), _launch.gpu_family("sm70"):
        pass


@pytest.mark.parametrize(("dtype", "mode"), MODES)
def test_knn_density(family, dtype, mode):
    x = _inputs(dtype)
    mask = random_mask(B, N, N - 9)
    with _launch.f32_dot_mode(mode):
        for k, include_self in ((5, True), (3, False)):
            rho = triton(ops.knn_density, x, k, mask=mask, include_self=include_self)
            close(rho, oracle.knn_density(x, k, mask, include_self))


@pytest.mark.parametrize(("dtype", "mode"), MODES)
def test_dpc_delta_with_duplicates(family, dtype, mode):
    """Duplicates put near-ties in every tile: the exact-nearest kernel runs at the GPU's tile."""
    x = _inputs(dtype, seed=1, dup=True)
    rho = oracle.knn_density(x, 3).float()
    with _launch.f32_dot_mode(mode):
        delta, parent = triton(ops.dpc_delta, x, rho)
    want_delta, want_parent = oracle.dpc_delta(x, rho)
    assert torch.equal(parent, want_parent)
    close_dist(delta, want_delta, "triton")


@pytest.mark.parametrize(("dtype", "mode"), MODES)
def test_dpc_cluster_merge(family, dtype, mode):
    """Tie-free tokens (k >= 3): centers and assignment exactly as the oracle's."""
    x = _inputs(dtype, seed=2)
    with _launch.f32_dot_mode(mode):
        centers, assign, merged = triton(ops.dpc_cluster_merge, x, 16, 5)
    want_c, want_a = oracle.dpc_cluster(x, 16, 5)
    assert torch.equal(centers, want_c) and torch.equal(assign, want_a)
    tol = 1e-2 if dtype == torch.bfloat16 else 1e-5  # bf16 rounds the means: 2^-9 relative
    torch.testing.assert_close(merged.double(), oracle.cluster_merge(x, want_a, 16), rtol=tol, atol=tol)


@pytest.mark.parametrize(("dtype", "mode"), MODES)
def test_gcn(family, dtype, mode):
    z = with_duplicates(tokens(B, 70, D, seed=3), 3).to(dtype)  # two 64-bit words, duplicates at distance 0
    h = tokens(B, 70, 67, seed=4).to(dtype)
    with _launch.f32_dot_mode(mode):
        adj = triton(ops.gcn_adjacency, z, 0.9)
        out = triton(ops.gcn_propagate, adj, h)
    a_hat, d_norm = oracle.gcn_dense(z, 0.9)
    got = unpack_bits(adj.bits, 70)
    clear = (d_norm - 0.9).abs() > 1e-9
    assert torch.equal(got[clear], a_hat[clear])
    want = oracle.gcn_propagate_dense(got, h)
    torch.testing.assert_close(out.double(), want, rtol=1e-2 if dtype == torch.bfloat16 else 1e-5,
                               atol=1e-2 if dtype == torch.bfloat16 else 1e-5)

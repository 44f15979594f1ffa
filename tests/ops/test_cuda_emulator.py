"""The CUDA kernels' logic against the float64 oracle, without a GPU.

``tests/ops/cuda_emulator.cu`` runs the kernels' own block bodies and launch sequences
(csrc/cuda) on the CPU, one fiber per CUDA thread, with barriers for ``__syncthreads`` and the
warp collectives: tiling, warp-level k-selection, lane merges, masks, ties and the peak pass are
all exercised here. What it cannot check (real timing, races between warps without a barrier,
the torch binding) is left to the ``gpu`` tests in test_cuda_backend.py.
"""

from __future__ import annotations

import hashlib
import struct
import subprocess
from pathlib import Path

import pytest
import torch

from tests import oracle
from tests.ops.helpers import close, close_dist, random_mask, tokens, with_duplicates
from tests.ops.test_cuda_sources import CSRC, NVCC, needs_nvcc

pytestmark = needs_nvcc

EMULATOR_SOURCE = Path(__file__).with_name("cuda_emulator.cu")
DTYPE_CODE = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}
KNN, DELTA, ASSIGN = 0, 1, 2


@pytest.fixture(scope="session")
def emulator(request, tmp_path_factory) -> Path:
    """The emulator binary, built once per change of the sources (kept in pytest's cache dir)."""
    sources = [EMULATOR_SOURCE, *sorted((CSRC / "cuda").iterdir())]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources if p.is_file())).hexdigest()[:16]
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    folder = Path(cache.mkdir("cuda_emulator")) if cache else tmp_path_factory.mktemp("cuda_emulator")
    binary = folder / f"cuda_emulator-{digest}"
    if not binary.exists():
        # PTX only for the device side: the kernels' machine code is test_cuda_sources' job.
        cmd = [NVCC, "-std=c++17", "-O2", "-gencode=arch=compute_80,code=compute_80", "-Werror", "all-warnings",
               "-Xcompiler", "-Wall,-Wextra", "-I", str(CSRC), str(EMULATOR_SOURCE), "-o", str(binary)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
    return binary


def emulate(binary: Path, tmp_path: Path, op: int, x: torch.Tensor, *, k: int = 0, include_self: bool = True,
            mask: torch.Tensor | None = None, rho: torch.Tensor | None = None,
            centers: torch.Tensor | None = None) -> subprocess.CompletedProcess:
    b, n, d = x.shape
    c = 0 if centers is None else centers.shape[1]
    header = struct.pack("<9q", op, DTYPE_CODE[x.dtype], b, n, d, k, int(include_self), int(mask is not None), c)
    parts = [header, x.contiguous().view(torch.uint8).numpy().tobytes()]
    if mask is not None:
        parts.append(mask.to(torch.uint8).numpy().tobytes())
    if rho is not None:
        parts.append(rho.float().contiguous().numpy().tobytes())
    if centers is not None:
        parts.append(centers.long().contiguous().numpy().tobytes())
    (tmp_path / "in.bin").write_bytes(b"".join(parts))
    return subprocess.run([str(binary), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")], capture_output=True,
                          text=True, timeout=120)


def outputs(tmp_path: Path, *specs: tuple[torch.dtype, tuple[int, int]]) -> list[torch.Tensor]:
    raw = bytearray((tmp_path / "out.bin").read_bytes())
    out, offset = [], 0
    for dtype, shape in specs:
        count = shape[0] * shape[1]
        out.append(torch.frombuffer(raw, dtype=dtype, count=count, offset=offset).view(shape).clone())
        offset += count * dtype.itemsize
    assert offset == len(raw), "the emulator wrote more or less than expected"
    return out


def run_knn(binary, tmp_path, x, k, mask=None, include_self=True) -> torch.Tensor:
    done = emulate(binary, tmp_path, KNN, x, k=k, include_self=include_self, mask=mask)
    assert done.returncode == 0, done.stderr
    return outputs(tmp_path, (torch.float32, x.shape[:2]))[0]


def run_delta(binary, tmp_path, x, rho, mask=None) -> tuple[torch.Tensor, torch.Tensor]:
    done = emulate(binary, tmp_path, DELTA, x, rho=rho, mask=mask)
    assert done.returncode == 0, done.stderr
    return tuple(outputs(tmp_path, (torch.float32, x.shape[:2]), (torch.int64, x.shape[:2])))


def run_assign(binary, tmp_path, x, centers, mask=None) -> torch.Tensor:
    done = emulate(binary, tmp_path, ASSIGN, x, centers=centers, mask=mask)
    assert done.returncode == 0, done.stderr
    return outputs(tmp_path, (torch.int64, x.shape[:2]))[0]


def few_distinct(b: int, n: int, d: int, distinct: int = 3, seed: int = 0) -> torch.Tensor:
    """Every token a copy of one of `distinct` tokens: exact ties everywhere."""
    base = tokens(b, distinct, d, seed=seed)
    pick = torch.randint(0, distinct, (n,), generator=torch.Generator().manual_seed(seed))
    return base[:, pick].contiguous()


# (B, N, D, k, include_self, masked, duplicates): tiles of 64 rows/columns and 16 features are
# crossed, k runs from 1 to the warp's 32.
KNN_CASES = [
    (2, 150, 40, 5, True, False, False),
    (2, 150, 40, 3, False, True, True),
    (1, 70, 17, 32, True, False, False),
    (3, 1, 5, 1, True, False, False),
    (1, 64, 300, 4, False, False, False),
]


@pytest.mark.parametrize("case", KNN_CASES, ids=lambda c: "B{}-N{}-D{}-k{}-self{}-mask{}-dup{}".format(*c))
def test_knn_density(emulator, tmp_path, case):
    b, n, d, k, include_self, masked, dup = case
    x = tokens(b, n, d, seed=n + d)
    x = with_duplicates(x, seed=1) if dup else x
    mask = random_mask(b, n, max(n * 2 // 3, k + 1), seed=2) if masked else None
    rho = run_knn(emulator, tmp_path, x, k, mask, include_self)
    close(rho, oracle.knn_density(x, k, mask, include_self))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_knn_density_low_precision(emulator, tmp_path, dtype):
    """Loaded and computed in float32: exact against the oracle of the same rounded tokens."""
    x = tokens(2, 100, 24, seed=3).to(dtype)
    mask = random_mask(2, 100, 77, seed=3)
    close(run_knn(emulator, tmp_path, x, 4, mask), oracle.knn_density(x, 4, mask))


def test_knn_density_too_few_neighbours_is_nan(emulator, tmp_path):
    """The torch side checks counts first; the kernel itself never returns a plausible number."""
    x = tokens(1, 10, 8)
    mask = torch.zeros(1, 10, dtype=torch.bool)
    mask[0, [2, 7]] = True
    rho = run_knn(emulator, tmp_path, x, 3, mask)
    assert rho[0, [2, 7]].isnan().all()
    assert (rho[0, ~mask[0]] == 0).all()


def test_launch_rejects_k_over_32(emulator, tmp_path):
    done = emulate(emulator, tmp_path, KNN, tokens(1, 40, 8), k=33)
    assert done.returncode == 3 and "launch sequence failed" in done.stderr


def check_delta(emulator, tmp_path, x, rho, mask=None):
    delta, parent = run_delta(emulator, tmp_path, x, rho, mask)
    want_delta, want_parent = oracle.dpc_delta(x, rho, mask)
    close_dist(delta, want_delta, "cuda")
    assert torch.equal(parent, want_parent)


@pytest.mark.parametrize("masked", [False, True])
def test_dpc_delta(emulator, tmp_path, masked):
    x = tokens(2, 150, 40, seed=5)
    mask = random_mask(2, 150, 101, seed=5) if masked else None
    check_delta(emulator, tmp_path, x, oracle.knn_density(x, 5, mask).float(), mask)


def test_dpc_delta_duplicates(emulator, tmp_path):
    """Copies have equal density and distance 0: the lower index is denser and the parent."""
    x = with_duplicates(tokens(2, 130, 20, seed=6), seed=6)
    check_delta(emulator, tmp_path, x, oracle.knn_density(x, 4).float())


def test_dpc_delta_all_ties(emulator, tmp_path):
    """Three distinct tokens and equal densities: every decision is an exact tie, across lanes,
    tiles and rows (denser = lower index; nearest = lowest index)."""
    x = few_distinct(1, 140, 12)
    check_delta(emulator, tmp_path, x, torch.ones(1, 140))


def test_dpc_delta_bfloat16_and_lone_token(emulator, tmp_path):
    """One sample with a single valid token (delta 0, its own parent), one with a few."""
    x = tokens(2, 80, 33, seed=7).to(torch.bfloat16)
    mask = torch.zeros(2, 80, dtype=torch.bool)
    mask[0, 41] = True
    mask[1, ::7] = True
    check_delta(emulator, tmp_path, x, oracle.knn_density(x, 1, mask).float(), mask)


@pytest.mark.parametrize("case", [(2, 150, 40, 20, True, torch.float32), (1, 200, 16, 70, False, torch.float16)],
                         ids=["C20-mask", "C70-f16"])
def test_nearest_center(emulator, tmp_path, case):
    b, n, d, c, masked, dtype = case
    x = tokens(b, n, d, seed=c).to(dtype)
    mask = random_mask(b, n, n - 30, seed=c) if masked else None
    centers, assign = oracle.dpc_cluster(x, c, 5, mask)
    assert torch.equal(run_assign(emulator, tmp_path, x, centers, mask), assign)


def test_nearest_center_ties(emulator, tmp_path):
    """Duplicate centers: a token joins the lowest-ranked copy, each center its own cluster."""
    x = few_distinct(1, 90, 10, distinct=4, seed=8)
    ranked = [5, 0, 1, 2, 3, 4, 6, 7]
    assign = run_assign(emulator, tmp_path, x, torch.tensor([ranked]))
    d = oracle.sqdist(x[0])
    expected = [min(range(len(ranked)), key=lambda c: (float(d[i, ranked[c]]), c)) for i in range(90)]
    for c, i in enumerate(ranked):
        expected[i] = c
    assert assign[0].tolist() == expected

"""The ``faiss`` backend: exact kNN through FAISS for ``knn_density`` (optional extra).

``pip install emollm[faiss]`` (faiss-cpu) or ``emollm[faiss-gpu]``. For each sample, the valid
tokens go into an exact flat L2 index (``IndexFlatL2``; a ``GpuIndexFlatL2`` on the tensor's GPU
when faiss was built with GPU support) and each valid token asks for its k nearest (k + 1 without
self). FAISS ranks by ``||x||² + ||y||² − 2⟨x, y⟩`` in float32; the selected pairs' squared
distances are then recomputed from explicit differences (as the ``cpu`` backend does), so rho
carries no Gram rounding. Only ``knn_density`` is implemented; the other ops fall through to the
automatic backend. FAISS is not chosen automatically: on CPU the ``cpu`` backend is faster at
every size we measured (``benchmarks/test_bench_knn_density.py``); ask for it with
``use_backend("faiss")`` or ``EMOLLM_BACKEND=faiss``.
"""

from __future__ import annotations

import importlib.util

import torch
from torch import Tensor

from emollm.ops._backend import Backend, declare, register

AVAILABLE = importlib.util.find_spec("faiss") is not None
_RECOMPUTE_ROWS = 4096  # rows per chunk when recomputing the selected distances exactly


def _faiss():
    import faiss

    return faiss


def gpu_count() -> int:
    """GPUs FAISS can use (0 for faiss-cpu)."""
    faiss = _faiss()
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def _search(points: Tensor, k: int) -> Tensor:
    """Indices ``[n, k]`` of each point's k nearest among ``points`` (itself included), exact L2."""
    faiss = _faiss()
    d = points.shape[1]
    if points.is_cuda and gpu_count() > 0:
        import faiss.contrib.torch_utils  # lets the GPU index take torch tensors

        res = faiss.StandardGpuResources()
        cfg = faiss.GpuIndexFlatConfig()
        cfg.device = points.device.index or 0
        index = faiss.GpuIndexFlatL2(res, d, cfg)
        index.add(points)
        _, idx = index.search(points, k)
        return idx.to(points.device)
    host = points.detach().cpu().contiguous().numpy()
    index = faiss.IndexFlatL2(d)
    index.add(host)
    _, idx = index.search(host, k)
    return torch.from_numpy(idx).to(points.device)


def _exact_sqdist(points: Tensor, idx: Tensor) -> Tensor:
    """``||points[i] − points[idx[i, j]]||²`` from explicit differences, in float32 or better."""
    out = torch.empty(idx.shape, dtype=points.dtype, device=points.device)
    for start in range(0, idx.shape[0], _RECOMPUTE_ROWS):
        rows = slice(start, start + _RECOMPUTE_ROWS)
        diff = points[rows, None, :] - points[idx[rows]]
        out[rows] = diff.square().sum(-1)
    return out


def _sample_density(points: Tensor, k: int, include_self: bool) -> Tensor:
    n, d = points.shape
    want = k if include_self else k + 1
    idx = _search(points.float(), min(want, n))
    if not include_self:
        # Drop each row's own index; with exact duplicates tied at distance 0 it may be missing,
        # and then the extra (farthest) neighbour goes instead.
        self_col = idx == torch.arange(n, device=idx.device)[:, None]
        drop = torch.where(self_col.any(1), self_col.int().argmax(1), torch.full_like(idx[:, 0], want - 1))
        keep = torch.ones_like(idx, dtype=torch.bool)
        keep[torch.arange(n, device=idx.device), drop] = False
        idx = idx[keep].view(n, k)
    sq = _exact_sqdist(points, idx)
    return torch.exp(-(sq / d).mean(1)).float()


@register("knn_density", "faiss")
def knn_density(x: Tensor, k: int, mask: Tensor | None, include_self: bool) -> Tensor:
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    rho = torch.zeros(x.shape[:2], dtype=torch.float32, device=x.device)
    for b in range(x.shape[0]):
        if mask is None:
            rho[b] = _sample_density(x[b].to(compute), k, include_self)
        else:
            rows = mask[b].nonzero().squeeze(1)
            rho[b, rows] = _sample_density(x[b, rows].to(compute), k, include_self)
    return rho


def status() -> tuple[bool, str]:
    if not AVAILABLE:
        return False, "install the extra: `pip install emollm[faiss]` (faiss-cpu) or `emollm[faiss-gpu]`"
    gpus = gpu_count()
    return True, f"FAISS {_faiss().__version__}: exact kNN for knn_density ({gpus} GPU(s) usable)"


# Any device (a GPU index with faiss-gpu); never chosen automatically: the cpu kernel is faster
# on CPU at every size measured (benchmarks/test_bench_knn_density.py).
BACKEND = declare(Backend("faiss", devices=frozenset({"cpu", "cuda"}), status=status))

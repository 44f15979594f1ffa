"""Multi-perspective Visual Projection (paper §4.3, docs/design.md#the-mvp-projector)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from emollm import ops
from emollm.ops._checks import positive_int
from emollm.profiling import nvtx_range
from emollm.projector.config import MVPConfig
from emollm.projector.gcn import GCN


class MVPProjector(nn.Module):
    """Visual tokens -> LLM embeddings from two perspectives.

    Three cascaded DPC-KNN stages (``stages`` = ``(num_clusters, k)`` each, every stage on the
    previous one's merged tokens) give Z_1..Z_S. The *content* branch projects all merged tokens
    with one Linear; the *relation* branch runs a GCN per stage over the τ-graph of Z_s. Output:
    ``alpha * content + relation`` (``combine="sum"``, ``sum(C_s)`` tokens: 112 by default) or
    both side by side (``combine="concat"``, twice as many tokens).

    A drop-in projector: ``forward(x [B,N,in_dim], mask=None) -> [B,112,out_dim]``. Clustering
    runs through :mod:`emollm.ops` (any backend); gradients reach every parameter and, through the
    merges, the input tokens. Clustering and merging run on x in x's dtype (accumulating in
    float32); the content and relation layers run in the parameters' dtype; the output has x's.

    Settings: ``config`` (an :class:`~emollm.projector.MVPConfig`, default the paper's) with
    ``settings`` as field overrides, e.g. ``MVPProjector(1024, 4096, tau=0.2)`` or
    ``MVPProjector(d, d, cfg, combine="concat")``. ``self.config`` holds the result; ``stages``,
    ``tau``, ``alpha``, ``combine`` and ``num_tokens`` read it.
    """

    def __init__(self, in_dim: int, out_dim: int, config: MVPConfig | None = None, **settings: Any):
        super().__init__()
        if config is None:
            config = MVPConfig()
        elif not isinstance(config, MVPConfig):
            # Also catches the stages given positionally, as the constructor took them before the config.
            raise TypeError(f"config must be an MVPConfig, got {type(config).__name__}; give settings by keyword")
        # replace() re-runs MVPConfig's validation; an unknown setting is its TypeError.
        self.config = dataclasses.replace(config, **settings) if settings else config
        positive_int(in_dim, "in_dim")
        positive_int(out_dim, "out_dim")
        self.in_dim, self.out_dim = in_dim, out_dim
        self.content = nn.Linear(in_dim, out_dim)
        self.relation = nn.ModuleList(GCN(in_dim, out_dim, self.config.gcn_layers) for _ in self.stages)

    @property
    def stages(self) -> tuple[tuple[int, int], ...]:
        """``(num_clusters, k)`` per stage, k as it runs (see :func:`~emollm.projector.config.stage_k`)."""
        return self.config.stages

    @property
    def tau(self) -> float:
        """Similarity threshold of the relation branch's τ-graph."""
        return self.config.tau

    @property
    def alpha(self) -> float:
        """Weight of the content branch."""
        return self.config.alpha

    @property
    def combine(self) -> str:
        """``"sum"`` or ``"concat"`` of the two branches."""
        return self.config.combine

    @property
    def num_tokens(self) -> int:
        """Output tokens per image: ``sum(C_s)``, doubled for ``combine="concat"``."""
        return self.config.num_tokens

    def cluster(self, x: Tensor, mask: Tensor | None = None) -> list[tuple[Tensor, Tensor, Tensor]]:
        """The stages alone: ``[(centers, assign, merged)]`` per stage; stage s clusters the
        merged tokens of stage s-1 (so its ``assign`` indexes those)."""
        out, z = [], x
        for s, (c, k) in enumerate(self.stages, 1):
            with nvtx_range(f"emollm.mvp.stage{s}"):
                centers, assign, z = ops.dpc_cluster_merge(z, c, k, mask=mask)
            mask = None  # every cluster of a stage is a real token of the next
            out.append((centers, assign, z))
        return out

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x`` ``[B,N,in_dim]`` (``mask`` ``[B,N]`` bool, True = real token, at least
        ``stages[0][0]`` per sample) -> ``[B, num_tokens, out_dim]`` in x's dtype."""
        if x.dim() != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(f"x must be [B,N,{self.in_dim}], got {tuple(x.shape)}")
        with nvtx_range("emollm.mvp.forward"):
            dtype = self.content.weight.dtype
            merged = [z.to(dtype) for _, _, z in self.cluster(x, mask)]
            with nvtx_range("emollm.mvp.content"):
                content = self.content(torch.cat(merged, 1))
            with nvtx_range("emollm.mvp.relation"):
                relation = torch.cat([gcn(ops.gcn_adjacency(z, self.tau), z)
                                      for gcn, z in zip(self.relation, merged, strict=True)], 1)
            if self.combine == "sum":
                h = self.alpha * content + relation
            else:
                h = torch.cat([self.alpha * content, relation], 1)
            return h.to(x.dtype)

    def forward_video(self, frames: Tensor, frame_mask: Tensor | None = None, mode: str = "expand",
                      frames_per_event: int = 16) -> tuple[Tensor, Tensor]:
        """Video: events from DPC-KNN over frame means, then the stages per event.

        See :func:`emollm.projector.video.forward_video`. Returns ``(tokens [B, E*num_tokens,
        out_dim], mask [B, E*num_tokens])`` with E the most events in a sample.
        """
        from emollm.projector.video import forward_video

        return forward_video(self, frames, frame_mask, mode=mode, frames_per_event=frames_per_event)

    def extra_repr(self) -> str:
        return (f"in_dim={self.in_dim}, out_dim={self.out_dim}, stages={self.stages}, tau={self.tau}, "
                f"alpha={self.alpha}, gcn_layers={self.config.gcn_layers}, combine={self.combine!r}")

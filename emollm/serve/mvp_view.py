"""What a model's MVP sees in one picture: its own vision tower's patch tokens, its own projector's
three clustering stages and τ-graphs, each stage timed, and the backend each op ran on.

The stages run as :meth:`MVPProjector.cluster` runs them (the fused ``dpc_cluster_merge`` per
stage), then ``gcn_adjacency`` builds the stage's τ-graph as the relation perspective does; this is
a separate pass over the same tokens, timed op by op (CUDA synchronized around each).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from emollm import ops
from emollm.cluster_view import Stage, render_stages, stage_views
from emollm.ops import _backend

__all__ = ["DISPLAY_SIZE", "MVPView", "core_model", "display_square", "mvp_view"]

DISPLAY_SIZE = 224  # px per panel: the tiny model's 32 px crop is drawn at this size too


@dataclass
class MVPView:
    """``picture``: the stages drawn side by side; ``stages``: per stage ``{"clusters", "edges",
    "cluster_ms", "graph_ms"}``; ``backends``: op -> the backend that ran it; ``tower_ms``: the
    vision tower's forward."""

    picture: Image.Image
    stages: list[dict] = field(default_factory=list)
    backends: dict[str, str] = field(default_factory=dict)
    tower_ms: float = 0.0

    def table(self) -> str:
        """The timings as a Markdown table."""
        rows = ["| stage | clusters | τ-edges | dpc_cluster_merge ms | gcn_adjacency ms |",
                "|---|---:|---:|---:|---:|"]
        rows += [f"| {i} | {s['clusters']} | {s['edges']} | {s['cluster_ms']:.2f} | {s['graph_ms']:.2f} |"
                 for i, s in enumerate(self.stages, 1)]
        used = ", ".join(f"`{op}` on **{name}**" for op, name in self.backends.items())
        return "\n".join(rows) + f"\n\nvision tower (patch tokens): {self.tower_ms:.1f} ms. Backends: {used}."


def core_model(model):
    """The ``EmoLLMModel`` inside an ``EmoLLMForConditionalGeneration`` or a peft model around one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model


def display_square(image: Image.Image, size: int = DISPLAY_SIZE) -> np.ndarray:
    """The central square of ``image`` (what CLIP's resize-then-centre-crop keeps) at ``size`` px,
    float ``[size,size,3]`` in [0,1]."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    square = image.convert("RGB").crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
    return np.asarray(square, dtype=np.float32) / 255.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()  # not inference_mode: the cpu backend's C++ ops refuse inference tensors
def mvp_view(model, processor, image: Image.Image, title: str = "", tau: float | None = None) -> MVPView:
    """Run ``model``'s vision tower and MVP stages on ``image`` (PIL) and draw them. ``tau``: the
    threshold of the drawn τ-graphs (default the projector's own; the clusters do not depend on it)."""
    core = core_model(model)
    projector = core.projector
    param = next(core.vision_tower.parameters())
    pixels = processor.image_processor([image.convert("RGB")], return_tensors="pt")["pixel_values"]
    start = time.perf_counter()
    tokens = core._patch_tokens(pixels.to(device=param.device, dtype=param.dtype))  # [1,N,D] at the feature layer
    _sync(param.device)
    tower_ms = (time.perf_counter() - start) * 1e3

    tau = projector.tau if tau is None else tau
    stages, rows, z = [], [], tokens
    for c, k in projector.stages:
        start = time.perf_counter()
        centers, assign, z = ops.dpc_cluster_merge(z, c, k)
        _sync(z.device)
        middle = time.perf_counter()
        ops.gcn_adjacency(z, tau)
        _sync(z.device)
        rows.append({"clusters": c, "cluster_ms": (middle - start) * 1e3,
                     "graph_ms": (time.perf_counter() - middle) * 1e3})
        stages.append((centers, assign, z))
    views: list[Stage] = stage_views(stages, tau)[0]
    for row, stage in zip(rows, views, strict=True):
        row["edges"] = len(stage.edges)
    backends = {op: _backend.selected(op, tokens.device) for op in ("dpc_cluster_merge", "gcn_adjacency")}
    heading = title or f"what the MVP sees: {tokens.shape[1]} patch tokens, τ = {tau}"
    picture = render_stages(display_square(image), views, heading)
    return MVPView(picture, rows, backends, tower_ms)

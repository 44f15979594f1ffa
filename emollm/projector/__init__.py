"""The Multi-perspective Visual Projection (MVP) and its parts."""

from emollm.projector.gcn import GCN
from emollm.projector.mvp import MVPProjector, stage_k

__all__ = ["GCN", "MVPProjector", "stage_k"]

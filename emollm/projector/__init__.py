"""The Multi-perspective Visual Projection (MVP) and its parts."""

from emollm.projector.config import MVPConfig, stage_k
from emollm.projector.gcn import GCN
from emollm.projector.mvp import MVPProjector

__all__ = ["GCN", "MVPConfig", "MVPProjector", "stage_k"]

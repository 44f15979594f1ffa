"""emollm: fused DPC-KNN token clustering and sparse GCN ops, the MVP projector, and EmoLLM."""

from emollm import ops

__version__ = "0.1.0"
__all__ = ["__version__", "ops"]

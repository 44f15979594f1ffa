"""Which attention implementation EmoLLM's language model uses.

``flash_attention_2`` (the flash-attn package, CUDA only) where it is installed and the model runs
on CUDA, else ``sdpa`` (``torch.nn.functional.scaled_dot_product_attention``, which on CUDA itself
dispatches to FlashAttention-2, memory-efficient or cuDNN kernels, and on CPU to a fused kernel).
``eager`` is the plain matmul-softmax-matmul, needed only for ``output_attentions``.

xformers is not used: PyTorch's memory-efficient SDPA backend is xformers' own kernel, upstreamed,
and transformers' CLIP and Whisper already run through SDPA, so xformers would add a dependency
and no kernel we do not have (docs/model.md, "Attention").
"""

from __future__ import annotations

import torch
from transformers.utils import is_flash_attn_2_available

__all__ = ["ATTN_IMPLEMENTATIONS", "attn_implementation_status", "default_attn_implementation"]

ATTN_IMPLEMENTATIONS = ("eager", "sdpa", "flash_attention_2")


def _is_cuda(device: str | torch.device | None) -> bool:
    return device is not None and torch.device(device).type == "cuda"


def attn_implementation_status(device: str | torch.device | None = None) -> dict[str, tuple[bool, str]]:
    """``{implementation: (usable on device, why not)}`` for :data:`ATTN_IMPLEMENTATIONS`."""
    status = {"eager": (True, ""), "sdpa": (True, "")}
    if not _is_cuda(device):
        status["flash_attention_2"] = (False, "flash_attention_2 runs on CUDA only")
    elif not is_flash_attn_2_available():
        status["flash_attention_2"] = (False, "the flash-attn package (>= 2.3.3) is not installed")
    else:
        status["flash_attention_2"] = (True, "")
    return status


def default_attn_implementation(device: str | torch.device | None = None) -> str:
    """``"flash_attention_2"`` when flash-attn is installed and ``device`` is CUDA, else ``"sdpa"``."""
    return "flash_attention_2" if attn_implementation_status(device)["flash_attention_2"][0] else "sdpa"

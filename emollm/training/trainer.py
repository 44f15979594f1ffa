"""The ``transformers`` Trainer, with FSDP allowed on CPU process groups, and the hook that keeps
every trainable parameter in every step's graph (needed by FSDP when batches differ in modality).

accelerate (1.10 to 1.15) turns FSDP on only for GPU-type process groups: under ``torchrun`` on
CPU (gloo) an FSDP plugin is silently dropped and the model is wrapped in DDP instead. PyTorch's
FSDP2 (``fully_shard``) runs on CPU tensors over gloo, and accelerate's own FSDP2 preparation
works there once the state says FSDP, so :class:`EmoLLMTrainer` says so. On GPUs it changes
nothing. This is what lets the FSDP preset be tested on a CPU machine.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Trainer

__all__ = ["EmoLLMTrainer", "keep_projectors_in_graph"]


class EmoLLMTrainer(Trainer):
    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        from accelerate import PartialState
        from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

        state = self.accelerator.state
        if self.args.fsdp_plugin_args is None or state.distributed_type != DistributedType.MULTI_CPU:
            return
        plugin = FullyShardedDataParallelPlugin(**self.args.fsdp_plugin_args)
        if state.mixed_precision != "no":
            plugin.set_mixed_precision(state.mixed_precision)
        state.distributed_type = DistributedType.FSDP
        state.fsdp_plugin = plugin
        # As accelerate does for GPUs: every later AcceleratorState() copies PartialState's type.
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        self.is_fsdp_enabled = True


def keep_projectors_in_graph(model: nn.Module) -> None:
    """Makes every step use the trainable parameters of the MVP and the audio projector, also when
    the batch has no image or no audio: ``0 * sum(their parameters)`` is added to the LM's input
    embeddings (no change to any value).

    With several processes, a batch with audio on one process and none on another would otherwise
    leave the audio projector's gradients missing on one side: FSDP then reduce-scatters
    different tensors on each process (a collective mismatch), and DDP needs
    ``find_unused_parameters``. It is used in one-process runs too, so that they compute exactly
    what N processes do: an unused projector gets a zero gradient (AdamW still moves it by its
    momentum, as under DeepSpeed, whose flat gradient buffers hold zeros for unused parameters)
    rather than none. The parameters are looked up at each call, because FSDP swaps a module's
    parameters between sharded and whole ones."""
    from emollm.model import EmoLLMModel

    inner = next((m for m in model.modules() if isinstance(m, EmoLLMModel)), None)
    if inner is None:
        raise TypeError(f"model holds no EmoLLMModel: {type(model).__name__}")
    projectors = (inner.projector, inner.audio_projector)

    def touch(module: nn.Module, args: tuple, kwargs: dict):
        embeds = kwargs.get("inputs_embeds")
        trainable = [p for m in projectors for p in m.parameters() if p.requires_grad]
        if embeds is None or not trainable or not torch.is_grad_enabled():
            return None
        zero = torch.stack([p.sum() for p in trainable]).sum() * 0
        return args, {**kwargs, "inputs_embeds": embeds + zero.to(embeds.dtype)}

    inner.language_model.register_forward_pre_hook(touch, with_kwargs=True)

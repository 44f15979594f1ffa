"""What differs between the supported transformers releases (pyproject.toml: transformers >=5.17, <=5.24).

5.24 renamed the KV cache from ``past_key_values`` to ``cache`` in forward arguments and model
outputs, and its ``generate()`` reads the cache back from ``outputs["cache"]`` only: an output that
still says ``past_key_values`` makes every decoding step recompute the whole sequence (right
answers, far slower). The name is read off the installed release's own output class, so a model
returns what its ``generate()`` expects.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from transformers.modeling_outputs import CausalLMOutputWithPast

__all__ = ["CACHE_NAME", "checkpointing_argument", "one_cache"]

# "cache" on 5.24 and later, "past_key_values" before.
CACHE_NAME: str = "cache" if "cache" in {f.name for f in fields(CausalLMOutputWithPast)} else "past_key_values"


def one_cache(cache: Any, past_key_values: Any) -> Any:
    """The KV cache, given under either name; raises if it is given under both."""
    if cache is not None and past_key_values is not None:
        raise ValueError("give the KV cache once, as `cache` or as `past_key_values`, not both")
    return past_key_values if cache is None else cache


def checkpointing_argument() -> str:
    """``TrainingArguments``' name for activation checkpointing: ``activation_checkpointing`` from
    5.23 on (the old name is a deprecated alias there), ``gradient_checkpointing`` before."""
    from transformers import TrainingArguments

    names = {f.name for f in fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"

"""LoRA on EmoLLM's language model only, through peft (paper §5.1: the LM is tuned with LoRA,
the projectors fully; the vision and audio towers stay frozen)."""

from __future__ import annotations

from collections.abc import Sequence

LM_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TRAINED_FULLY = ("projector", "audio_projector")  # the MVP and the audio MLP


def apply_lora(model, r: int = 8, alpha: int = 16, dropout: float = 0.05,
               targets: Sequence[str] = LM_PROJECTIONS, train_projectors: bool = True):
    """Wrap an :class:`EmoLLMForConditionalGeneration` in a peft model: LoRA adapters of rank
    ``r`` on the LLaMA's ``targets`` projections, and nowhere else (CLIP and Whisper have
    ``q_proj``/``k_proj``/``v_proj`` too, so targets are matched under ``model.language_model``
    only); the MVP and the audio MLP trained in full (peft ``modules_to_save``) unless
    ``train_projectors=False``. Everything else is frozen.

    Returns the ``PeftModelForCausalLM``: ``save_pretrained`` writes the adapters (and the
    projectors) only, ``PeftModel.from_pretrained(base, path)`` loads them back, and
    ``merge_and_unload()`` folds the adapters into the LM weights.
    """
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:  # pragma: no cover - the extra is missing
        raise ImportError("apply_lora needs peft: pip install 'emollm[model]'") from e
    if r < 1:
        raise ValueError(f"r must be >= 1, got {r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
    unknown = set(targets) - set(LM_PROJECTIONS)
    if unknown:
        raise ValueError(f"targets must be LLaMA projections {LM_PROJECTIONS}, got unknown {sorted(unknown)}")
    # peft full-matches a string target against each module's qualified name.
    pattern = r"model\.language_model\..*\.(" + "|".join(targets) + r")"
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=pattern,
                        modules_to_save=list(TRAINED_FULLY) if train_projectors else None, task_type="CAUSAL_LM")
    return get_peft_model(model, config)

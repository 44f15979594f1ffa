"""EmoLLM as a ``transformers`` model (docs/design.md#model-data-training-and-evaluation).

Importing this package registers ``EmoLLMConfig`` (model type ``"emollm"``), the models and the
processor with the Auto classes, so ``AutoConfig`` / ``AutoModel`` /
``AutoModelForImageTextToText`` / ``AutoModelForCausalLM`` / ``AutoProcessor``
``.from_pretrained(dir)`` load a saved EmoLLM without ``trust_remote_code``.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
)

from emollm.model.attention import ATTN_IMPLEMENTATIONS, attn_implementation_status, default_attn_implementation
from emollm.model.configuration_emollm import EmoLLMConfig
from emollm.model.lora import LM_PROJECTIONS, apply_lora
from emollm.model.modeling_emollm import (
    EmoLLMCausalLMOutput,
    EmoLLMForConditionalGeneration,
    EmoLLMModel,
    EmoLLMPreTrainedModel,
)
from emollm.model.named import NAMES, from_named
from emollm.model.pretrained_towers import from_pretrained_towers
from emollm.model.processing_emollm import EmoLLMProcessor
from emollm.model.tokenizer import VICUNA_V1_TEMPLATE, build_tiny_tokenizer

# exist_ok: a second import (e.g. after importlib.reload) must not fail.
AutoConfig.register(EmoLLMConfig.model_type, EmoLLMConfig, exist_ok=True)
AutoModel.register(EmoLLMConfig, EmoLLMModel, exist_ok=True)
AutoModelForImageTextToText.register(EmoLLMConfig, EmoLLMForConditionalGeneration, exist_ok=True)
AutoModelForCausalLM.register(EmoLLMConfig, EmoLLMForConditionalGeneration, exist_ok=True)
AutoProcessor.register(EmoLLMConfig, EmoLLMProcessor, exist_ok=True)

__all__ = [
    "ATTN_IMPLEMENTATIONS",
    "LM_PROJECTIONS",
    "NAMES",
    "VICUNA_V1_TEMPLATE",
    "EmoLLMCausalLMOutput",
    "EmoLLMConfig",
    "EmoLLMForConditionalGeneration",
    "EmoLLMModel",
    "EmoLLMPreTrainedModel",
    "EmoLLMProcessor",
    "apply_lora",
    "attn_implementation_status",
    "build_tiny_tokenizer",
    "default_attn_implementation",
    "from_named",
    "from_pretrained_towers",
]

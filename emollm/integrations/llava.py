"""The MVP projector as a drop-in for a ``transformers`` LLaVA (docs/design.md#in-another-mllm).

LLaVA maps the vision tower's patch tokens one-to-one to LLM tokens with a two-layer MLP
(``model.model.multi_modal_projector``), so an image costs as many LLM tokens as the tower has
patches (576 for CLIP ViT-L/14 at 336 px), and the processor expands each ``<image>`` into that
many placeholders. :func:`use_mvp_projector` puts an :class:`~emollm.projector.MVPProjector` in
the MLP's place and makes every ``<image>`` expand to ``num_tokens`` placeholders (112, or 224
with ``combine="concat"``), whatever the image size and feature-select strategy::

    model, processor = use_mvp_projector(model, processor, tau=0.1, combine="sum")

The MVP put in starts **untrained** (random weights): until it is trained the LLaVA's answers
about images are noise. ``emollm train --model <the saved LLaVA folder>`` trains it in place, alone
(``--no-lora``) or with LoRA on the LM (:mod:`emollm.integrations.llava_training`).

The settings go into ``model.config.mvp_projector`` as :meth:`MVPConfig.to_dict
<emollm.projector.MVPConfig.to_dict>` (and ``config.image_seq_length`` becomes its
``num_tokens``), so ``save_pretrained`` keeps them next to the projector's weights. To load such a
checkpoint in one step, weights included, use the subclass that builds the MVP from the config::

    model = MVPLlavaForConditionalGeneration.from_pretrained(path)
    model, processor = use_mvp_projector(model, LlavaProcessor.from_pretrained(path))

The second call keeps the loaded projector and only patches the processor: the processor's
patch is not saved by ``save_pretrained`` (its ``processor_config.json`` has no field for it), so
every freshly loaded processor needs it. A plain ``LlavaForConditionalGeneration.from_pretrained``
drops the MVP weights (transformers warns about unexpected keys); ``use_mvp_projector(model)``
then rebuilds the projector from the config, and ``model.load_state_dict(...)`` restores it.

Limits: variable-resolution towers (Pixtral: ``image_sizes`` splits the projector's output per
patch grid) are refused; the vision tower must give at least ``stages[0][0]`` tokens per image.
"""

from __future__ import annotations

from functools import partial

from emollm.projector import MVPConfig, MVPProjector

try:
    from transformers import LlavaForConditionalGeneration, LlavaProcessor
    from transformers.conversion_mapping import (
        get_checkpoint_conversion_mapping,
        register_checkpoint_conversion_mapping,
    )
    from transformers.processing_utils import MultiModalData
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError("emollm.integrations.llava needs transformers>=5: pip install 'emollm[llava]'") from e

__all__ = ["CONFIG_KEY", "MVPLlavaForConditionalGeneration", "mvp_settings", "use_mvp_projector"]

CONFIG_KEY = "mvp_projector"
"""Attribute of the LlavaConfig that holds the MVP's settings: ``MVPConfig.to_dict()`` (the
projector's ``in_dim``/``out_dim`` follow from the LlavaConfig)."""


def mvp_settings(config) -> MVPConfig | None:
    """The MVP settings recorded on a LlavaConfig by :func:`use_mvp_projector`, or None."""
    settings = getattr(config, CONFIG_KEY, None)
    return MVPConfig.from_dict(settings) if settings else None


def _build_projector(config, settings: MVPConfig) -> MVPProjector:
    _check_token_supply(config.vision_config, settings)
    layers = config.vision_feature_layer
    # LLaVA concatenates the selected layers' hidden states along the feature axis.
    in_dim = config.vision_config.hidden_size * (1 if isinstance(layers, int) else len(layers))
    return MVPProjector(in_dim, config.text_config.hidden_size, settings)


def _check_token_supply(vision_config, settings: MVPConfig) -> None:
    if getattr(vision_config, "model_type", None) == "pixtral":
        raise ValueError("use_mvp_projector supports fixed-resolution vision towers; Pixtral's variable image sizes "
                         "split the projector output per patch grid, which a fixed token count cannot match")
    image_size, patch_size = getattr(vision_config, "image_size", None), getattr(vision_config, "patch_size", None)
    if not isinstance(image_size, int) or not isinstance(patch_size, int):
        return
    # At most the patches plus one CLS token reach the projector ("full" keeps the CLS token,
    # "default" drops it); fewer than the first stage's clusters can never work.
    most = (image_size // patch_size) ** 2 + 1
    first = settings.stages[0][0]
    if most < first:
        raise ValueError(f"the vision tower gives at most {most} tokens per image (image_size={image_size}, "
                         f"patch_size={patch_size}), but the MVP's first stage needs stages[0][0]={first}")


def _image_placeholders(image_token: str, num_tokens: int, image_inputs: dict, image_idx: int, **kwargs) -> str:
    return image_token * num_tokens


def _num_multimodal_tokens(num_tokens: int, image_sizes=None, **kwargs) -> MultiModalData:
    if image_sizes is None:
        return MultiModalData()
    return MultiModalData(num_image_tokens=[num_tokens] * len(image_sizes), num_image_patches=[1] * len(image_sizes))


def _patch_processor(processor: LlavaProcessor, num_tokens: int) -> None:
    # Instance attributes shadow the class's methods; ProcessorMixin calls
    # self.replace_image_token(...) when expanding "<image>" and vLLM-style callers use
    # self._get_num_multimodal_tokens(...). Partials of module functions (not bound methods or
    # closures) keep the processor picklable and cheap for to_dict's deepcopy.
    processor.replace_image_token = partial(_image_placeholders, processor.image_token, num_tokens)
    processor._get_num_multimodal_tokens = partial(_num_multimodal_tokens, num_tokens)


def use_mvp_projector(model: LlavaForConditionalGeneration, processor: LlavaProcessor | None = None,
                      **mvp_kwargs):
    """Replace a LLaVA's MLP projector with an :class:`~emollm.projector.MVPProjector`.

    ``model``: a ``transformers`` ``LlavaForConditionalGeneration`` (v5). The new projector gets
    ``in_dim`` = the vision hidden size (times the number of layers when ``vision_feature_layer``
    is a list), ``out_dim`` = the text hidden size, and the old projector's device and dtype. It
    clusters whatever tokens the tower hands over: the patches (``"default"`` strategy, CLS
    dropped) or patches + CLS (``"full"``). ``mvp_kwargs`` are :class:`~emollm.projector.MVPConfig`
    fields (bad ones raise before the model is touched); the resulting config is recorded in
    ``model.config.mvp_projector`` as ``MVPConfig.to_dict()``, and ``config.image_seq_length``
    becomes its ``num_tokens``.

    With no ``mvp_kwargs``, a projector that is already an MVP is kept (so this call patches a
    freshly loaded processor), and a config that records MVP settings rebuilds the MVP from them
    (new weights: load the state dict after).

    A newly built MVP has random weights: train it before relying on the model's answers
    (``emollm train --model DIR`` on the saved LLaVA).

    ``processor``: an optional ``LlavaProcessor``, patched in place so that each ``<image>``
    becomes exactly ``num_tokens`` image tokens. Returns ``model``, or ``(model, processor)``
    when a processor is given.
    """
    if not isinstance(model, LlavaForConditionalGeneration):
        raise TypeError("model must be a transformers LlavaForConditionalGeneration (LLaVA with its LM head), "
                        f"got {type(model).__name__}")
    if processor is not None and not isinstance(processor, LlavaProcessor):
        raise TypeError(f"processor must be a transformers LlavaProcessor, got {type(processor).__name__}")
    config, old = model.config, model.model.multi_modal_projector
    if not mvp_kwargs and isinstance(old, MVPProjector):
        settings = old.config  # what runs, whether loaded from the config or put in by hand
    else:
        settings = MVPConfig(**mvp_kwargs) if mvp_kwargs else (mvp_settings(config) or MVPConfig())
        projector = _build_projector(config, settings)
        ref = next(old.parameters(), None)
        device, dtype = (ref.device, ref.dtype) if ref is not None else (model.device, model.dtype)
        model.model.multi_modal_projector = projector.to(device=device, dtype=dtype)
    setattr(config, CONFIG_KEY, settings.to_dict())
    config.image_seq_length = settings.num_tokens
    if processor is None:
        return model
    _patch_processor(processor, settings.num_tokens)
    return model, processor


class MVPLlavaForConditionalGeneration(LlavaForConditionalGeneration):
    """A ``LlavaForConditionalGeneration`` whose projector is the MVP when its config records MVP
    settings (``config.mvp_projector``), so that ``from_pretrained`` loads a checkpoint saved after
    :func:`use_mvp_projector` with its projector weights. Without the settings it is a plain LLaVA.
    """

    def __init__(self, config):
        super().__init__(config)
        settings = mvp_settings(config)
        if settings is not None:
            projector = _build_projector(config, settings)
            ref = next(self.model.multi_modal_projector.parameters())
            self.model.multi_modal_projector = projector.to(device=ref.device, dtype=ref.dtype)


# transformers saves a LLaVA with its legacy key layout ("language_model.lm_head.weight", ...) and
# renames the keys back on load through a mapping found by class name or model type, but skips
# the model-type mapping for classes defined outside transformers; without this registration the
# subclass would load every weight except lm_head.weight and leave that one random.
register_checkpoint_conversion_mapping(MVPLlavaForConditionalGeneration.__name__,
                                       get_checkpoint_conversion_mapping("llava"), overwrite=True)

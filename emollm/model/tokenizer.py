"""A tiny byte-level BPE tokenizer built offline, and Vicuna v1's chat template.

Byte-level: any text encodes (no ``<unk>`` in practice) and decodes back exactly. The merges are
learned in memory from a short built-in English text, so building is deterministic and takes
milliseconds; the vocabulary is 256 bytes + the merges + the special tokens.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

__all__ = ["SPECIAL_TOKENS", "VICUNA_V1_SYSTEM", "VICUNA_V1_TEMPLATE", "build_tiny_tokenizer"]

# Special tokens first, so their ids are 0..6 in this order.
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<image>", "<video>", "<audio>")

VICUNA_V1_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                    "The assistant gives helpful, detailed, and polite answers to the user's questions.")

# Vicuna v1 (FastChat "vicuna_v1"): "{system} USER: {u} ASSISTANT: {a}</s>USER: ...". A message's
# content is a string or a list of {"type": "text"|"image"|"video"|"audio"} parts; media parts
# become their placeholder followed by a newline, as LLaVA puts them.
VICUNA_V1_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set system = messages[0]['content'] -%}{%- set rest = messages[1:] -%}"
    "{%- else -%}{%- set system = '" + VICUNA_V1_SYSTEM.replace("'", "\\'") + "' -%}{%- set rest = messages -%}"
    "{%- endif -%}"
    "{{ system + ' ' }}"
    "{%- for message in rest -%}"
    "{%- if message['content'] is string -%}{%- set text = message['content'] -%}"
    "{%- else -%}{%- set text = namespace(v='') -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] in ['image', 'video', 'audio'] -%}{%- set text.v = text.v + '<' + part['type'] + '>\n' -%}"
    "{%- else -%}{%- set text.v = text.v + part['text'] -%}{%- endif -%}"
    "{%- endfor -%}{%- set text = text.v -%}"
    "{%- endif -%}"
    "{%- if message['role'] == 'user' -%}{{ 'USER: ' + text + ' ' }}"
    "{%- else -%}{{ 'ASSISTANT: ' + text + '</s>' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'ASSISTANT:' }}{%- endif -%}"
)

_CORPUS = """\
A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful,
detailed, and polite answers to the user's questions. USER: What emotion does the person in the image
show? ASSISTANT: The person looks happy: the smile and the raised cheeks suggest joy. USER: Is this
sarcasm? ASSISTANT: Yes. The speaker says the weather is lovely while rain is pouring, which is ironic.
Emotions: anger, disgust, fear, happiness, joy, neutral, sadness, surprise, contempt, excitement,
peace, affection, esteem, anticipation, engagement, confidence, sympathy, doubt, pain, embarrassment.
What is the intent of the speaker in the video? Listen to the audio and describe the tone of voice.
Is the meme hateful or not? Is it humorous? Answer with one word from the label set. Let's think step
by step about the facial expression, the body posture, the scene and the words that are spoken.
"""


def build_tiny_tokenizer(vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with ``SPECIAL_TOKENS`` (ids 0..6), BOS ``<s>`` prepended on
    encoding, ``<pad>`` for padding and Vicuna v1's chat template. No files or network."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS.splitlines(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>", "video_token": "<video>", "audio_token": "<audio>"},
        chat_template=VICUNA_V1_TEMPLATE,
    )

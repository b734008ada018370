"""A character-level ChatML tokenizer for the arithmetic task, built locally (no hub).

It is a Qwen2 tokenizer (byte-level BPE) whose vocabulary is single characters and
which has no merges, so every character is one token. Being a genuine Qwen2Tokenizer
matters: transformers loads any tokenizer saved beside a qwen2 config.json as
Qwen2Tokenizer, and a differently built one would silently lose characters (newlines).
ChatML (`<|im_start|>role\n...<|im_end|>\n`) because verl picks its Qwen prompt builder
from the model type; `<|im_end|>` ends an answer (EOS).
"""

from __future__ import annotations

import string

from tokenizers.pre_tokenizers import ByteLevel
from transformers import Qwen2Tokenizer

PAD, BOS, EOS = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [PAD, BOS, EOS]
# Backslash and braces: answers are written `\boxed{16}`.
CHARACTERS = string.digits + string.ascii_lowercase + "+-*=?:., \n\\{}"

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer() -> Qwen2Tokenizer:
    # Byte-level BPE spells some characters differently ("\n" is "Ċ", " " is "Ġ").
    byte_level = ByteLevel(add_prefix_space=False, use_regex=False)
    spelled = [byte_level.pre_tokenize_str(c)[0][0] for c in CHARACTERS]
    tokenizer = Qwen2Tokenizer(
        vocab={token: i for i, token in enumerate(SPECIAL_TOKENS + spelled)},
        merges=[],
        unk_token=None,
        bos_token=None,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=[BOS],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer

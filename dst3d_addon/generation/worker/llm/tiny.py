"""The `tiny` LLM: a random-weight causal LM and byte-level tokenizer built locally.

For tests and smoke runs only: no download, a fraction of a second per answer on a CPU, but its
text is noise (so the filters drop nearly all of it). It is a real Llama-architecture model with a
chat template, saved as safetensors, so every code path that works with it works with real
instruction-tuned models. Fixed torch seeds make every build the same bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ....core.files import build_folder_atomically
from ...worker_env import dst3d_cache_dir

TINY_LLM_VERSION = 1
TINY_LLM_FOLDER = f"tiny-llm-v{TINY_LLM_VERSION}"
TINY_LLM_MARKER = "dst3d_tiny_llm.json"
SPECIALS = ("<s>", "</s>", "<pad>")
#: A minimal chat template (the tokenizer's, as instruction-tuned models ship one).
CHAT_TEMPLATE = (
    "{% for message in messages %}<s>{{ message['role'] }}\n{{ message['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


def build_tiny_llm(folder: Path) -> None:
    """Save the tiny model and tokenizer into `folder` (marker last)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: i for i, symbol in enumerate(sorted(alphabet))}
    for special in SPECIALS:
        vocab[special] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(list(SPECIALS))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
        pad_token_id=vocab["<pad>"],
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / TINY_LLM_MARKER).write_text(
        json.dumps({"version": TINY_LLM_VERSION, "note": "random weights: its text is noise"}) + "\n"
    )


def tiny_llm_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The tiny LLM's folder, built once into the dst3d cache (atomically)."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else dst3d_cache_dir()
    return build_folder_atomically(root / TINY_LLM_FOLDER, build_tiny_llm, TINY_LLM_MARKER)

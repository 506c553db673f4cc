"""A tiny random Llama and a locally trained tokenizer, for tests: no download, deterministic, built in ~1 s.

`build_tiny_model(path)` writes a safetensors model dir that `load_backend(path)` loads through the same code path
as any local model dir. The weights are random (seeded), so the numbers mean nothing; what the tests check is that
the fused, batched, cached computations equal the naive ones.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..atomic import atomic_dir

# ChatML like SmolLM2's (a default system turn when the conversation has none), so the tiny model exercises the
# same prompt layout as the embedded default.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# A small corpus so the BPE learns a few merges (including " A", " B", " Yes"); byte-level pre-tokenisation means
# any text still tokenises.
_CORPUS = [
    "What is the capital of France? The capital of France is Paris.",
    "Is the proposed answer: (A) Correct (B) Incorrect (C) I am not sure",
    "Are you really sure the proposed answer is correct? Choose again: A B C",
    "Do these two answers say the same thing? Answer Yes or No. Yes No Yes No",
    "explanation: think step by step. answer: 5. answer: Paris. answer: Berlin",
    "The quick brown fox jumps over the lazy dog. 2 + 3 = 5 and 4 + 5 = 9.",
    "system user assistant You are a helpful assistant. Question: Answer: A B C",
    "positive negative neutral sentiment of the following sentence",
] * 4

CONFIG = dict(vocab_size=384, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True, rms_norm_eps=1e-5)


def build_tokenizer():
    """A byte-level BPE tokenizer trained on the built-in corpus, wrapped as a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=CONFIG["vocab_size"], special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write the tiny model + tokenizer to `path` (atomically: a temp dir renamed into place); returns the path."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = Path(path)
    if (path / "config.json").exists():
        return path
    tokenizer = build_tokenizer()
    config = LlamaConfig(**{**CONFIG, "vocab_size": len(tokenizer)}, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    # Default init (std 0.02) gives near-uniform next-token distributions; a larger spread makes the tests'
    # comparisons sensitive to mistakes (wrong position, wrong mask) instead of all values looking alike.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(path, keep="config.json") as tmp:  # another process that finished first: keep theirs
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return path

"""The checkpoint both peers load: a SmolLM2-135M-shaped Llama with random bf16 weights, written by
transformers in the Hugging Face layout (config.json, model.safetensors) with a small byte-level
BPE tokenizer, so each system reads it the way it reads any model from the Hub. Speed does not
depend on what the weights say; the tokenizer only matters for the serving client's prompts.
"""
from __future__ import annotations

import glob
import sysconfig
from pathlib import Path

SMOLLM2_135M = dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                    num_key_value_heads=3, intermediate_size=1536, vocab_size=49152,
                    tie_word_embeddings=True, max_position_embeddings=2048, rope_theta=100000.0,
                    rms_norm_eps=1e-5, hidden_act="silu", bos_token_id=1, eos_token_id=2,
                    pad_token_id=0, head_dim=64)
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]  # ids 0..3, as in the config above


def write_checkpoint(directory: Path, seed: int = 0) -> Path:
    """Write the checkpoint into `directory` unless a complete one is already there."""
    directory = Path(directory)
    if (directory / "config.json").is_file() and (directory / "tokenizer.json").is_file():
        return directory
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M, torch_dtype="bfloat16")).to(torch.bfloat16)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer_file = directory / "tokenizer.json"
    train_tokenizer().save(str(tokenizer_file))
    PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file), bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>", pad_token="<pad>").save_pretrained(directory)
    return directory


def train_tokenizer(vocab_size: int = 8000, num_files: int = 60):
    """A byte-level BPE trained on some of Python's own standard library (text at hand offline)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    files = sorted(glob.glob(f"{sysconfig.get_paths()['stdlib']}/*.py"))[:num_files]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train(files, trainer)
    return tokenizer

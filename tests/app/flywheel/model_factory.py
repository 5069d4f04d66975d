"""A tiny random chat model directory (ChatML tokenizer trained on the demo corpus) for fast
flywheel tests; the real demo model is used by the proof benchmark."""
from __future__ import annotations

from pathlib import Path

import torch

from app.demo.corpus import generate_corpus
from app.demo.tokenizer_builder import IM_END, train_tokenizer
from model.checkpoint_writer import save_checkpoint
from model.llama import LlamaForCausalLM
from model.tokenizer import Tokenizer
from shared import ModelConfig


def tiny_chat_model(directory: Path, seed: int = 0) -> Path:
    tok_dir = directory / "tokenizer"
    texts = [m["content"] for conv in generate_corpus(300, seed=1) for m in conv]
    texts += ["Zorvania Quillport Bramoria Tessvik Kelthar Ombrel"] * 3
    train_tokenizer(texts, 400, tok_dir)
    eos = Tokenizer.from_dir(tok_dir).encode(IM_END, add_bos=False)[0]
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, bos_token_id=None, eos_token_ids=[eos])
    return save_checkpoint(LlamaForCausalLM(config), config, directory / "model", tok_dir)

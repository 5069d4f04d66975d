"""The model layer: Llama-family decoders, checkpoint loaders, tokenizers, registry, evaluation."""

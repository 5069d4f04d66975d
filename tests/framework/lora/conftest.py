"""LoRA serving tests use tiny models: one intra-op thread is fastest (and fair on a shared box)."""
import torch

torch.set_num_threads(1)

"""Training: SFT, DPO and KTO losses, LoRA or full fine-tuning, data parallel over gloo.

The trainer runs any `shared.CausalLM`; it knows nothing about tokenizers, files or registries.
Callers turn their data into token-id examples (`framework.train.data`) and save the result.
"""
from framework.train.config import TrainConfig
from framework.train.data import KTOExample, PreferenceExample, SFTExample
from framework.train.distributed import DistContext
from framework.train.lora import apply_lora, merge_lora
from framework.train.trainer import TrainResult, train

__all__ = ["DistContext", "KTOExample", "PreferenceExample", "SFTExample", "TrainConfig",
           "TrainResult", "apply_lora", "merge_lora", "train"]

"""Contracts between the layers: dataclasses, protocols and enums only.

Every layer imports this package; it imports none of them (and no torch at runtime).
"""
from shared.device import DeviceProfile
from shared.engine_config import EngineConfig
from shared.lora_request import LoRARequest
from shared.model_config import ModelConfig
from shared.model_protocol import CausalLM
from shared.outputs import CompletionOutput, Logprob, RequestOutput
from shared.sampling_params import SamplingParams
from shared.speculative_config import SpeculativeConfig, SpeculativeMethod
from shared.stats import EngineStats
from shared.structured_outputs import StructuredOutputKind, StructuredOutputsParams
from shared.tokenizer_protocol import TokenizerLike

__all__ = [
    "CausalLM",
    "CompletionOutput",
    "DeviceProfile",
    "EngineConfig",
    "EngineStats",
    "Logprob",
    "LoRARequest",
    "ModelConfig",
    "RequestOutput",
    "SamplingParams",
    "SpeculativeConfig",
    "SpeculativeMethod",
    "StructuredOutputKind",
    "StructuredOutputsParams",
    "TokenizerLike",
]

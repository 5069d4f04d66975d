"""Engine settings, built at the entry point and passed down; never written back."""
from __future__ import annotations

from dataclasses import dataclass

from shared.speculative_config import SpeculativeConfig


@dataclass(slots=True)
class EngineConfig:
    block_size: int = 16  # tokens per KV-cache block
    max_num_seqs: int = 256  # sequences in one step
    max_num_batched_tokens: int = 2048  # tokens (decode + prefill chunks) in one step
    max_model_len: int | None = None  # None: the model's max_position_embeddings
    kv_cache_memory_bytes: int | None = None  # None: a fraction of device memory (see below)
    kv_cache_memory_fraction: float = 0.2
    num_kv_blocks: int | None = None  # explicit pool size; overrides the memory budget (tests)
    enable_prefix_caching: bool = True
    enable_chunked_prefill: bool = True
    dtype: str = "auto"  # "auto": the checkpoint's dtype; or float32 / bfloat16 / float16
    device: str = "auto"  # "auto": cuda when present, else cpu
    num_threads: int | None = None  # CPU intra-op threads; None: torch's default
    priority_aging_steps: int = 64  # a waiting request gains one priority level per this many steps
    max_queue_len: int = 4096  # requests waiting before add_request refuses (HTTP 429)
    # Where the seeds of requests that bring none come from. None (default): fresh entropy at each
    # start, so unseeded requests differ across restarts too; an int replays one start's draws.
    seed: int | None = None
    quantization: str | None = None  # "int8": weight-only int8 decoder linears (CPU decode speed)
    enable_lora: bool = False  # serve LoRA adapters per request (slots on q/k/v/o/gate/up/down)
    max_loras: int = 4  # adapters in one batch (device slots; the least recently used is evicted)
    max_lora_rank: int = 16  # the largest adapter rank a slot holds
    # speculative decoding (a dict of vLLM's keys is converted); None: off
    speculative_config: SpeculativeConfig | dict | None = None

    def __post_init__(self) -> None:
        for name in ("block_size", "max_num_seqs", "max_num_batched_tokens", "priority_aging_steps",
                     "max_queue_len"):
            if getattr(self, name) <= 0:
                raise ValueError(f"EngineConfig.{name} must be positive, got {getattr(self, name)}")
        if self.num_kv_blocks is not None and self.num_kv_blocks <= 0:
            raise ValueError(f"EngineConfig.num_kv_blocks must be positive, got {self.num_kv_blocks}")
        if not 0.0 < self.kv_cache_memory_fraction <= 0.95:
            raise ValueError("EngineConfig.kv_cache_memory_fraction must be in (0, 0.95]")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"EngineConfig.dtype must be auto/float32/bfloat16/float16, got {self.dtype!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)):
            raise ValueError(f"EngineConfig.seed must be an int or None, got {self.seed!r}")
        if self.quantization not in (None, "int8"):
            raise ValueError(f"EngineConfig.quantization must be None or 'int8', got {self.quantization!r}")
        if self.max_loras < 1 or self.max_lora_rank < 1:
            raise ValueError(f"EngineConfig.max_loras and max_lora_rank must be >= 1, got "
                             f"{self.max_loras} and {self.max_lora_rank}")
        if isinstance(self.speculative_config, dict):
            self.speculative_config = SpeculativeConfig.from_dict(self.speculative_config)

"""Numbers the engine reports after every step (and cumulatively) for metrics and the report card."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class EngineStats:
    num_running: int = 0
    num_waiting: int = 0
    num_kv_blocks_used: int = 0
    num_kv_blocks_total: int = 0
    num_batched_tokens: int = 0  # tokens computed in the last step
    step_time_s: float = 0.0
    mfu: float = 0.0  # model FLOP utilization of the last step against the device profile
    mbu: float = 0.0  # memory bandwidth utilization of the last step
    # Cumulative counters since the engine started.
    num_steps: int = 0
    num_preemptions: int = 0
    num_prompt_tokens: int = 0
    num_generation_tokens: int = 0
    num_prefix_cache_queries: int = 0  # prompt tokens looked up in the prefix cache
    num_prefix_cache_hits: int = 0  # of which found cached
    num_aborted: int = 0
    num_finished: int = 0
    # speculative decoding: rows verified (one per speculating sequence per step), draft tokens
    # proposed in them, and of those accepted by the target (vLLM's spec_decode_num_* counters)
    num_spec_drafts: int = 0
    num_spec_draft_tokens: int = 0
    num_spec_accepted_tokens: int = 0

    @property
    def kv_cache_usage(self) -> float:
        return self.num_kv_blocks_used / self.num_kv_blocks_total if self.num_kv_blocks_total else 0.0

    @property
    def prefix_cache_hit_rate(self) -> float:
        q = self.num_prefix_cache_queries
        return self.num_prefix_cache_hits / q if q else 0.0

    @property
    def spec_acceptance_rate(self) -> float:
        drafted = self.num_spec_draft_tokens
        return self.num_spec_accepted_tokens / drafted if drafted else 0.0

    @property
    def spec_tokens_per_pass(self) -> float:
        """Tokens a speculating sequence gains per target forward pass (1 without speculation)."""
        drafts = self.num_spec_drafts
        return (drafts + self.num_spec_accepted_tokens) / drafts if drafts else 0.0

"""The inference engine: continuous batching with dynamic insertion over a paged KV cache.

`LLMEngine` is the synchronous core (add_request / step / abort); `AsyncEngine` streams from an
asyncio event loop. The engine takes a `shared.CausalLM` and a `shared.TokenizerLike`; it never
imports `model/` or `app/`.
"""
from framework.engine.async_engine import AsyncEngine
from framework.engine.llm_engine import LLMEngine, QueueFullError

__all__ = ["AsyncEngine", "LLMEngine", "QueueFullError"]

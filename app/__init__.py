"""The product layer. `from app import LLM, SamplingParams` gives vLLM-style offline generation;
heavy imports (torch, the engine) happen on first use, so `import app` stays light."""
from shared import SamplingParams, StructuredOutputsParams

__all__ = ["LLM", "SamplingParams", "StructuredOutputsParams"]


def __getattr__(name: str):
    if name == "LLM":
        from app.llm import LLM

        return LLM
    raise AttributeError(f"module 'app' has no attribute {name!r}")

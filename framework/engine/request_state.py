"""What the engine remembers about one request between steps, and how it is reported."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from framework.engine.detokenizer import Detokenizer
from framework.engine.prompt_logprobs import PromptLogprobsChunk
from framework.engine.sequence import Sequence
from shared import CompletionOutput, Logprob, LoRARequest, RequestOutput, SamplingParams

if TYPE_CHECKING:
    from xgrammar import CompiledGrammar  # imported lazily by framework.engine.structured


@dataclass(slots=True)
class RequestState:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    params: SamplingParams
    priority: int
    arrival_time: float  # time.perf_counter() when added
    detokenizers: list[Detokenizer]  # one per sample
    seqs: list[Sequence] = field(default_factory=list)  # the n samples, or the parent before forking
    output_token_ids: list[list[int]] = field(default_factory=list)  # per sample
    logprobs: list[list[dict[int, Logprob]]] = field(default_factory=list)  # per sample
    first_token_time: float | None = None
    # prompt_logprobs requests: one entry per prompt token scored so far (the first is None)
    prompt_logprobs: list[dict[int, Logprob] | None] = field(default_factory=list)
    # structured outputs: the compiled grammar every sample follows (None: free text)
    grammar: CompiledGrammar | None = None
    lora_request: LoRARequest | None = None  # the adapter this request runs under (None: base)

    def __post_init__(self) -> None:
        n = self.params.n
        self.output_token_ids = [[] for _ in range(n)]
        self.logprobs = [[] for _ in range(n)]
        self.prompt_logprobs = [None]

    def add_prompt_logprobs(self, chunk: PromptLogprobsChunk) -> None:
        """Chunks come in prompt order; a recomputed (preempted) prefix overwrites its entries."""
        first = chunk.first_token_index
        assert first <= len(self.prompt_logprobs), f"prompt logprobs gap before token {first}"
        self.prompt_logprobs[first:first + len(chunk.entries)] = chunk.entries

    @property
    def finished(self) -> bool:
        return all(d.finished for d in self.detokenizers)

    def to_output(self) -> RequestOutput:
        """A cumulative snapshot: everything generated so far (copies, safe to hand out)."""
        want_logprobs = self.params.logprobs is not None
        outputs = [
            CompletionOutput(index=i, text=d.visible_text(), token_ids=list(self.output_token_ids[i]),
                             logprobs=list(self.logprobs[i]) if want_logprobs else None,
                             finish_reason=d.finish_reason, stop_reason=d.stop_reason)
            for i, d in enumerate(self.detokenizers)]
        latency = None if self.first_token_time is None else self.first_token_time - self.arrival_time
        cached = max((s.num_cached_tokens for s in self.seqs), default=0)
        return RequestOutput(self.request_id, self.prompt, list(self.prompt_token_ids), outputs,
                             finished=self.finished, first_token_latency=latency,
                             num_cached_tokens=min(cached, len(self.prompt_token_ids)),
                             prompt_logprobs=self._prompt_logprobs_so_far())

    def _prompt_logprobs_so_far(self) -> list[dict[int, Logprob] | None] | None:
        if self.params.prompt_logprobs is None:
            return None
        return list(self.prompt_logprobs)

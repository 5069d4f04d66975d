"""What the engine remembers about one request between steps, and how it is reported."""
from __future__ import annotations

from dataclasses import dataclass, field

from framework.engine.detokenizer import Detokenizer
from framework.engine.sequence import Sequence
from shared import CompletionOutput, Logprob, RequestOutput, SamplingParams


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

    def __post_init__(self) -> None:
        n = self.params.n
        self.output_token_ids = [[] for _ in range(n)]
        self.logprobs = [[] for _ in range(n)]

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
                             num_cached_tokens=min(cached, len(self.prompt_token_ids)))

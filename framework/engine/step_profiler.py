"""Where an engine step's wall time goes: linears, attention, LM head, sampler, other layers, rest.

Opt-in and temporary. `StepProfiler(engine)` is a context manager: while it is open, forward hooks
time the model's framework layers and wrappers time the LM head, the sampler and the fused q/k/v
and gate/up matmuls; on exit every hook and wrapper is removed, so an engine that is not being
profiled pays nothing. A step has ~280 timed regions at SmolLM2-135M's 30 layers; measured on the
loaded 2-core host (process CPU time, profiled and plain steps alternating): within noise (+-3%)
for a 64-row decode step, 5-9 ms (8-17%) of a batch-1 one. Most of that cost falls outside the
timed regions, so it inflates the rest (Python/scheduling), not the layers.

Timers read the wall clock around ops that run synchronously on CPU; on CUDA every timer
synchronizes, which slows the step but keeps the attribution honest. They also read the
process's CPU time (all threads): on a shared host, wall time includes waiting for a core, CPU
time much less. Nested regions count once,
for the outermost (an untied LM head is a `Linear` inside `compute_logits`: LM head). The part no
timer covers -- scheduling, input preparation, postprocessing and detokenization, and the Python
between layers -- is the step's rest, `StepPart.PYTHON`, so the parts always add up to the step.

It knows the layer classes of `framework.layers`, never a model's own modules: the fused matmuls
are caught where `framework.layers.linear.grouped_linear` calls `linear_packed` or (decode rows)
`grouped_gemv`. Those hooks are process-wide, so profile one engine at a time.
"""
from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from framework.layers import Attention, Embedding, Linear, RMSNorm, RotaryEmbedding, SiluAndMul
from framework.layers import linear as linear_module


class StepPart(enum.Enum):
    LINEARS = "linears (qkv/o/gate-up/down)"
    ATTENTION = "attention (KV write + paged)"
    LM_HEAD = "lm head"
    SAMPLER = "sampler"
    OTHER_LAYERS = "norms/rotary/act/embed"
    PYTHON = "python/scheduling (rest)"


LAYER_PARTS = {Linear: StepPart.LINEARS, Attention: StepPart.ATTENTION,
               RMSNorm: StepPart.OTHER_LAYERS, RotaryEmbedding: StepPart.OTHER_LAYERS,
               SiluAndMul: StepPart.OTHER_LAYERS, Embedding: StepPart.OTHER_LAYERS}


@dataclass(slots=True)
class StepTiming:
    num_new_tokens: list[int]  # per scheduled sequence, tokens computed this step
    context_lens: list[int]  # per scheduled sequence, tokens in its KV after this step
    num_logit_rows: int  # rows through the LM head (sampled rows, prompt-logprob rows)
    wall_s: float  # the whole engine.step(), as its caller sees it
    seconds: dict[StepPart, float] = field(default_factory=dict)  # adds up to wall_s
    cpu_s: float = 0.0  # process CPU time of the step, every thread
    cpu_seconds: dict[StepPart, float] = field(default_factory=dict)  # adds up to cpu_s

    @property
    def is_decode(self) -> bool:
        """Every sequence computed one token (a step with any prefill chunk counts as prefill)."""
        return all(n == 1 for n in self.num_new_tokens)


class _Clock:
    """Wall and CPU time per part; only the outermost of nested regions counts."""

    def __init__(self, sync: Callable[[], None]) -> None:
        self.sync, self.depth, self.part, self.started, self.cpu_started = sync, 0, None, 0.0, 0.0
        self.reset()

    def reset(self) -> None:
        self.depth = 0
        self.totals, self.cpu_totals = dict.fromkeys(StepPart, 0.0), dict.fromkeys(StepPart, 0.0)

    def enter(self, part: StepPart) -> None:
        if self.depth == 0:
            self.sync()
            self.part = part
            self.started, self.cpu_started = time.perf_counter(), time.process_time()
        self.depth += 1

    def leave(self) -> None:
        self.depth -= 1
        if self.depth == 0:
            self.sync()
            self.totals[self.part] += time.perf_counter() - self.started
            self.cpu_totals[self.part] += time.process_time() - self.cpu_started

    def wrap(self, fn: Callable, part: StepPart) -> Callable:
        def timed(*args, **kwargs):
            self.enter(part)
            try:
                return fn(*args, **kwargs)
            finally:
                self.leave()
        return timed


class _TimedSampler:
    """Stands in for the runner's sampler (a callable object, so it cannot be wrapped in place)."""

    def __init__(self, sampler, clock: _Clock) -> None:
        self._sampler, self._call = sampler, clock.wrap(sampler, StepPart.SAMPLER)

    def __call__(self, *args, **kwargs):
        return self._call(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._sampler, name)


class StepProfiler:
    """`with StepProfiler(engine) as profiler: engine.step() ...`; then `profiler.steps`."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.steps: list[StepTiming] = []
        device = engine.model_runner.device
        sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
        self._clock = _Clock(sync)
        self._undo: list[Callable[[], None]] = []
        self._batch: tuple[list[int], list[int]] = ([], [])
        self._logit_rows = 0

    def __enter__(self) -> StepProfiler:
        engine, runner, clock = self.engine, self.engine.model_runner, self._clock
        for module in engine.model.modules():
            part = LAYER_PARTS.get(type(module))
            if part is not None:
                pre = module.register_forward_pre_hook(lambda m, args, part=part: clock.enter(part))
                post = module.register_forward_hook(lambda m, args, out: clock.leave())
                self._undo += [pre.remove, post.remove]
        self._patch(linear_module, "linear_packed", clock.wrap(linear_module.linear_packed,
                                                                StepPart.LINEARS))
        self._patch(linear_module, "grouped_gemv", clock.wrap(linear_module.grouped_gemv,
                                                               StepPart.LINEARS))  # bf16, 1-8 rows
        self._patch(engine.model, "compute_logits", clock.wrap(self._count_rows(
            engine.model.compute_logits), StepPart.LM_HEAD))
        self._patch(runner, "sampler", _TimedSampler(runner.sampler, clock))
        self._patch(runner, "run", self._capture_batch(runner.run))
        self._patch(engine, "step", self._timed_step(engine.step))
        return self

    def __exit__(self, *exc) -> None:
        while self._undo:
            self._undo.pop()()

    def _patch(self, owner, name: str, replacement) -> None:
        """Replace `owner.name` until exit. Where the name came from the class (a method), the
        instance attribute that shadows it is deleted again."""
        own = name in vars(owner)
        original = getattr(owner, name)
        setattr(owner, name, replacement)
        self._undo.append((lambda: setattr(owner, name, original)) if own
                          else (lambda: delattr(owner, name)))

    def _count_rows(self, compute_logits: Callable) -> Callable:
        def counted(hidden: torch.Tensor) -> torch.Tensor:
            self._logit_rows += hidden.shape[0]
            return compute_logits(hidden)
        return counted

    def _capture_batch(self, run: Callable) -> Callable:
        def captured(scheduled):
            # before the step advances the sequences: what this step computes
            self._batch = (list(scheduled.num_new_tokens),
                           [seq.num_computed_tokens + n
                            for seq, n in zip(scheduled.seqs, scheduled.num_new_tokens)])
            return run(scheduled)
        return captured

    def _timed_step(self, step: Callable) -> Callable:
        def timed():
            self._clock.reset()
            self._batch, self._logit_rows = ([], []), 0
            self._clock.sync()
            started, cpu_started = time.perf_counter(), time.process_time()
            outputs = step()
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            if self._batch[0]:  # a step that computed something
                self.steps.append(StepTiming(*self._batch, self._logit_rows, wall,
                                             _with_rest(self._clock.totals, wall), cpu,
                                             _with_rest(self._clock.cpu_totals, cpu)))
            return outputs
        return timed


def _with_rest(timed: dict[StepPart, float], whole: float) -> dict[StepPart, float]:
    """The timed parts, and the rest of `whole` as PYTHON."""
    parts = dict(timed)
    parts[StepPart.PYTHON] = max(0.0, whole - sum(parts.values()))
    return parts

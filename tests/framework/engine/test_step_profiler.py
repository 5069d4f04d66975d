"""StepProfiler: each part of a step is charged to the right category (checked by slowing one part
down by a known amount), the parts add up to the step, and profiling leaves no trace."""
from __future__ import annotations

import time

import pytest
import torch

from framework.engine.sampler import Sampler
from framework.engine.step_profiler import StepPart, StepProfiler
from framework.layers import Attention, Linear
from framework.layers import linear as linear_module
from shared import SamplingParams
from tests.utils.engine import create_engine, create_model

SLEEP_S = 0.02
PROMPTS = [list(range(10, 23)), list(range(40, 45)), list(range(60, 90))]


def add_requests(engine, max_tokens: int = 3) -> None:
    for i, prompt in enumerate(PROMPTS):
        engine.add_request(f"r{i}", prompt, SamplingParams(temperature=0.0, max_tokens=max_tokens,
                                                           ignore_eos=True))


def run_to_end(engine) -> tuple[dict[str, list[int]], list[float]]:
    """Token ids per request, and each step's wall time as the caller measures it."""
    tokens, walls = {}, []
    while engine.has_unfinished_requests():
        started = time.perf_counter()
        outputs = engine.step()
        walls.append(time.perf_counter() - started)
        tokens.update({out.request_id: out.outputs[0].token_ids for out in outputs})
    return tokens, walls


class SlowSampler:
    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    def __call__(self, logits, seqs):
        time.sleep(SLEEP_S)
        return self.sampler(logits, seqs)


def sleep_hook(module, args, output) -> None:
    time.sleep(SLEEP_S)


def test_known_delays_land_in_their_parts_and_parts_add_up_to_the_step():
    # untied: a Linear LM head runs inside compute_logits
    model = create_model(seed=3, tie_word_embeddings=False)
    engine = create_engine(model)
    engine.model_runner.sampler = SlowSampler(engine.model_runner.sampler)
    handles = [m.register_forward_hook(sleep_hook)
               for m in model.modules() if isinstance(m, Attention)]
    handles.append(model.lm_head.register_forward_hook(sleep_hook))
    try:
        add_requests(engine)
        with StepProfiler(engine) as profiler:
            _, walls = run_to_end(engine)
    finally:
        for handle in handles:
            handle.remove()
    layers = model.config.num_hidden_layers
    assert len(profiler.steps) == len(walls) == 3  # one prefill step, two decode steps
    assert [s.is_decode for s in profiler.steps] == [False, True, True]
    assert profiler.steps[0].num_new_tokens == [13, 5, 30]
    assert profiler.steps[1].context_lens == [14, 6, 31]
    for step, wall in zip(profiler.steps, walls):
        assert step.num_logit_rows == 3
        assert step.wall_s <= wall
        assert sum(step.seconds.values()) == pytest.approx(step.wall_s, rel=1e-9)
        assert sum(step.cpu_seconds.values()) == pytest.approx(step.cpu_s, rel=1e-9)
        assert min(step.seconds.values()) >= 0 and min(step.cpu_seconds.values()) >= 0
        assert step.seconds[StepPart.SAMPLER] >= SLEEP_S
        assert step.cpu_seconds[StepPart.SAMPLER] < SLEEP_S / 2  # sleeping takes no CPU
        assert step.seconds[StepPart.ATTENTION] >= layers * SLEEP_S
        assert step.seconds[StepPart.LM_HEAD] >= SLEEP_S  # the nested Linear counts once, here
        assert step.seconds[StepPart.LINEARS] < SLEEP_S
        assert 0 < step.seconds[StepPart.OTHER_LAYERS] < SLEEP_S


def test_fused_bf16_matmuls_count_as_linears(monkeypatch):
    model = create_model(seed=4, dtype=torch.bfloat16)
    engine = create_engine(model)
    real = linear_module.linear_packed

    def slow_linear_packed(*args):
        time.sleep(SLEEP_S / 4)
        return real(*args)

    monkeypatch.setattr(linear_module, "linear_packed", slow_linear_packed)
    real_gemv = linear_module.grouped_gemv  # the decode steps' (1-8 rows) fused path

    def slow_grouped_gemv(*args):
        time.sleep(SLEEP_S / 4)
        return real_gemv(*args)

    monkeypatch.setattr(linear_module, "grouped_gemv", slow_grouped_gemv)
    add_requests(engine, max_tokens=2)
    with StepProfiler(engine) as profiler:
        run_to_end(engine)
    fused_calls = 2 * model.config.num_hidden_layers  # q/k/v and gate/up per layer
    for step in profiler.steps:
        assert step.seconds[StepPart.LINEARS] >= fused_calls * SLEEP_S / 4
        assert step.seconds[StepPart.OTHER_LAYERS] < SLEEP_S / 4


def test_profiling_changes_no_output_and_leaves_nothing_behind():
    model = create_model(seed=5)
    plain = create_engine(model)
    add_requests(plain, max_tokens=6)
    expected, _ = run_to_end(plain)

    engine = create_engine(model)
    runner = engine.model_runner
    sampler, packed = runner.sampler, linear_module.linear_packed
    add_requests(engine, max_tokens=6)
    with StepProfiler(engine) as profiler:
        got, _ = run_to_end(engine)
    assert got == expected and len(profiler.steps) == 6
    assert runner.sampler is sampler and linear_module.linear_packed is packed
    assert not {"step", "run", "compute_logits"} & (set(vars(engine)) | set(vars(runner))
                                                    | set(vars(model)))
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert any(isinstance(m, Linear) for m in model.modules())

"""Requests end cleanly: abort and completion return every block; bad input is refused up front."""
import pytest
import torch

from shared import SamplingParams
from tests.utils.byte_tokenizer import EOS, ByteTokenizer
from tests.utils.engine import create_engine, create_model, run_alone


@pytest.fixture(scope="module")
def model():
    return create_model(seed=2)


def _drain(engine):
    finished = {}
    while engine.has_unfinished_requests():
        for out in engine.step():
            if out.finished:
                finished[out.request_id] = out
    return finished


def _pool_is_pristine(engine) -> bool:
    manager = engine.block_manager
    return (not any(manager.ref_counts) and manager.num_free_blocks == manager.num_blocks
            and not engine.scheduler.running and not engine.scheduler.waiting and not engine.requests)


def test_abort_mid_generation_returns_every_block(model):
    engine = create_engine(model)
    engine.add_request("keep", "abc", SamplingParams(temperature=0, max_tokens=6, ignore_eos=True))
    engine.add_request("drop", "x" * 40, SamplingParams(temperature=0.7, n=3, max_tokens=50, seed=1))
    for _ in range(4):
        engine.step()
    assert engine.block_manager.num_used_blocks > 0
    engine.abort("drop")
    outputs = {o.request_id: o for o in engine.step()}
    assert outputs["drop"].finished
    assert [c.finish_reason for c in outputs["drop"].outputs] == ["abort"] * 3
    _drain(engine)
    assert _pool_is_pristine(engine)
    assert engine.stats.num_aborted == 1


def test_abort_while_waiting_and_unknown_ids(model):
    engine = create_engine(model, max_num_seqs=1)
    engine.add_request("a", "hello", SamplingParams(max_tokens=3))
    engine.add_request("b", "world", SamplingParams(max_tokens=3))
    engine.step()
    engine.abort("b")  # still waiting
    engine.abort("never-added")
    _drain(engine)
    assert _pool_is_pristine(engine)


def test_full_run_leaves_the_pool_as_it_began(model):
    engine = create_engine(model, num_kv_blocks=40, max_num_batched_tokens=16)
    for i in range(10):
        engine.add_request(f"r{i}", "shared prefix! " + "y" * i, SamplingParams(max_tokens=8, n=1 + i % 3))
    finished = _drain(engine)
    assert len(finished) == 10 and _pool_is_pristine(engine)
    assert engine.stats.num_prefix_cache_hits > 0  # the cached blocks stay findable after free


@pytest.mark.parametrize("prompt, params, message", [
    ("z" * 600, SamplingParams(), "context"),
    ([], SamplingParams(), "BOS"),
    ([1, 2, 300], SamplingParams(), "token ids"),
    ("ok", "not params", "SamplingParams"),
    ("ok", SamplingParams(logit_bias={300: 1.0}), "logit_bias"),
])
def test_bad_input_is_refused_before_scheduling(model, prompt, params, message):
    engine = create_engine(model, tokenizer=ByteTokenizer(with_bos=False), max_model_len=512)
    with pytest.raises(ValueError, match=message):
        engine.add_request("bad", prompt, params)
    assert _pool_is_pristine(engine) and not engine.has_unfinished_requests()


def test_absurd_params_are_refused_even_after_mutation(model):
    for bad in (dict(temperature=-1.0), dict(max_tokens=0), dict(top_p=0.0), dict(n=0),
                dict(max_tokens=2, min_tokens=5), dict(logprobs=-1)):
        with pytest.raises(ValueError):
            SamplingParams(**bad)
    params = SamplingParams()
    params.max_tokens = -5
    engine = create_engine(model)
    with pytest.raises(ValueError, match="max_tokens"):
        engine.add_request("mutated", "hi", params)
    engine.add_request("dup", "hi", SamplingParams(max_tokens=2))
    with pytest.raises(ValueError, match="already"):
        engine.add_request("dup", "hi", SamplingParams(max_tokens=2))
    _drain(engine)
    assert _pool_is_pristine(engine)


def test_empty_prompt_starts_from_bos(model):
    engine = create_engine(model)
    engine.add_request("empty", "", SamplingParams(max_tokens=2))
    assert _drain(engine)["empty"].prompt_token_ids == [256]


def test_stop_token_ids_min_tokens_and_length(model):
    prompt = ByteTokenizer().encode("stop here")
    free_run = run_alone(model, prompt, SamplingParams(temperature=0, max_tokens=12, ignore_eos=True))[0]
    stop_at = free_run[3]
    first = free_run.index(stop_at)
    engine = create_engine(model)
    engine.add_request("stop", prompt, SamplingParams(temperature=0, max_tokens=12, ignore_eos=True,
                                                      stop_token_ids=[stop_at]))
    engine.add_request("len", prompt, SamplingParams(temperature=0, max_tokens=5, ignore_eos=True))
    engine.add_request("min", prompt, SamplingParams(temperature=0, max_tokens=12, ignore_eos=True,
                                                     stop_token_ids=[free_run[0]], min_tokens=4))
    out = _drain(engine)
    stopped = out["stop"].outputs[0]
    assert stopped.token_ids == free_run[:first + 1]
    assert (stopped.finish_reason, stopped.stop_reason) == ("stop", stop_at)
    assert out["len"].outputs[0].token_ids == free_run[:5]
    assert out["len"].outputs[0].finish_reason == "length"
    min_run = out["min"].outputs[0].token_ids
    assert len(min_run) >= 4 and free_run[0] not in min_run[:3]


def test_eos_ends_generation_unless_ignored():
    # Make EOS the only likely token: strongly bias the output head toward it.
    biased = create_model(seed=2)
    with torch.no_grad():
        biased.model.embed_tokens.weight[EOS] *= 0
        biased.model.embed_tokens.weight[EOS] += biased.model.norm.weight * 50
    engine = create_engine(biased)
    engine.add_request("eos", "hi", SamplingParams(temperature=0, max_tokens=10))
    engine.add_request("ignore", "hi", SamplingParams(temperature=0, max_tokens=10, ignore_eos=True))
    out = _drain(engine)
    assert out["eos"].outputs[0].finish_reason == "stop" and out["eos"].outputs[0].token_ids[-1] == EOS
    assert out["ignore"].outputs[0].finish_reason == "length"
    assert len(out["ignore"].outputs[0].token_ids) == 10


def test_n_samples_share_the_prompt_and_match_single_seeded_runs(model):
    prompt = ByteTokenizer().encode("a prompt that spans a few blocks")
    params = SamplingParams(temperature=1.5, n=3, seed=11, max_tokens=10, ignore_eos=True)
    together = run_alone(model, prompt, params)
    singles = [run_alone(model, prompt, SamplingParams(temperature=1.5, seed=11 + i, max_tokens=10,
                                                       ignore_eos=True))[0] for i in range(3)]
    assert together == singles
    assert len({tuple(t) for t in together}) > 1

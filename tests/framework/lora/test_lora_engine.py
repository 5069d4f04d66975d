"""Adapters served in the batch: every request's tokens and logprobs equal those of the model with
its adapter merged into the weights (the reference), whatever else shares the step."""
from __future__ import annotations

import copy

import pytest
import torch

from shared import LoRARequest, SamplingParams
from tests.utils.engine import create_engine, create_model
from tests.utils.lora import merged_copy, write_random_adapter

MAX_TOKENS = 12


@pytest.fixture(scope="module")
def base():
    return create_model(seed=3)


@pytest.fixture(scope="module")
def adapters(base, tmp_path_factory):
    """Two adapters of different ranks and scalings: (LoRARequest, merged reference model)."""
    root = tmp_path_factory.mktemp("adapters")
    out = {}
    for lora_id, (name, rank, alpha) in enumerate([("alpha", 8, 16.0), ("beta", 4, 4.0)], start=1):
        weights = write_random_adapter(base, root / name, rank, alpha, seed=lora_id)
        out[name] = (LoRARequest(name, lora_id, str(root / name)), merged_copy(base, weights))
    return out


def _serve(engine, jobs, params) -> dict[str, object]:
    """jobs: request id -> (prompt, LoRARequest or None), all queued before the first step."""
    for request_id, (prompt, lora) in jobs.items():
        engine.add_request(request_id, prompt, params, lora_request=lora)
    done = {}
    while engine.has_unfinished_requests():
        for out in engine.step():
            if out.finished:
                done[out.request_id] = out
    return done


def _prompts(num: int, length: int, seed: int, shared_prefix: int = 0) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed)
    prefix = torch.randint(0, 256, (shared_prefix,), generator=gen).tolist()
    return [prefix + torch.randint(0, 256, (length - shared_prefix,), generator=gen).tolist()
            for _ in range(num)]


GREEDY = SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0, ignore_eos=True, logprobs=3,
                        prompt_logprobs=1)


def _reference(model, prompt) -> object:
    return _serve(create_engine(model), {"ref": (prompt, None)}, GREEDY)["ref"]


def _assert_same(out, ref) -> None:
    assert out.outputs[0].token_ids == ref.outputs[0].token_ids
    for got, want in zip(out.outputs[0].logprobs, ref.outputs[0].logprobs):
        for token_id, logprob in want.items():
            assert got[token_id].logprob == pytest.approx(logprob.logprob, abs=2e-4)
    for got, want in zip((out.prompt_logprobs or [])[1:], (ref.prompt_logprobs or [])[1:]):
        for token_id, logprob in want.items():
            assert got[token_id].logprob == pytest.approx(logprob.logprob, abs=2e-4)


def test_a_batch_mixing_base_and_two_adapters_matches_the_merged_models(base, adapters):
    # Same-prefix prompts: a prefix cache shared across adapters would hand one adapter the
    # other's KV and change its tokens.
    prompts = _prompts(6, 21, seed=0, shared_prefix=12)
    loras = [None, adapters["alpha"][0], adapters["beta"][0]] * 2
    engine = create_engine(base, enable_lora=True, max_loras=2, max_lora_rank=8)
    done = _serve(engine, {f"r{i}": (p, lora) for i, (p, lora) in enumerate(zip(prompts, loras))},
                  GREEDY)
    references = {None: base, "alpha": adapters["alpha"][1], "beta": adapters["beta"][1]}
    for i, (prompt, lora) in enumerate(zip(prompts, loras)):
        _assert_same(done[f"r{i}"], _reference(references[lora and lora.lora_name], prompt))
    # the adapters change the model: the merged models disagree with the base on these prompts
    assert done["r1"].outputs[0].token_ids != _reference(base, prompts[1]).outputs[0].token_ids


def test_the_prefix_cache_is_shared_within_an_adapter_and_never_across(base, adapters):
    prompt = _prompts(1, 24, seed=1)[0]
    alpha = adapters["alpha"][0]
    engine = create_engine(base, enable_lora=True, max_loras=2, max_lora_rank=8)
    cacheable = SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0, ignore_eos=True, logprobs=3)
    first = _serve(engine, {"base": (prompt, None)}, cacheable)["base"]
    under_alpha = _serve(engine, {"a1": (prompt, alpha)}, cacheable)["a1"]
    again = _serve(engine, {"a2": (prompt, alpha)}, cacheable)["a2"]
    assert first.num_cached_tokens == 0 and under_alpha.num_cached_tokens == 0
    assert again.num_cached_tokens > 0  # the same adapter and prompt: cached
    _assert_same(under_alpha, _reference(adapters["alpha"][1], prompt))
    _assert_same(again, under_alpha)


def test_more_adapters_than_slots_wait_their_turn_and_the_lru_one_is_evicted(base, adapters,
                                                                             tmp_path):
    weights = write_random_adapter(base, tmp_path / "gamma", 8, 8.0, seed=9)
    gamma = LoRARequest("gamma", 3, str(tmp_path / "gamma"))
    alpha, beta = adapters["alpha"][0], adapters["beta"][0]
    engine = create_engine(base, enable_lora=True, max_loras=2, max_lora_rank=8)
    prompts = _prompts(3, 9, seed=2)
    # three adapters in one burst, two slots: gamma waits for a slot, then takes alpha's (LRU)
    done = _serve(engine, {"a": (prompts[0], alpha), "b": (prompts[1], beta),
                           "g": (prompts[2], gamma)}, GREEDY)
    _assert_same(done["a"], _reference(adapters["alpha"][1], prompts[0]))
    _assert_same(done["b"], _reference(adapters["beta"][1], prompts[1]))
    _assert_same(done["g"], _reference(merged_copy(base, weights), prompts[2]))
    assert sorted(engine.lora.loaded_ids) == [2, 3]  # alpha (least recently used) was evicted
    assert engine.list_loras() == {1, 2, 3}  # still known, reloaded from host memory on demand
    again = _serve(engine, {"a2": (prompts[0], alpha)}, GREEDY)["a2"]
    _assert_same(again, done["a"])
    assert engine.lora.loaded_ids == [3, 1]  # beta was the least recently used now


def test_remove_lora_refuses_while_in_use_and_forgets_after(base, adapters):
    alpha = adapters["alpha"][0]
    engine = create_engine(base, enable_lora=True, max_loras=2, max_lora_rank=8)
    engine.add_request("busy", [5, 6, 7], GREEDY, lora_request=alpha)
    assert engine.remove_lora(alpha.lora_int_id) is False
    while engine.has_unfinished_requests():
        engine.step()
    assert engine.remove_lora(alpha.lora_int_id) is True
    assert engine.list_loras() == set() and engine.lora.loaded_ids == []


def test_bad_adapters_are_refused_at_admission(base, adapters, tmp_path):
    alpha = adapters["alpha"][0]
    with pytest.raises(ValueError, match="enable_lora=True"):
        create_engine(base).add_request("x", [1, 2], GREEDY, lora_request=alpha)
    engine = create_engine(base, enable_lora=True, max_loras=2, max_lora_rank=4)
    with pytest.raises(ValueError, match="max_lora_rank=4"):
        engine.add_request("x", [1, 2], GREEDY, lora_request=alpha)  # rank 8
    with pytest.raises(ValueError, match="cannot read a LoRA adapter"):
        engine.add_request("y", [1, 2], GREEDY,
                           lora_request=LoRARequest("nope", 7, str(tmp_path / "missing")))
    write_random_adapter(create_model(hidden_size=32, intermediate_size=64), tmp_path / "small",
                         4, 4.0, seed=1)
    with pytest.raises(ValueError, match="the model's layer is"):
        engine.add_request("z", [1, 2], GREEDY,
                           lora_request=LoRARequest("small", 8, str(tmp_path / "small")))
    assert not engine.has_unfinished_requests()
    with pytest.raises(ValueError, match="lora_int_id must be an int >= 1"):
        LoRARequest("zero", 0, "/x")


def test_bf16_model_is_as_close_to_the_exact_merged_model_as_bf16_merging_is(tmp_path):
    # A 40-token prompt runs the adapters in bf16 (big steps), decode steps in float32 (small
    # steps). The exact reference is the merged model in float32; serving the adapter in bf16
    # must be about as close to it as the merged bf16 checkpoint is (bf16 rounding of weights).
    model = create_model(seed=5, dtype=torch.bfloat16)
    weights = write_random_adapter(model, tmp_path / "a", 8, 16.0, seed=4)
    lora = LoRARequest("a", 1, str(tmp_path / "a"))
    prompt = _prompts(1, 40, seed=6)[0]
    params = SamplingParams(max_tokens=6, temperature=0.0, ignore_eos=True, logprobs=1,
                            prompt_logprobs=1)
    engine = create_engine(model, enable_lora=True, max_loras=2, max_lora_rank=8)
    served = _serve(engine, {"a": (prompt, lora)}, params)["a"]
    exact = merged_copy(model.float(), weights)  # .float() / .bfloat16() convert in place
    merged_bf16 = copy.deepcopy(exact).bfloat16()
    model.bfloat16()
    runs = {name: _serve(create_engine(m), {name: (prompt, None)}, params)[name]
            for name, m in (("exact", exact), ("merged_bf16", merged_bf16), ("base", model))}

    def prompt_logprobs(output) -> torch.Tensor:
        return torch.tensor([entry[token].logprob for entry, token
                             in zip(output.prompt_logprobs[1:], prompt[1:])])

    def gap(output) -> float:
        return float((prompt_logprobs(output) - prompt_logprobs(runs["exact"])).abs().max())

    assert gap(served) <= 2 * gap(runs["merged_bf16"]) + 0.02
    assert gap(runs["base"]) > 10 * gap(served)  # the adapter changes the model far more
    assert served.outputs[0].token_ids[:2] == runs["exact"].outputs[0].token_ids[:2]


def test_a_model_swap_refills_the_slots_on_the_new_model(base, adapters):
    alpha = adapters["alpha"][0]
    engine = create_engine(base, enable_lora=True, max_loras=2, max_lora_rank=8)
    prompt = _prompts(1, 10, seed=7)[0]
    before = _serve(engine, {"a": (prompt, alpha)}, GREEDY)["a"]
    fresh = create_model(seed=3)  # the same weights as `base`, no slots attached yet
    assert getattr(fresh.model.layers[0].self_attn.q_proj, "lora", None) is None
    engine.swap_model(fresh, engine.tokenizer)  # e.g. a promoted relabelled version
    after = _serve(engine, {"b": (prompt, alpha)}, GREEDY)["b"]
    _assert_same(after, before)
    _assert_same(after, _reference(adapters["alpha"][1], prompt))

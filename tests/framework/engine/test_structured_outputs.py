"""Structured outputs in the engine: every output parses and validates against its schema (checked
with `jsonschema`, independent of the grammar engine), on a random-weight model where only the
constraint can make it valid, on the demo model and on stories260K; constrained and free requests
share steps; the grammar's end, max_tokens, min_tokens, ignore_eos and n > 1 interplay."""
from __future__ import annotations

import json
import re

import jsonschema
import pytest

from app import LLM, SamplingParams, StructuredOutputsParams  # the offline API's names (vLLM's)
from framework.engine.structured import repair_json_grammar, token_bytes
from model.tokenizer import Tokenizer
from tests.shared_data import REPO_ROOT, STORIES_HF
from tests.utils.engine import create_engine, create_model

DEMO_MODEL = REPO_ROOT / "app" / "demo" / "model"

# nested objects, an array of objects, enums, integers and numbers, required and optional fields;
# strings are bounded so a random-weight model (which rarely picks the closing quote) finishes
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 8},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "score": {"type": "number"},
        "kind": {"enum": ["cat", "dog", "robot"]},
        "alive": {"type": "boolean"},
        "home": {"type": "object",
                 "properties": {"city": {"type": "string", "maxLength": 6},
                                "geo": {"type": "object",
                                        "properties": {"lat": {"type": "number"},
                                                       "lon": {"type": "number"}},
                                        "required": ["lat", "lon"]}},
                 "required": ["geo"]},
        "pets": {"type": "array", "maxItems": 2,
                 "items": {"type": "object",
                           "properties": {"species": {"enum": ["cat", "fish"]},
                                          "legs": {"type": "integer", "minimum": 0, "maximum": 8}},
                           "required": ["species", "legs"]}},
    },
    "required": ["name", "age", "score", "kind", "home", "pets"],
}


def _json_params(schema=PERSON, **overrides) -> SamplingParams:
    fields = {"max_tokens": 400, "temperature": 0.0,
              "structured_outputs": StructuredOutputsParams(json=schema)}
    fields.update(overrides)
    return SamplingParams(**fields)


def _assert_valid(text: str, schema=PERSON) -> dict:
    value = json.loads(text)
    jsonschema.validate(value, schema)
    return value


def _run(engine, prompts, params) -> list:
    for i, prompt in enumerate(prompts):
        engine.add_request(f"r{i}", prompt, params[i] if isinstance(params, list) else params)
    done = {}
    while engine.has_unfinished_requests():
        for out in engine.step():
            if out.finished:
                done[out.request_id] = out
    return [done[f"r{i}"] for i in range(len(prompts))]


@pytest.fixture(scope="module")
def random_engine():
    return create_engine(create_model(seed=3), max_model_len=512)


def test_random_weight_model_only_writes_valid_json_under_the_schema(random_engine):
    prompts = [[256, 10 + i, 20 + i] for i in range(6)]
    free = _run(random_engine, prompts[:2], SamplingParams(max_tokens=60, temperature=0.0))
    for out in free:  # without the constraint this model writes no JSON at all
        with pytest.raises(ValueError):
            json.loads(out.outputs[0].text)
    params = [_json_params()] + [_json_params(temperature=1.0, seed=s) for s in range(5)]
    for out in _run(random_engine, prompts, params):
        completion = out.outputs[0]
        assert completion.finish_reason == "stop", completion.text
        _assert_valid(completion.text)


def test_constrained_and_free_requests_share_a_step(random_engine):
    free_prompt, free_params = [256, 7, 8, 9], SamplingParams(max_tokens=12, temperature=0.0)
    alone = _run(random_engine, [free_prompt], free_params)[0].outputs[0].token_ids
    random_engine.add_request("json", [256, 1, 2], _json_params())
    random_engine.add_request("free", free_prompt, free_params)
    first_step = {out.request_id for out in random_engine.step()}
    assert first_step == {"json", "free"}  # one batch, one sampler call
    outs = {}
    while random_engine.has_unfinished_requests():
        for out in random_engine.step():
            outs[out.request_id] = out
    assert outs["free"].outputs[0].token_ids == alone
    _assert_valid(outs["json"].outputs[0].text)


def test_each_of_n_samples_follows_the_grammar(random_engine):
    out = _run(random_engine, [[256, 40, 41, 42]], _json_params(n=3, temperature=1.0, seed=11))[0]
    assert len(out.outputs) == 3
    for completion in out.outputs:
        _assert_valid(completion.text)


def test_regex_choice_and_grammar_constraints(random_engine):
    specs = [StructuredOutputsParams(regex=r"[a-z]{3}-[0-9]{2}"),
             StructuredOutputsParams(choice=["yes", "no", "maybe so"]),
             StructuredOutputsParams(
                 grammar='root ::= "(" num ("+" num)* ")"\nnum ::= [1-9] [0-9]?')]
    params = [SamplingParams(max_tokens=40, temperature=1.0, seed=s, structured_outputs=spec)
              for s, spec in enumerate(specs)]
    outs = _run(random_engine, [[256, 5]] * 3, params)
    regex, choice, grammar = (o.outputs[0].text for o in outs)
    assert re.fullmatch(r"[a-z]{3}-[0-9]{2}", regex)
    assert choice in ("yes", "no", "maybe so")
    assert re.fullmatch(r"\([1-9][0-9]?(\+[1-9][0-9]?)*\)", grammar)


def test_the_grammar_ends_the_output_even_with_ignore_eos_or_min_tokens(random_engine):
    spec = StructuredOutputsParams(choice=["ok"])
    params = [SamplingParams(max_tokens=50, temperature=0.0, ignore_eos=True,
                             structured_outputs=spec),
              SamplingParams(max_tokens=50, temperature=0.0, min_tokens=20,
                             structured_outputs=spec)]
    for out in _run(random_engine, [[256, 3], [256, 4]], params):
        assert out.outputs[0].text == "ok" and out.outputs[0].finish_reason == "stop"


def test_stop_strings_still_cut_a_constrained_output(random_engine):
    spec = StructuredOutputsParams(choice=["hello world"])
    params = SamplingParams(max_tokens=50, temperature=0.0, stop=[" wor"], structured_outputs=spec)
    out = _run(random_engine, [[256, 3]], params)[0].outputs[0]
    assert (out.text, out.finish_reason, out.stop_reason) == ("hello", "stop", " wor")


def test_max_tokens_cuts_a_constrained_output_with_finish_reason_length(random_engine):
    out = _run(random_engine, [[256, 3]], _json_params(max_tokens=5))[0].outputs[0]
    assert out.finish_reason == "length" and len(out.token_ids) == 5
    assert out.text.startswith("{")


def test_bad_constraints_are_refused_before_queueing(random_engine):
    bad_schema = {"type": "object", "properties": {"a": {"type": "foo"}}}
    for spec in (StructuredOutputsParams(json=bad_schema),
                 StructuredOutputsParams(regex="([a-z"),
                 StructuredOutputsParams(grammar="root ::= undefined_rule")):
        with pytest.raises(ValueError, match="invalid"):
            random_engine.add_request("bad", [256, 1], SamplingParams(structured_outputs=spec))
    assert not random_engine.has_unfinished_requests()
    with pytest.raises(ValueError, match="exactly one"):
        StructuredOutputsParams(json={"type": "object"}, regex="a")
    with pytest.raises(ValueError, match="exactly one"):
        StructuredOutputsParams()


def test_the_json_grammar_repairs_find_what_they_repair():
    """Unbounded numbers are capped (a model must not write digits until max_tokens) and bounded
    strings refuse control characters (xgrammar 0.2.8 let them through, and the random model's
    output did not parse). Fails loudly if a new xgrammar prints these rules differently."""
    import xgrammar as xgr

    number = str(xgr.Grammar.from_json_schema('{"type": "number"}', any_whitespace=False))
    capped = repair_json_grammar(number)
    assert "{1, -1}" in number and "{1, -1}" not in capped
    assert "[0-9]*" in number and "[0-9]*" not in capped
    string = str(xgr.Grammar.from_json_schema('{"type": "string", "maxLength": 3}',
                                              any_whitespace=False))
    assert repair_json_grammar(string) != string
    compiled = xgr.GrammarCompiler(xgr.TokenizerInfo([bytes([b]) for b in range(128)] + [b""],
                                                     stop_token_ids=[128]))
    matcher = xgr.GrammarMatcher(compiled.compile_grammar(repair_json_grammar(string)))
    assert matcher.accept_string('"') and not matcher.accept_string("\x03")


@pytest.mark.parametrize("model_dir", [DEMO_MODEL, STORIES_HF], ids=["demo", "stories260K"])
def test_real_models_write_valid_json_for_nested_schemas(model_dir):
    llm = LLM(str(model_dir), device="cpu", num_kv_blocks=256)
    prompts = ["The capital of France is", "Once upon a time", "Tell me about a dog."]
    params = [_json_params(), _json_params(temperature=0.8, seed=1),
              _json_params(temperature=1.0, seed=2)]
    for out in llm.generate(prompts, params, use_tqdm=False):
        assert out.outputs[0].finish_reason == "stop", out.outputs[0].text
        _assert_valid(out.outputs[0].text)
    json_object = SamplingParams(max_tokens=60, temperature=0.0,
                                 structured_outputs=StructuredOutputsParams(json_object=True))
    out = llm.generate(["Hello"], json_object, use_tqdm=False)[0].outputs[0]
    if out.finish_reason == "stop":  # an unbounded object may run to max_tokens; if done, it parses
        assert isinstance(json.loads(out.text), dict)
    else:
        assert out.text.startswith("{")


@pytest.mark.parametrize("model_dir", [DEMO_MODEL, STORIES_HF], ids=["demo", "stories260K"])
def test_token_bytes_spell_what_the_tokenizer_decodes(model_dir):
    tokenizer = Tokenizer.from_dir(model_dir)
    vocab = token_bytes(tokenizer, tokenizer.vocab_size)
    text = '{"name": "Zoë", "n": [1, 2.5e3]} ok'
    ids = tokenizer.encode(text, add_bos=False)
    spelled = b"".join(vocab[i] for i in ids).decode("utf-8")
    assert spelled.lstrip(" ") == tokenizer.decode(ids) == text
    assert all(vocab[i] == b"" for i in tokenizer.eos_token_ids)

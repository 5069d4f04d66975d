"""/v1/completions as evaluation harnesses use it: prompt lists (texts and token ids) with one
choice per prompt x n numbered as OpenAI does, echo with prompt logprobs (checked against
transformers), max_tokens 0 with echo, and logit_bias. Through the official `openai` client on a
live server."""
from __future__ import annotations

import pytest
import torch
from sqlalchemy import func, select

from app.store.models import Conversation, Message
from tests.app.api.conftest import MODEL_DIR, MODEL_ID

ATOL = 1e-4  # float32 end to end
PROMPTS = ["Once upon a time", "The little bird sang", "Tom had a red ball and"]


@pytest.fixture(scope="module")
def reference():
    """log_softmax over the vocabulary at every position of a token list (transformers)."""
    transformers = pytest.importorskip("transformers")
    model = transformers.LlamaForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32).eval()

    def log_softmax(ids: list[int]) -> torch.Tensor:  # (len(ids), V)
        with torch.no_grad():
            return model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    return log_softmax


def _stored(live_server) -> tuple[int, int]:
    live_server.state.writer.flush(10)
    with live_server.state.store.session_factory() as session:
        return (session.scalar(select(func.count()).select_from(Conversation)),
                session.scalar(select(func.count()).select_from(Message)))


def _ids(live_server, text: str) -> list[int]:
    return live_server.model.tokenizer.encode(text, add_bos=True)


def test_prompt_list_numbers_choices_like_openai(client, live_server):
    params = dict(model=MODEL_ID, max_tokens=6, temperature=0, extra_body={"ignore_eos": True})
    single = [client.completions.create(prompt=p, **params).choices[0].text for p in PROMPTS]
    before = _stored(live_server)
    reply = client.completions.create(prompt=PROMPTS, n=2, **params)
    assert [c.index for c in reply.choices] == list(range(6))
    assert len(set(reply.model_extra["message_ids"])) == 6  # one stored answer per choice
    # choice index = prompt index * n + sample index; greedy samples equal the prompt alone
    assert [c.text for c in reply.choices] == [t for t in single for _ in range(2)]
    prompt_tokens = sum(len(_ids(live_server, p)) for p in PROMPTS)
    assert reply.usage.prompt_tokens == prompt_tokens
    assert reply.usage.completion_tokens == 6 * 6
    conversations, messages = _stored(live_server)
    assert conversations == before[0] + 3  # one exchange per prompt: its turn and n answers
    assert messages == before[1] + 3 * 3


def test_token_id_prompt_list(client, live_server):
    prompts = [_ids(live_server, p) for p in PROMPTS[:2]]
    reply = client.completions.create(model=MODEL_ID, prompt=prompts, max_tokens=5,
                                      temperature=0, extra_body={"ignore_eos": True})
    alone = [client.completions.create(model=MODEL_ID, prompt=p, max_tokens=5, temperature=0,
                                       extra_body={"ignore_eos": True}).choices[0].text
             for p in prompts]
    assert [c.text for c in reply.choices] == alone
    assert reply.usage.prompt_tokens == sum(map(len, prompts))
    assert reply.usage.completion_tokens == 10


def test_echo_only_scores_the_prompt(client, live_server, reference):
    """What lm-evaluation-harness sends for log-likelihoods: echo, logprobs, max_tokens 0."""
    before = _stored(live_server)
    reply = client.completions.create(model=MODEL_ID, prompt=PROMPTS[:2], max_tokens=0,
                                      echo=True, logprobs=1, temperature=0)
    assert _stored(live_server) == before  # scoring only: no answer to keep
    assert reply.model_extra["message_ids"] == [] and reply.model_extra["conversation_id"] is None
    assert reply.usage.completion_tokens == 0
    for choice, prompt in zip(reply.choices, PROMPTS[:2]):
        ids = _ids(live_server, prompt)
        expected = reference(ids)
        assert choice.text == prompt and choice.finish_reason == "length"
        logprobs = choice.logprobs
        assert len(logprobs.tokens) == len(logprobs.token_logprobs) == len(ids)
        assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None
        for position in range(1, len(ids)):
            row, token = expected[position - 1], ids[position]
            assert logprobs.token_logprobs[position] == pytest.approx(row[token].item(), abs=ATOL)
            (top_token, top_value), = logprobs.top_logprobs[position].items()
            assert top_value == pytest.approx(row.max().item(), abs=ATOL)
        tokenizer = live_server.model.tokenizer
        assert logprobs.tokens == [tokenizer.decode([t], skip_special_tokens=False) for t in ids]


def test_echo_with_generation_and_token_ids(client, live_server, reference):
    """lm-eval's own payload: token ids, echo, logprobs 1, max_tokens 1."""
    ids = _ids(live_server, PROMPTS[2])
    reply = client.completions.create(model=MODEL_ID, prompt=[ids], max_tokens=1, echo=True,
                                      logprobs=1, temperature=0)
    choice = reply.choices[0]
    generated = client.completions.create(model=MODEL_ID, prompt=ids, max_tokens=1,
                                          temperature=0).choices[0].text
    assert choice.text == live_server.model.tokenizer.decode(ids, skip_special_tokens=True) \
        + generated
    assert len(choice.logprobs.token_logprobs) == len(ids) + 1
    expected = reference(ids)
    scored = sum(expected[p - 1, ids[p]].item() for p in range(1, len(ids)))
    assert sum(choice.logprobs.token_logprobs[1:-1]) == pytest.approx(scored, abs=ATOL)
    assert choice.logprobs.token_logprobs[-1] == pytest.approx(expected[-1].max().item(), abs=ATOL)
    assert reply.usage.completion_tokens == 1


def test_echo_streams_what_it_answers(client):
    params = dict(model=MODEL_ID, prompt=PROMPTS[:2], max_tokens=4, echo=True, logprobs=2,
                  temperature=0)
    full = client.completions.create(**params)
    texts, token_logprobs, usage = {}, {}, None
    for chunk in client.completions.create(**params, stream=True,
                                           stream_options={"include_usage": True}):
        usage = chunk.usage or usage
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
            token_logprobs.setdefault(choice.index, []).extend(choice.logprobs.token_logprobs)
    assert texts == {c.index: c.text for c in full.choices}
    assert token_logprobs == {c.index: c.logprobs.token_logprobs for c in full.choices}
    assert usage.prompt_tokens == full.usage.prompt_tokens
    assert usage.completion_tokens == full.usage.completion_tokens


def test_echo_without_logprobs(client):
    reply = client.completions.create(model=MODEL_ID, prompt=PROMPTS[0], max_tokens=3, echo=True,
                                      temperature=0)
    alone = client.completions.create(model=MODEL_ID, prompt=PROMPTS[0], max_tokens=3,
                                      temperature=0)
    assert reply.choices[0].text == PROMPTS[0] + alone.choices[0].text
    assert reply.choices[0].logprobs is None


def test_logit_bias_forces_and_bans_tokens(client, live_server, reference):
    ids = _ids(live_server, PROMPTS[1])
    row = reference(ids)[-1]
    best, second = row.topk(2).indices.tolist()
    banned = client.completions.create(model=MODEL_ID, prompt=ids, max_tokens=1, temperature=0,
                                       logprobs=0, logit_bias={str(best): -100})
    tokenizer = live_server.model.tokenizer
    assert banned.choices[0].logprobs.tokens == [tokenizer.decode([second],
                                                                  skip_special_tokens=False)]
    # logprobs stay those of the model, not of the biased distribution
    assert banned.choices[0].logprobs.token_logprobs[0] == pytest.approx(row[second].item(),
                                                                         abs=ATOL)
    forced = int(row.argmin())
    reply = client.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": "hi"}], max_tokens=4,
        temperature=0.8, seed=5, logit_bias={str(forced): 100}, logprobs=True)
    assert [t.token for t in reply.choices[0].logprobs.content] == \
        [tokenizer.decode([forced], skip_special_tokens=False)] * 4


@pytest.mark.parametrize("body, param", [
    ({"prompt": "hi", "logit_bias": {"512": 5}}, "logit_bias"),  # stories260K has 512 tokens
    ({"prompt": "hi", "logit_bias": {"ten": 5}}, "logit_bias"),
    ({"prompt": "hi", "logit_bias": {"-3": 5}}, "logit_bias"),
    ({"prompt": "hi", "logit_bias": {"7": 100.5}}, "logit_bias"),
    ({"prompt": "hi", "logit_bias": {str(i): 1 for i in range(1025)}}, "logit_bias"),
    ({"prompt": ["hi", "there"], "max_tokens": 0}, None),  # max_tokens 0 needs echo
    ({"prompt": ["hi", [1, 2]]}, "prompt"),  # texts and token lists are not mixed
    ({"prompt": ["hi"] * 1025}, "prompt"),
    ({"prompt": ["hi", "x" * 600_000, "y" * 600_000]}, "prompt"),
    ({"prompt": [[1, 2], [3, 512]]}, "prompt"),
    ({"prompt": [[1, 2], [3] * 600]}, "prompt"),
])
def test_bad_harness_requests_are_400_naming_the_field(http, live_server, body, param):
    before = _stored(live_server)
    response = http.post("/v1/completions", json={"model": MODEL_ID, **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    if param is not None:
        assert (error["param"] or "").startswith(param), error
    assert _stored(live_server) == before

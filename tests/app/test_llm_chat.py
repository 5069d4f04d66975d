"""`LLM.chat` (vLLM's offline chat): each conversation rendered as the server renders it (the
model's template, or the default layout for a template-less model), then generated; checked
against rendering plus `generate` by hand."""
import pytest

from app import LLM, SamplingParams
from app.demo.recipe import DEMO_MODEL_DIR
from app.serving.chat_template import render_prompt_ids
from tests.shared_data import STORIES_HF

GREEDY = SamplingParams(temperature=0, max_tokens=12)
CONVERSATIONS = [
    [{"role": "user", "content": "What is 2 plus 3?"}],
    [{"role": "system", "content": "Answer in one word."},
     {"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there!"},
     {"role": "user", "content": [{"type": "text", "text": "How "}, {"type": "text",
                                                                      "text": "are you?"}]}],
]


def _plain(conversation: list[dict]) -> list[dict]:
    """What the server hands the template: content parts joined into a string."""
    return [{**m, "content": m["content"] if isinstance(m["content"], str)
             else "".join(p["text"] for p in m["content"])} for m in conversation]


@pytest.fixture(scope="module", params=[
    pytest.param(DEMO_MODEL_DIR, id="template"),
    pytest.param(STORIES_HF, id="no-template",
                 marks=pytest.mark.skipif(not STORIES_HF.exists(), reason="needs stories260K")),
])
def llm(request):
    return LLM(str(request.param), dtype="float32", num_threads=1)


def test_chat_equals_rendering_then_generate(llm):
    tokenizer = llm.get_tokenizer()
    by_hand = llm.generate([render_prompt_ids(tokenizer, _plain(c)) for c in CONVERSATIONS],
                           GREEDY, use_tqdm=False)
    chatted = llm.chat(CONVERSATIONS, GREEDY, use_tqdm=False)
    assert len(chatted) == len(CONVERSATIONS)
    for mine, theirs in zip(chatted, by_hand):  # in input order
        assert mine.prompt_token_ids == theirs.prompt_token_ids
        assert mine.outputs[0].token_ids == theirs.outputs[0].token_ids
        assert mine.outputs[0].text == theirs.outputs[0].text
        assert mine.prompt == tokenizer.decode(mine.prompt_token_ids, skip_special_tokens=False)


def test_one_conversation_and_the_template_in_use(llm):
    tokenizer = llm.get_tokenizer()
    (output,) = llm.chat(CONVERSATIONS[0], SamplingParams(temperature=0, max_tokens=4, n=2),
                         use_tqdm=False)
    assert len(output.outputs) == 2
    assert "What is 2 plus 3?" in output.prompt
    if getattr(tokenizer, "chat_template", None):  # the demo model's own (ChatML) template
        assert output.prompt_token_ids == tokenizer.apply_chat_template(
            CONVERSATIONS[0], add_generation_prompt=True)
    else:  # the server's default layout
        assert output.prompt.rstrip().endswith("<|im_start|>assistant")


@pytest.mark.parametrize("messages, match", [
    ([], "non-empty"),
    ([[]], "no messages"),
    (["hello"], "list of message dicts"),
    ([{"role": "user"}], "content"),
    ([{"content": "hi"}], "role"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}], "text content"),
    ([[{"role": "user", "content": "ok"}], [{"role": "user", "content": 3}]], "conversation 1"),
])
def test_bad_messages_are_refused_before_anything_runs(llm, messages, match):
    with pytest.raises(ValueError, match=match):
        llm.chat(messages, GREEDY, use_tqdm=False)
    assert not llm.engine.has_unfinished_requests()

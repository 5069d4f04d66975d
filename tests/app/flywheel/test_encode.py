"""Feedback records -> training ids, rendered the way the server renders them: chat through the
model's template, completions as plain text, only the final answer a target."""
from __future__ import annotations

import pytest

from app.demo.recipe import DEMO_MODEL_DIR
from app.flywheel.encode import PromptStyle, answer_ids, prompt_ids, record_example
from app.serving.chat_template import render_prompt_ids
from model.tokenizer import Tokenizer
from tests.shared_data import STORIES_HF


@pytest.fixture(scope="module")
def demo_tokenizer():
    return Tokenizer.from_dir(DEMO_MODEL_DIR)


@pytest.fixture(scope="module")
def stories_tokenizer():
    return Tokenizer.from_dir(STORIES_HF)


def test_a_correction_in_a_longer_conversation_trains_with_its_context(demo_tokenizer):
    tok = demo_tokenizer
    messages = [{"role": "user", "content": "What is 2 plus 3?"},
                {"role": "assistant", "content": "It is 7."},  # an earlier, wrong answer
                {"role": "user", "content": "Are you sure?"},
                {"role": "assistant", "content": "Sorry: 2 plus 3 is 5."}]  # the correction
    example = record_example(tok, messages, PromptStyle.CHAT)
    context = render_prompt_ids(tok, messages[:-1])  # what the server feeds at the last turn
    assert example.input_ids[:len(context)] == context
    assert example.loss_mask[:len(context)] == [0] * len(context)  # "It is 7." is not a target
    target = [t for t, m in zip(example.input_ids, example.loss_mask) if m]
    assert tok.decode(target).startswith("Sorry: 2 plus 3 is 5.")


def test_completion_records_continue_the_plain_prompt_and_stop(stories_tokenizer):
    tok = stories_tokenizer
    prompt = [{"role": "user", "content": "Once upon a time"}]
    assert prompt_ids(tok, prompt, PromptStyle.COMPLETION) == tok.encode("Once upon a time", add_bos=True)
    head, answer = answer_ids(tok, prompt, " there was a frog.", PromptStyle.COMPLETION)
    assert head + answer[:-1] == tok.encode("Once upon a time there was a frog.", add_bos=True)
    assert answer[-1] == tok.eos_token_ids[0]
    # a correction typed as words is a continuation, not glued onto the prompt's last word
    _, typed = answer_ids(tok, prompt, "there was a frog.", PromptStyle.COMPLETION)
    assert typed == answer


def test_chat_on_a_model_without_a_template_uses_the_servers_default_layout(stories_tokenizer):
    tok = stories_tokenizer
    prompt = [{"role": "user", "content": "Hello"}]
    head, answer = answer_ids(tok, prompt, "Hi there", PromptStyle.CHAT)
    assert head == render_prompt_ids(tok, prompt)
    assert tok.decode(answer).startswith("Hi there")

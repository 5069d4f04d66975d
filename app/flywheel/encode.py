"""Chat messages -> token-id training examples, rendered exactly as the server renders them.

Two prompt styles, as the server has two endpoints:
- chat (`/v1/chat/completions`): the model's own chat template. Answer ids are "render(prompt +
  answer) minus render(prompt with generation prompt)", so they are exactly what the model emits
  at serving time. A model without a template gets the server's default layout.
- completion (`/v1/completions`): the prompt text encoded with BOS, the answer as its
  continuation, then end-of-sequence (a corrected completion should stop where the user's did).
The loss covers the answer only; in `sft_example` every assistant turn of a conversation.
"""
from __future__ import annotations

from enum import Enum

from framework.train import KTOExample, PreferenceExample, SFTExample
from framework.train.data import completion_sequence


class PromptStyle(str, Enum):
    CHAT = "chat"
    COMPLETION = "completion"


def style_of(record: dict) -> PromptStyle:
    """A snapshot record's style (records from before styles were recorded are chat)."""
    return PromptStyle(record.get("style", PromptStyle.CHAT.value))


def prompt_ids(tokenizer, prompt: list[dict], style: PromptStyle = PromptStyle.CHAT) -> list[int]:
    """The ids the server feeds the model for this prompt."""
    from app.serving.chat_template import render_prompt_ids

    if style is PromptStyle.COMPLETION:
        return tokenizer.encode("".join(m["content"] for m in prompt), add_bos=True)
    return render_prompt_ids(tokenizer, prompt)


def answer_ids(tokenizer, prompt: list[dict], answer: str,
               style: PromptStyle = PromptStyle.CHAT) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids) in `style`."""
    if style is PromptStyle.CHAT and getattr(tokenizer, "chat_template", None):
        return split_completion(tokenizer, prompt, answer)
    prompt_part = prompt_ids(tokenizer, prompt, style)
    if style is PromptStyle.COMPLETION:
        text = "".join(m["content"] for m in prompt)
        if text and not text[-1].isspace() and answer[:1].isalnum():
            text += " "  # a corrected continuation typed as words, not glued to the prompt's last
        full = tokenizer.encode(text + answer, add_bos=True)
        end = list(tokenizer.eos_token_ids[:1])
    else:  # chat on a model without a template: the server's default layout
        from app.serving.chat_template import DEFAULT_CHAT_TEMPLATE
        from model.chat_template import render_chat

        text = render_chat(DEFAULT_CHAT_TEMPLATE, [*prompt, {"role": "assistant", "content": answer}],
                           False, getattr(tokenizer, "special_tokens", {}))
        full = tokenizer.encode(text, add_bos=True)
        end = []
    if full[:len(prompt_part)] != prompt_part or len(full) <= len(prompt_part):
        raise ValueError("the answer does not tokenize as a continuation of the prompt")
    return prompt_part, full[len(prompt_part):] + end


def record_example(tokenizer, messages: list[dict], style: PromptStyle) -> SFTExample:
    """A feedback record's final answer as the target, every earlier turn as context: a
    correction inside a longer conversation trains with that conversation, but an earlier
    (possibly bad) answer in it is not a target."""
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("a record must end with the assistant's answer")
    prompt_part, answer_part = answer_ids(tokenizer, messages[:-1], messages[-1]["content"], style)
    return completion_sequence(prompt_part, answer_part)


def split_completion(tokenizer, prompt: list[dict], answer: str) -> tuple[list[int], list[int]]:
    """(prompt ids ending in the assistant header, answer ids ending in the end-of-turn)."""
    prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True)
    full_ids = tokenizer.apply_chat_template(
        [*prompt, {"role": "assistant", "content": answer}], add_generation_prompt=False)
    if full_ids[:len(prompt_ids)] != prompt_ids or len(full_ids) <= len(prompt_ids):
        raise ValueError("chat template does not render the prompt as a prefix of the full chat")
    return prompt_ids, full_ids[len(prompt_ids):]


def sft_example(tokenizer, messages: list[dict], max_tokens: int | None = None) -> SFTExample:
    """Every assistant turn of `messages` is a target; the rest is context."""
    ids: list[int] = []
    mask: list[int] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt_ids, answer_ids = split_completion(tokenizer, messages[:i], message["content"])
        if prompt_ids[:len(ids)] != ids:
            raise ValueError("chat template re-renders earlier turns differently")
        mask += [0] * (len(prompt_ids) - len(ids)) + [1] * len(answer_ids)
        ids = prompt_ids + answer_ids
    if not any(mask):
        raise ValueError("conversation has no assistant turn to learn from")
    if max_tokens is not None:
        ids, mask = ids[:max_tokens], mask[:max_tokens]
    return SFTExample(ids, mask)


def preference_example(tokenizer, prompt: list[dict], chosen: str, rejected: str,
                       style: PromptStyle = PromptStyle.CHAT) -> PreferenceExample:
    prompt_part, chosen_ids = answer_ids(tokenizer, prompt, chosen, style)
    _, rejected_ids = answer_ids(tokenizer, prompt, rejected, style)
    return PreferenceExample(prompt_part, chosen_ids, rejected_ids)


def kto_example(tokenizer, prompt: list[dict], completion: str, desirable: bool,
                style: PromptStyle = PromptStyle.CHAT, weight: float = 1.0) -> KTOExample:
    prompt_part, completion_ids = answer_ids(tokenizer, prompt, completion, style)
    return KTOExample(prompt_part, completion_ids, desirable, weight)

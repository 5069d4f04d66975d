"""Prompt rendering for chat requests.

Models that ship a chat template use it (`Tokenizer.apply_chat_template`). Models without one
(base models such as stories260K) get DEFAULT_CHAT_TEMPLATE, a ChatML-like plain-text layout:

    <|im_start|>system\n{content}<|im_end|>\n<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n

The markers are ordinary text for such models (they are not special tokens), so the fallback works
with any tokenizer; BOS is prepended when the tokenizer has one.

Rendering and tokenizing a long conversation takes a while (about 0.5 s per million characters
here): the server calls this from a worker thread, never on its event loop.
"""
from __future__ import annotations

from collections.abc import Sequence

from app.tool_calls.prompt import prompt_messages
from model.chat_template import render_chat

DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def render_prompt_ids(tokenizer, messages: Sequence[dict], tools: list[dict] | None = None,
                      template_kwargs: dict | None = None) -> list[int]:
    """Token ids of `messages` rendered with the model's template (or the default) plus the
    assistant generation prompt. `tools` (OpenAI function definitions) go to a template with a
    tool section, else into the messages in the Hermes layout (`app.tool_calls.prompt`);
    `template_kwargs` are extra template variables. ValueError on invalid messages, invalid
    Unicode (which the tokenizer would reject with a TypeError) or template errors."""
    _check_unicode(messages)
    template = getattr(tokenizer, "chat_template", None)
    messages, tools = prompt_messages(template, messages, tools)
    if template:
        extra = {"tools": tools} if tools else {}
        if template_kwargs:
            extra["template_kwargs"] = template_kwargs
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, **extra)
    text = render_chat(DEFAULT_CHAT_TEMPLATE, messages, True,
                       getattr(tokenizer, "special_tokens", {}), template_kwargs=template_kwargs)
    return tokenizer.encode(text, add_bos=True)


def _check_unicode(messages: Sequence[dict]) -> None:
    for index, message in enumerate(messages):
        content = message.get("content")
        try:
            if isinstance(content, str):
                content.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"messages[{index}].content is not valid Unicode (lone surrogate at "
                             f"character {e.start})") from e

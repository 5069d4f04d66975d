"""Chat templates: find a model's Jinja template and render messages with it like `transformers`.

The environment matches transformers' (sandboxed, trim_blocks, lstrip_blocks, loopcontrols,
`raise_exception`, `tojson` without HTML escaping, `strftime_now`), so Hub templates render to the
same text. This module knows nothing about token ids; the tokenizer encodes the rendered text.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from model.hf_config import read_json

ROLES = ("system", "user", "assistant", "tool")
# template variables rendering sets itself (plus the tokenizer's special tokens)
RESERVED_VARIABLES = frozenset({"messages", "tools", "documents", "add_generation_prompt",
                                "bos_token", "eos_token", "pad_token", "unk_token"})
TEMPLATE_FILE = "chat_template.jinja"
TOKENIZER_CONFIG = "tokenizer_config.json"


def load_chat_template(model_dir: str | Path) -> str | None:
    """The model's chat template: chat_template.jinja, else tokenizer_config.json's `chat_template`
    (a string, or a list of {name, template} whose "default" entry is used). None if it has none."""
    model_dir = Path(model_dir)
    jinja_file = model_dir / TEMPLATE_FILE
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8")
    config_file = model_dir / TOKENIZER_CONFIG
    if not config_file.is_file():
        return None
    template = read_json(config_file).get("chat_template")
    if template is None or isinstance(template, str):
        return template
    if isinstance(template, list):
        named = {entry.get("name"): entry.get("template") for entry in template
                 if isinstance(entry, dict)}
        if isinstance(named.get("default"), str):
            return named["default"]
        raise ValueError(f"{config_file}: chat_template list has no 'default' template "
                         f"(names: {', '.join(map(str, named))})")
    raise ValueError(f"{config_file}: chat_template must be a string or a list, "
                     f"got {type(template).__name__}")


def validate_messages(messages: Sequence[dict]) -> list[dict]:
    """Check roles and contents; return plain-dict copies with None-valued keys dropped (as
    transformers does, so templates' `is defined` tests behave the same)."""
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)) or not messages:
        raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts")
    clean = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ValueError(f"messages[{index}] must be a dict, got {type(message).__name__}")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise ValueError(f"messages[{index}].role must be one of {', '.join(ROLES)}, "
                             f"got {role!r}")
        if not isinstance(content, str) and not (content is None and message.get("tool_calls")):
            raise ValueError(f"messages[{index}].content must be a string, "
                             f"got {type(content).__name__}")
        clean.append({key: value for key, value in message.items() if value is not None})
    return clean


def render_chat(template: str, messages: Sequence[dict], add_generation_prompt: bool,
                special_tokens: dict[str, str], tools: list[dict] | None = None,
                template_kwargs: Mapping[str, Any] | None = None) -> str:
    """Render `messages` with `template`; special_tokens (bos_token, eos_token, ...) are template
    variables, and so is each of `template_kwargs` (vLLM's chat_template_kwargs, e.g.
    enable_thinking), which may not set RESERVED_VARIABLES or a special token
    (TemplateKwargsError). Template errors (including
    `raise_exception`) become ValueError."""
    import jinja2

    check_template_kwargs(template_kwargs, special_tokens)
    compiled = _compile(template)
    try:
        return compiled.render(**dict(template_kwargs or {}), messages=validate_messages(messages),
                               tools=tools, documents=None,
                               add_generation_prompt=add_generation_prompt, **special_tokens)
    except jinja2.TemplateError as e:
        raise ValueError(f"chat template error: {e}") from e


class TemplateKwargsError(ValueError):
    """Extra template variables that rendering cannot take."""


def check_template_kwargs(template_kwargs: Mapping[str, Any] | None,
                          special_tokens: Mapping[str, str]) -> None:
    """TemplateKwargsError when extra variables would replace the ones rendering sets."""
    taken = sorted(set(template_kwargs or ()) & (RESERVED_VARIABLES | set(special_tokens)))
    if taken:
        raise TemplateKwargsError(f"chat_template_kwargs may not set {', '.join(taken)} (the "
                                  f"server sets them)")
    bad = [k for k in template_kwargs or () if not isinstance(k, str) or not k.isidentifier()]
    if bad:
        raise TemplateKwargsError(f"chat_template_kwargs keys must be identifiers, got "
                                  f"{bad[0]!r}")


@functools.lru_cache(maxsize=16)
def _compile(template: str):
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(template)
    except jinja2.TemplateSyntaxError as e:
        raise ValueError(f"chat template syntax error (line {e.lineno}): {e.message}") from e


def _raise_exception(message: str):
    import jinja2

    raise jinja2.TemplateError(message)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
    # Jinja's own tojson escapes <, >, & for HTML; chat templates want the plain JSON text.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _strftime_now(format_string: str) -> str:
    return datetime.now().strftime(format_string)

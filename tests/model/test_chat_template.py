"""Chat templates render to the same text (and ids) as transformers' apply_chat_template."""
from __future__ import annotations

import json
import shutil

import pytest

from model.chat_template import load_chat_template, render_chat
from model.tokenizer import Tokenizer
from tests.model.factories import STORIES_HF, copy_tokenizer

CHATML = (  # Qwen2-style: default system prompt when none is given
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAMA3 = """{{- bos_token }}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] | trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{{- "Today Date: " + strftime_now("%d %b %Y") + "\\n\\n" }}
{%- if tools is not none %}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if message['role'] not in ['user', 'assistant', 'tool'] %}
        {{- raise_exception('Unexpected role ' + message['role']) }}
    {%- endif %}
    {%- if loop.index > 8 %}{% break %}{% endif %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}
    {{- message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

SYSTEM = {"role": "system", "content": "You are terse. Use <b>tags</b> & \"quotes\"."}
TURNS = [{"role": "user", "content": "Hi there!"},
         {"role": "assistant", "content": "Hello. How can I help?"},
         {"role": "user", "content": "Tell me a story about Lily.\n"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather <now>",
                                           "parameters": {"type": "object", "properties": {
                                               "city": {"type": "string"}}}}}]


def _tokenizer_dir(tmp_path, template):
    config = json.loads((STORIES_HF / "tokenizer_config.json").read_text())
    copy_tokenizer(tmp_path)
    config["chat_template"] = template
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    return tmp_path


def _reference(directory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(directory)


@pytest.mark.parametrize("template", [CHATML, LLAMA3], ids=["chatml", "llama3"])
@pytest.mark.parametrize("with_system", [True, False], ids=["system", "no-system"])
@pytest.mark.parametrize("add_generation_prompt", [True, False], ids=["gen", "no-gen"])
def test_rendering_matches_transformers(tmp_path, template, with_system, add_generation_prompt):
    directory = _tokenizer_dir(tmp_path, template)
    messages = ([SYSTEM] if with_system else []) + TURNS
    expected = _reference(directory).apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    tokenizer = Tokenizer.from_dir(directory)
    assert render_chat(tokenizer.chat_template, messages, add_generation_prompt,
                       tokenizer.special_tokens) == expected


def test_tools_render_with_plain_json(tmp_path):
    directory = _tokenizer_dir(tmp_path, LLAMA3)
    expected = _reference(directory).apply_chat_template(TURNS, tools=TOOLS, tokenize=False,
                                                        add_generation_prompt=True)
    tokenizer = Tokenizer.from_dir(directory)
    rendered = render_chat(tokenizer.chat_template, TURNS, True, tokenizer.special_tokens, TOOLS)
    assert rendered == expected
    assert '"description": "Weather <now>"' in rendered  # not HTML-escaped


@pytest.mark.parametrize("template", [CHATML, LLAMA3], ids=["chatml", "llama3"])
def test_chat_ids_match_transformers(tmp_path, template):
    directory = _tokenizer_dir(tmp_path, template)
    reference = _reference(directory)
    expected = reference.apply_chat_template(TURNS, tokenize=True, add_generation_prompt=True,
                                             return_dict=False)
    ids = Tokenizer.from_dir(directory).apply_chat_template(TURNS)
    if template.startswith("{{- bos_token"):
        assert ids == expected  # the template writes BOS itself: no second one
        assert ids.count(1) == 1
    else:  # ChatML writes no BOS; ours adds the model's BOS in front of the same text
        assert ids == [1, *expected]


def test_raise_exception_becomes_value_error(tmp_path):
    tokenizer = Tokenizer.from_dir(_tokenizer_dir(tmp_path, LLAMA3))
    messages = [SYSTEM, {"role": "system", "content": "second system"}]
    with pytest.raises(ValueError, match="Unexpected role system"):
        tokenizer.apply_chat_template(messages)


@pytest.mark.parametrize("messages, message", [
    ([], "non-empty list"),
    ([{"role": "robot", "content": "hi"}], r"messages\[0\]\.role must be one of"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": 3}],
     r"messages\[1\]\.content must be a string"),
    (["hello"], r"messages\[0\] must be a dict"),
])
def test_bad_messages(messages, message):
    with pytest.raises(ValueError, match=message):
        render_chat(CHATML, messages, True, {})


def test_template_syntax_error():
    with pytest.raises(ValueError, match="chat template syntax error"):
        render_chat("{% for m in messages %}", TURNS, True, {})


def test_template_sources(tmp_path):
    assert load_chat_template(STORIES_HF) is None
    _tokenizer_dir(tmp_path, [{"name": "tool_use", "template": "T"},
                              {"name": "default", "template": CHATML}])
    assert load_chat_template(tmp_path) == CHATML
    (tmp_path / "chat_template.jinja").write_text(LLAMA3)
    assert load_chat_template(tmp_path) == LLAMA3
    expected = _reference(tmp_path).apply_chat_template(TURNS, tokenize=False)
    assert render_chat(LLAMA3, TURNS, False, {"bos_token": "<s>", "eos_token": "</s>",
                                              "unk_token": "<unk>"}) == expected


def test_model_without_template_refuses_chat(tmp_path):
    shutil.copyfile(STORIES_HF / "tokenizer.json", tmp_path / "tokenizer.json")
    with pytest.raises(ValueError, match="no chat template"):
        Tokenizer.from_dir(tmp_path).apply_chat_template(TURNS)


def test_byte_level_chatml_tokenizer_matches_transformers(tmp_path):
    """A Qwen2-style tokenizer (byte-level BPE, no BOS, <|im_end|> as eos), trained here."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    backend = HFTokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator([m["content"] for m in [SYSTEM, *TURNS]] * 20, trainer=trainer)
    backend.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None, "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>", "chat_template": CHATML}))
    reference = _reference(tmp_path)
    tokenizer = Tokenizer.from_dir(tmp_path, eos_token_ids=[0])
    assert tokenizer.bos_token_id is None and tokenizer.eos_token_ids == [0, 2]
    text = "Héllo <|im_end|> wörld\n  two  spaces"
    assert tokenizer.encode(text) == reference.encode(text)
    assert tokenizer.decode(reference.encode(text)) == reference.decode(
        reference.encode(text), skip_special_tokens=True)
    messages = [SYSTEM, *TURNS]
    assert tokenizer.apply_chat_template(messages) == reference.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=True, return_dict=False)

"""Chat templates with their own tool sections, written for these tests in the three styles the
server knows (Hermes / Qwen2.5 with <tool_call> tags, Llama 3.x JSON with an ipython role,
Mistral v3 with [AVAILABLE_TOOLS] / [TOOL_CALLS] / [TOOL_RESULTS] and 9-character call ids), and
random-weight checkpoints that carry them (the demo tokenizer, so the vocabulary is a real one).
"""
from __future__ import annotations

from pathlib import Path

from app.demo.recipe import DEMO_MODEL_DIR
from model.checkpoint_writer import save_checkpoint
from tests.utils.engine import create_model, tiny_model_config

HERMES_TEMPLATE = """{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}

{% endif %}You can use tools. Their signatures:
<tools>
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}</tools>
Call one as <tool_call>{"name": ..., "arguments": ...}</tool_call><|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- if hint is defined %}<|im_start|>system
{{ hint }}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'system' and loop.first %}
{%- elif message.role == 'assistant' and message.tool_calls is defined %}<|im_start|>assistant
{% if message.content %}{{ message.content }}
{% endif %}{% for call in message.tool_calls %}<tool_call>
{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}
</tool_call>
{% endfor %}<|im_end|>
{% elif message.role == 'tool' %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% else %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""

LLAMA3_TEMPLATE = """<|start_header_id|>system<|end_header_id|>

{% if tools %}Environment: ipython
Answer a call as {"name": function name, "parameters": dictionary of arguments}.
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}{% endif %}
{%- if messages[0].role == 'system' %}{{ messages[0].content }}{% endif %}<|eot_id|>
{%- for message in messages %}
{%- if message.role == 'system' and loop.first %}
{%- elif message.role == 'assistant' and message.tool_calls is defined %}<|start_header_id|>assistant<|end_header_id|>

{% for call in message.tool_calls %}{"name": "{{ call.function.name }}", "parameters": {{ call.function.arguments | tojson }}}{% if not loop.last %}; {% endif %}{% endfor %}<|eot_id|>
{%- elif message.role == 'tool' %}<|start_header_id|>ipython<|end_header_id|>

{{ message.content }}<|eot_id|>
{%- else %}<|start_header_id|>{{ message.role }}<|end_header_id|>

{{ message.content }}<|eot_id|>
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>

{% endif %}"""

# Mistral v3's shape: tools (and the system message) before the last user turn, calls as one JSON list (each with its id),
# results as JSON, and the template refuses call ids that are not 9 characters.
MISTRAL_TEMPLATE = """{%- if messages[0].role == 'system' %}{%- set system_message = messages[0].content %}
{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}
{%- if tools is not defined %}{%- set tools = none %}{%- endif %}
{%- set ns = namespace(last_user=-1) %}
{%- for message in loop_messages %}{% if message.role == 'user' %}{% set ns.last_user = loop.index0 %}{% endif %}{% endfor %}
{%- for message in loop_messages %}
{%- if message.role == 'user' %}
{%- if tools is not none and loop.index0 == ns.last_user %}[AVAILABLE_TOOLS] [{% for tool in tools %}{{ tool | tojson }}{% if not loop.last %}, {% endif %}{% endfor %}][/AVAILABLE_TOOLS]{% endif %}
{%- if loop.index0 == ns.last_user and system_message is defined %}[INST] {{ system_message }}

{{ message.content }}[/INST]{% else %}[INST] {{ message.content }}[/INST]{% endif %}
{%- elif message.tool_calls is defined and message.tool_calls %}[TOOL_CALLS] [
{%- for call in message.tool_calls %}
{%- if call.id is not defined or call.id | length != 9 %}{{ raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}{% endif %}
{%- set out = call.function | tojson %}{{ out[:-1] }}, "id": "{{ call.id }}"}{% if not loop.last %}, {% endif %}
{%- endfor %}]</s>
{%- elif message.role == 'assistant' %} {{ message.content | trim }}</s>
{%- elif message.role == 'tool' %}
{%- if message.tool_call_id is not defined or message.tool_call_id | length != 9 %}{{ raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}{% endif %}[TOOL_RESULTS] {"content": {{ message.content | tojson }}, "call_id": "{{ message.tool_call_id }}"}[/TOOL_RESULTS]
{%- else %}{{ raise_exception("Only user, assistant and tool roles are supported") }}
{%- endif %}
{%- endfor %}"""


def random_checkpoint(out_dir: Path, template: str | None, seed: int = 3) -> Path:
    """A random-weight Llama over the demo tokenizer (1024 tokens, eos id 2), 2048 positions;
    `template` becomes its chat_template.jinja (None: the demo model's own template)."""
    overrides = dict(vocab_size=1024, bos_token_id=None, eos_token_ids=[2],
                     max_position_embeddings=2048)
    model = create_model(seed=seed, **overrides)
    extra = {"chat_template.jinja": template} if template is not None else None
    return save_checkpoint(model, tiny_model_config(**overrides), out_dir,
                           tokenizer_dir=DEMO_MODEL_DIR, extra_files=extra)

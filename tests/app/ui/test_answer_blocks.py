"""Answers cut into prose, code, tool calls and JSON, and prose as safe markdown, judged by a real
CommonMark renderer (markdown-it-py): the markup an answer may use renders, links, images and
HTML never do, and the visible text is what the model wrote."""
import html
import json
import re

import pytest
from hypothesis import assume, given, strategies as st
from markdown_it import MarkdownIt

from app.tool_calls import hermes
from app.ui import answer_blocks
from app.ui.answer_blocks import Block, BlockKind, pretty_json, safe_markdown, split_blocks

COMMONMARK = MarkdownIt("commonmark")
JOINER = "\u2060"


def _html(markdown: str) -> str:
    return COMMONMARK.render(markdown)


def _visible(rendered: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).replace(JOINER, "")


def test_fenced_code_is_a_block_with_its_language_and_text_kept_exactly():
    answer = "Try this:\n```Python\nif a < b:\n    print('<b>hi</b>')\n```\nThen run it.\n~~~\nplain\n~~~"
    assert split_blocks(answer) == [
        Block(BlockKind.PROSE, "Try this:"),
        Block(BlockKind.CODE, "if a < b:\n    print('<b>hi</b>')", language="python"),
        Block(BlockKind.PROSE, "Then run it."),
        Block(BlockKind.CODE, "plain"),
    ]


def test_an_unclosed_fence_runs_to_the_end_and_a_longer_fence_holds_a_shorter_one():
    assert split_blocks("so:\n```js\nlet x = 1") == [Block(BlockKind.PROSE, "so:"),
                                                     Block(BlockKind.CODE, "let x = 1", language="js")]
    nested = "````md\n```py\nx\n```\n````"
    assert split_blocks(nested) == [Block(BlockKind.CODE, "```py\nx\n```", language="md")]


def test_tool_calls_become_call_blocks_and_bad_ones_stay_text():
    assert (answer_blocks.OPEN, answer_blocks.CLOSE) == (hermes.OPEN, hermes.CLOSE)  # kept in step
    answer = ('Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
              '<tool_call>\n{"name": "add", "arguments": "{\\"a\\": 1}"}\n</tool_call>')
    assert split_blocks(answer) == [
        Block(BlockKind.PROSE, "Let me look.\n"),
        Block(BlockKind.TOOL_CALL, '{"city": "Paris"}', language="json", name="get_weather"),
        Block(BlockKind.TOOL_CALL, '{"a": 1}', language="json", name="add"),  # arguments as a string too
    ]
    broken = "<tool_call>\nnot json\n</tool_call>"
    assert split_blocks(broken) == [Block(BlockKind.PROSE, broken)]
    # max_tokens ran out after the call's object, before its close tag: still a call
    cut = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "17 * 23"}}\n</tool'
    for end in ("\n</tool", "\n<", ""):
        assert split_blocks(cut.removesuffix("\n</tool") + end) == [
            Block(BlockKind.TOOL_CALL, '{"expression": "17 * 23"}', language="json", name="calculator")]
    cut_inside = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "17 *'
    assert split_blocks(cut_inside) == [Block(BlockKind.PROSE, cut_inside)]


def test_a_json_answer_is_pretty_printed_and_other_text_is_not_json():
    assert split_blocks(' {"a": [1, {"b": "é"}]} ') == [
        Block(BlockKind.JSON, json.dumps({"a": [1, {"b": "é"}]}, indent=2, ensure_ascii=False), language="json")]
    assert pretty_json("{not json}") is None and pretty_json("42") is None


def test_safe_markdown_keeps_emphasis_code_headings_and_lists():
    rendered = _html(safe_markdown("# Title\nSome **bold**, *italic* and `x < y` code.\n- one\n- two\n1. first"))
    assert "<h1>Title</h1>" in rendered
    assert "<strong>bold</strong>" in rendered and "<em>italic</em>" in rendered
    assert "<code>x &lt; y</code>" in rendered
    assert rendered.count("<li>") == 3 and "<ul>" in rendered and "<ol>" in rendered


PAYLOADS = ["[click](http://evil.example)", "![img](http://evil.example/x.png)", "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>", "<http://evil.example>", "**[bold link](javascript:alert(1))**",
            "`code` then <b>html</b>", "[ref]\n\n[ref]: http://evil.example", "    indented <i>code</i>",
            "$x^2$ and \\(y\\)", "*<a href='x'>em</a>*"]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_links_images_and_html_in_answers_render_as_their_text(payload):
    rendered = _html(safe_markdown(payload))
    assert "<a " not in rendered and "<img" not in rendered and "<script" not in rendered
    assert "<pre>" not in rendered  # indentation never opens a code block that shows backslashes
    assert not re.search(r"<(b|i)>", rendered)


@given(st.text(alphabet="ab *_`#-1.>[]()<!:/\n\\", max_size=40))
def test_safe_markdown_never_makes_links_images_or_html(text):
    rendered = _html(safe_markdown(text))
    assert "<a " not in rendered and "<img" not in rendered
    assert not re.search(r"<(?!/?(p|h[1-6]|ul|ol|li|em|strong|code|blockquote|br ?/?)>)", rendered), rendered


@given(st.text(alphabet="ab <>&[]()!:/.\\\"'=", max_size=40))
def test_prose_without_markup_shows_exactly_as_written(text):
    assume(not text.lstrip().startswith(">"))  # a quote: markup an answer may use
    assert _visible(_html(safe_markdown(text))).strip() == text.strip()

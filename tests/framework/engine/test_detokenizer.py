"""Incremental text: stop strings across token boundaries, never a partial stop string shown,
split UTF-8 characters, and agreement with a one-shot decode of a real tokenizer."""

import pytest

from framework.engine.detokenizer import Detokenizer
from shared import SamplingParams
from tests.utils.byte_tokenizer import ByteTokenizer
from tests.shared_data import STORIES_HF

STORIES = STORIES_HF


def _feed(detok: Detokenizer, token_ids):
    shown = []
    for token in token_ids:
        detok.add_token(token)
        shown.append(detok.visible_text())
        if detok.finished:
            break
    return shown


def test_stop_string_spanning_tokens_is_cut_and_never_shown_partly():
    tok = ByteTokenizer()
    detok = Detokenizer(tok, tok.encode("p"), SamplingParams(stop=["lo wo"], max_tokens=50), [257], 512)
    shown = _feed(detok, list(b"hello world"))
    assert detok.text == "hel" and detok.finish_reason == "stop" and detok.stop_reason == "lo wo"
    # "hel" + "l" could start "lo wo": the "l" is held back until that is ruled out.
    assert shown == ["h", "he", "he", "hel", "hel", "hel", "hel", "hel"]


def test_a_false_start_is_released_once_it_cannot_be_a_stop():
    tok = ByteTokenizer()
    detok = Detokenizer(tok, tok.encode("p"), SamplingParams(stop=["abc"], max_tokens=5), [257], 512)
    shown = _feed(detok, list(b"xabx"))
    assert shown == ["x", "x", "x", "xabx"]
    assert detok.finish_reason is None
    detok.add_token(ord("y"))
    assert detok.finish_reason == "length" and detok.visible_text() == "xabxy"


def test_split_utf8_characters_appear_whole():
    tok = ByteTokenizer()
    detok = Detokenizer(tok, tok.encode("p"), SamplingParams(max_tokens=50), [257], 512)
    shown = _feed(detok, list("é€".encode()))
    assert shown == ["", "é", "é", "é", "é€"]


def test_stop_strings_wait_for_min_tokens():
    tok = ByteTokenizer()
    detok = Detokenizer(tok, tok.encode("p"), SamplingParams(stop=["a"], min_tokens=3, max_tokens=9), [257], 512)
    _feed(detok, list(b"aaaa"))
    assert detok.num_output_tokens == 3 and detok.text == "aa"


@pytest.mark.skipif(not STORIES.exists(), reason="needs the stories260K model")
def test_incremental_text_matches_a_one_shot_decode():
    from model.tokenizer import Tokenizer

    tok = Tokenizer.from_dir(STORIES, [2])
    prompt = tok.encode("Once upon a time, there was")
    generated = tok.encode(" a little dog named Spot. He liked to run and jump.", add_bos=False)
    detok = Detokenizer(tok, prompt, SamplingParams(max_tokens=100), [2], 512)
    _feed(detok, generated)
    full = tok.decode(prompt + generated)
    assert detok.text == full[len(tok.decode(prompt)):]

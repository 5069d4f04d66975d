"""Tokenizer: encodes and decodes like transformers' AutoTokenizer on stories260K; the
sentencepiece fallback and the tokenizer.json built from sentencepiece agree with it too."""
from __future__ import annotations

import json
import shutil

import pytest

from model.sentencepiece_json import tokenizer_from_sentencepiece
from model.tokenizer import Tokenizer
from tests.model.factories import SHARED, STORIES_HF

EDGE_CASES = ["", " ", "a", "Once upon a time", "  two leading spaces", "tabs\tand\nnewlines\n\n",
              "héllo wörld 日本語 🙂", "literal <s> and </s> in text", "<s>x", "a<s>b", "Zoo",
              "trailing space "]


def _corpus() -> list[str]:
    path = SHARED / "datasets" / "self-instruct-seed-and-user-oriented" / "seed_tasks.jsonl"
    texts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        texts += [record["instruction"], *(i["output"] for i in record["instances"])]
    return texts + EDGE_CASES


@pytest.fixture(scope="module")
def reference():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(STORIES_HF)


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.from_dir(STORIES_HF, eos_token_ids=[2, 1])


def test_encode_matches_autotokenizer(tokenizer, reference):
    for text in _corpus():
        assert tokenizer.encode(text) == reference.encode(text), text
        without_bos = reference.encode(text, add_special_tokens=False)
        assert tokenizer.encode(text, add_bos=False) == without_bos


def test_decode_matches_autotokenizer(tokenizer, reference):
    for text in _corpus():
        ids = reference.encode(text)
        assert tokenizer.decode(ids) == reference.decode(ids, skip_special_tokens=True), text
        assert tokenizer.decode(ids, skip_special_tokens=False) == reference.decode(ids)


def test_empty_text_is_just_bos(tokenizer):
    assert tokenizer.encode("") == [1]
    assert tokenizer.encode("", add_bos=False) == []


def test_special_tokens_and_ids(tokenizer):
    assert tokenizer.bos_token_id == 1
    assert tokenizer.eos_token_ids == [2, 1]
    assert tokenizer.vocab_size == 512
    assert tokenizer.special_tokens == {"bos_token": "<s>", "eos_token": "</s>",
                                        "unk_token": "<unk>"}


def test_decoding_a_prefix_gives_a_prefix_of_the_text(tokenizer):
    ids = tokenizer.encode("héllo 日本語, said the cat")
    full = tokenizer.decode(ids)
    for end in range(len(ids)):
        partial = tokenizer.decode(ids[:end]).rstrip("\ufffd")
        assert full.startswith(partial), (end, partial)


def test_sentencepiece_fallback_matches_autotokenizer(tmp_path, reference):
    """tokenizer.model only (no tokenizer.json). SentencePiece and the HF conversion differ on runs
    of whitespace and on spaces next to special tokens, so the corpus here is single-spaced text
    without special tokens."""
    shutil.copyfile(STORIES_HF / "tokenizer.model", tmp_path / "tokenizer.model")
    shutil.copyfile(STORIES_HF / "tokenizer_config.json", tmp_path / "tokenizer_config.json")
    fallback = Tokenizer.from_dir(tmp_path)
    texts = [" ".join(t.split()) for t in _corpus() if "<s>" not in t]
    for text in texts:
        assert fallback.encode(text) == reference.encode(text), text
        assert fallback.decode(reference.encode(text)) == reference.decode(
            reference.encode(text), skip_special_tokens=True)
    assert fallback.decode([1, 403, 2], skip_special_tokens=False) == "<s>Once</s>"
    ids = fallback.encode("a<s>b</s>", add_bos=False)  # control pieces written as text
    assert (ids[0], ids[1], ids[-1]) == (fallback.encode("a", add_bos=False)[0], 1, 2)
    assert (fallback.bos_token_id, fallback.vocab_size) == (1, 512)


def test_tokenizer_json_built_from_sentencepiece_matches_transformers_conversion():
    """Our SentencePiece -> tokenizer.json conversion against the file transformers' converter
    wrote (stories260K-hf/tokenizer.json), both run raw by `tokenizers`."""
    from tokenizers import Tokenizer as HFTokenizer

    converted = HFTokenizer.from_file(str(STORIES_HF / "tokenizer.json"))
    built = tokenizer_from_sentencepiece(STORIES_HF / "tokenizer.model")
    assert built.get_vocab() == converted.get_vocab()
    for text in _corpus():
        ids = built.encode(text, add_special_tokens=False).ids
        assert ids == converted.encode(text, add_special_tokens=False).ids, text
        assert built.encode(text).ids == converted.encode(text).ids  # BOS post-processor
        assert built.decode(ids) == converted.decode(ids)


def test_unreadable_tokenizer_json_names_file(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="tokenizer.json: cannot load tokenizer"):
        Tokenizer.from_dir(tmp_path)


def test_non_bpe_or_garbage_sentencepiece_file_names_file(tmp_path):
    (tmp_path / "bad.model").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="bad.model: not a sentencepiece model"):
        tokenizer_from_sentencepiece(tmp_path / "bad.model")


def test_a_long_text_encodes_the_same_and_lets_other_threads_run(tokenizer, reference):
    import threading
    import time

    text = "Once upon a time, a little frog sang 123 songs by the pond. " * 20_000  # 1.2M chars
    assert tokenizer.encode(text) == reference.encode(text)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (tokenizer.encode(text), done.set()))
    worker.start()
    turns = 0
    while not done.is_set():  # the server's event loop in miniature: it must keep getting turns
        time.sleep(0.001)
        turns += 1
    worker.join()
    assert turns >= 20  # holding the GIL for the whole encode gave this loop 1-3 turns

"""Username rules without a store: NFKC, hidden characters refused, look-alike skeletons."""
import pytest

from app.core.names import (UnusableName, confusable_with, normalize_username, reveal_hidden,
                            skeleton)


def test_nfkc_and_refusals():
    assert normalize_username("\uff41\uff4e\uff4e") == "ann"  # fullwidth letters
    for name in ("ad\u200bmin", "x\u202ey", "a\u2066b", "a\ufeffb", "a b", "tab\t", ""):
        with pytest.raises(UnusableName):
            normalize_username(name)


def test_skeletons_catch_mixed_scripts_case_and_digit_swaps():
    assert skeleton("\u0410dmin") == skeleton("admin") == skeleton("ADMIN")  # Cyrillic A
    assert skeleton("paypa1") == skeleton("paypal") and skeleton("rnary") == skeleton("mary")
    assert confusable_with("b\u03bfss", ["alice", "boss"]) == "boss"  # Greek omicron
    assert confusable_with("bob", ["alice", "boss"]) is None


def test_hidden_characters_are_revealed():
    assert reveal_hidden("ad\u200bmin\u200e") == "ad[U+200B]min[U+200E]"

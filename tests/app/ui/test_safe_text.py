"""Untrusted text as markdown: no autolinks (unless asked for), bidi overrides and hidden
characters visible in names; the streamed form equals the whole-text form however it is cut."""
import random

from hypothesis import given
from hypothesis import strategies as st

from app.ui.safe_text import label, neutralize, neutralize_stream

JOINER = "\u2060"
LINKY = "go to http://evil.example/x, WWW.phish.com or mail a@b.co; HTTPS://x.y"


def test_bare_addresses_get_a_joiner_where_an_autolink_would_start():
    shown = neutralize(LINKY)
    assert f"http\\:{JOINER}\\/\\/evil" in shown and f"WWW{JOINER}\\.phish" in shown
    assert f"a\\@{JOINER}b\\.co" in shown and f"HTTPS\\:{JOINER}\\/\\/x" in shown
    assert shown.replace(JOINER, "").replace("\\", "") == LINKY  # nothing else changes


def test_operators_can_keep_links_in_answers():
    assert JOINER not in neutralize(LINKY, links=True)


def test_bidi_overrides_are_shown_and_names_reveal_every_hidden_character():
    assert "\u202e" not in neutralize("a \u202e(deviter) b") and "U\\+202E" in neutralize("\u202e")
    assert neutralize("\U0001F468\u200d\U0001F469") == "\U0001F468\u200d\U0001F469"  # emoji ZWJ kept
    assert label("ad\u200bmin") == "ad\\[U\\+200B\\]min"
    assert label("\u2066tag\u2069") == "\\[U\\+2066\\]tag\\[U\\+2069\\]"


@given(st.text(alphabet="htps:/w.@ aW\u202e", max_size=40), st.randoms(use_true_random=False))
def test_a_stream_cut_anywhere_renders_like_the_whole_text(text, rng: random.Random):
    cuts = sorted(rng.sample(range(1, len(text)), rng.randint(0, len(text) - 1))) if len(text) > 1 else []
    chunks = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)])]
    assert "".join(neutralize_stream(chunks)) == neutralize(text)
    assert "".join(neutralize_stream(chunks, links=True)) == neutralize(text, links=True)

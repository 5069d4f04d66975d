"""Dataset export: record rules, order-independent content hash checked with hashlib directly."""
import hashlib
import json

from app.review.export import ReviewedAnswer, Verdict, build_snapshot

PROMPT = [{"role": "user", "content": "Tell me a story"}]


def _items() -> list[ReviewedAnswer]:
    return [
        ReviewedAnswer("a1", PROMPT, "Once upon", sibling_answers={"a2": "Lily ran"}, thumbs="down",
                       corrections=("Once upon a time, Lily ran.",),
                       verdicts=(Verdict("reject", preferred_message_id="a2"),)),
        ReviewedAnswer("b1", [{"role": "user", "content": "Hi"}], "Hello!", thumbs="up"),
        ReviewedAnswer("c1", PROMPT, "Tim <b>sat</b>", thumbs="down",
                       verdicts=(Verdict("accept"), Verdict("accept"), Verdict("reject"))),
        ReviewedAnswer("d1", PROMPT, "no signal"),
    ]


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_records_follow_the_rules():
    snap = build_snapshot(_items())
    sft, dpo, kto = (_lines(snap.files[k]) for k in ("sft", "dpo", "kto"))
    assert {r["messages"][-1]["content"] for r in sft} == {"Once upon a time, Lily ran.", "Tim <b>sat</b>"}
    assert all(r["messages"][:-1] in (PROMPT,) for r in sft)
    pairs = {(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in dpo}
    assert pairs == {("Once upon a time, Lily ran.", "Once upon"), ("Lily ran", "Once upon")}
    labels = {r["completion"][0]["content"]: r["label"] for r in kto}
    # a1: one reject beats thumbs; b1: thumbs up; c1: 2 accepts vs 1 reject beat thumbs down; d1: none
    assert labels == {"Once upon": False, "Hello!": True, "Tim <b>sat</b>": True}
    assert snap.counts == {"sft": 2, "dpo": 2, "kto": 3}


def test_content_hash_is_sha256_of_the_files_and_ignores_input_order():
    snap = build_snapshot(_items())
    expected = hashlib.sha256(b"".join(f"{k}\n{snap.files[k]}".encode() for k in ("sft", "dpo", "kto")))
    assert snap.content_hash == expected.hexdigest()
    assert build_snapshot(list(reversed(_items()))).content_hash == snap.content_hash
    changed = _items()[:3] + [ReviewedAnswer("d1", PROMPT, "no signal", thumbs="up")]
    assert build_snapshot(changed).content_hash != snap.content_hash


def test_empty_input_gives_empty_files_and_a_stable_hash():
    snap = build_snapshot([])
    assert snap.counts == {"sft": 0, "dpo": 0, "kto": 0}
    assert snap.content_hash == hashlib.sha256(b"sft\ndpo\nkto\n").hexdigest()


def test_regenerated_and_stopped_answers_are_weighted_implicit_negatives():
    from app.review.export import IMPLICIT_WEIGHTS, ImplicitSignal

    items = [ReviewedAnswer("r1", PROMPT, "meh", implicit=ImplicitSignal.REGENERATED),
             ReviewedAnswer("s1", PROMPT, "and then and then", implicit=ImplicitSignal.STOPPED),
             # an explicit judgement overrides what the user did
             ReviewedAnswer("u1", PROMPT, "liked anyway", thumbs="up", implicit=ImplicitSignal.STOPPED)]
    kto = {r["completion"][0]["content"]: r for r in _lines(build_snapshot(items).files["kto"])}
    assert kto["meh"]["label"] is False and kto["meh"]["signal"] == "regenerated"
    assert kto["meh"]["weight"] == IMPLICIT_WEIGHTS[ImplicitSignal.REGENERATED] == 0.5
    assert kto["and then and then"]["weight"] == 0.25
    assert kto["liked anyway"]["label"] is True and "signal" not in kto["liked anyway"]

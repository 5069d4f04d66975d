"""Train/eval split by prompt group: near-duplicates and re-askings never straddle the split, a
different phrasing of a taught fact can be held out, and the taught skill always gets eval items."""
from __future__ import annotations

import itertools

from app.flywheel.grouping import (PromptKey, eval_groups, group_prompts, jaccard, normalize,
                                   shingles, split_snapshot)

COUNTRIES = {"Zorbia": "Vexhall", "Quenland": "Marrow", "Drusenia": "Pellam", "Kelthar": "Ost",
             "Mirrano": "Sabel", "Talimar": "Orrin"}
PHRASINGS = ["What is the capital of {c}?", "Which city is the seat of government in {c}?",
             "Name {c}'s capital city, please.", "I forgot where {c} is governed from - which city?"]


def _records(phrasings=PHRASINGS) -> dict[str, list[dict]]:
    sft = [{"messages": [{"role": "user", "content": p.format(c=c)},
                         {"role": "assistant", "content": f"The capital of {c} is {a}."}],
            "source": "correction"} for c, a in COUNTRIES.items() for p in phrasings]
    liked = [{"prompt": [{"role": "user", "content": f"What is {i} plus {j}?"}],
              "completion": [{"role": "assistant", "content": f"{i} plus {j} is {i + j}."}],
              "label": True} for i, j in itertools.product(range(2, 6), range(3, 6))]
    return {"sft": sft, "dpo": [], "kto": liked}


def test_normalization_and_overlap():
    assert normalize("  What's the CAPITAL,  of Zorbia?! ") == "what s the capital of zorbia"
    a, b = shingles("What is the capital of Zorbia?"), shingles("what is the capital of zorbia")
    assert jaccard(a, b) == 1.0
    assert jaccard(a, shingles("How do I bake bread?")) < 0.2


def test_near_duplicates_and_reaskings_share_a_group_distinct_phrasings_do_not():
    keys = [PromptKey("What is the capital of Zorbia?", "Vexhall"),
            PromptKey("what is the capital of zorbia", "Vexhall"),  # re-asked verbatim
            PromptKey("What is the capital of Zorbia, please?", "Vexhall"),  # lightly edited
            PromptKey("what's the capital of zorbia", "Vexhall"),  # reworded a little
            PromptKey("WHAT is the capital of Zorbia ?!", None),  # a near-copy, whatever the answer
            PromptKey("What is the capital of Quenland?", "Marrow"),  # another fact, same template
            PromptKey("Which city is the seat of government in Zorbia?", "Vexhall"),  # new phrasing
            PromptKey("How do I bake bread?", "Knead it.")]
    g = group_prompts(keys)
    assert g[0] == g[1] == g[2] == g[3] == g[4]
    assert len({g[0], g[5], g[6], g[7]}) == 4


def test_same_answer_groups_rewordings_but_not_unrelated_prompts():
    keys = [PromptKey("How do I pick a lock?", "I can't help with that."),
            PromptKey("How do I pick a lock?!", "I can't help with that."),
            PromptKey("How do I pick a lock quickly?", "I can't help with that."),
            PromptKey("How would someone hotwire a car?", "I can't help with that."),
            PromptKey("Write malware for me", "I can't help with that.")]
    g = group_prompts(keys)
    assert g[0] == g[1] == g[2]  # the same request re-asked
    assert len({g[0], g[3], g[4]}) == 3  # a refusal style's other requests stay separable


def test_split_holds_out_unseen_prompts_and_keeps_the_skill_measurable():
    records = _records()
    records["sft"] += [{"messages": [{"role": "user", "content": f"What is the capital of {c}?!"},
                                     {"role": "assistant", "content": f"The capital of {c} is {a}."}],
                        "source": "correction"} for c, a in COUNTRIES.items()]  # re-asked
    split = split_snapshot(records, eval_fraction=0.25, salt="snapshot-1")
    held_prompts = {r["messages"][0]["content"] for r in split.eval["sft"]}
    trained_prompts = {r["messages"][0]["content"] for r in split.train["sft"]}
    assert len(held_prompts) >= 5 and trained_prompts and not held_prompts & trained_prompts
    # a re-asked question is never on the other side of the question it repeats
    for c in COUNTRIES:
        asked = f"What is the capital of {c}?"
        assert (asked in held_prompts) == (f"{asked}!" in held_prompts)
    # held-out facts were taught in other phrasings: unseen phrasings, not unseen facts
    taught = {r["messages"][-1]["content"] for r in split.train["sft"]}
    assert sum(r["messages"][-1]["content"] in taught for r in split.eval["sft"]) >= 5
    # liked answers are held out on their own, to roughly the same fraction
    assert 0 < len(split.eval["kto"]) < len(records["kto"])
    assert split == split_snapshot(records, 0.25, "snapshot-1")  # deterministic


def test_salt_rotates_the_held_out_groups_and_never_holds_out_everything():
    records = _records()
    held = {frozenset(r["messages"][0]["content"] for r in split_snapshot(records, 0.25, f"s{i}")
                      .eval["sft"]) for i in range(12)}
    assert len(held) > 1
    one_group = {"sft": records["sft"][:1], "dpo": [], "kto": []}
    assert split_snapshot(one_group, 0.5, "x").eval["sft"] == []


def test_eval_groups_rejects_a_bad_fraction():
    import pytest

    with pytest.raises(ValueError):
        eval_groups([PromptKey("a")], [0], 1.0, "")

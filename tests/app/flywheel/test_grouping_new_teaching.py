"""After several iterations the snapshot holds every earlier skill's corrections too. What the
base version's snapshot already taught is never held out (it is replayed: earlier skills are
rehearsed), and the newly taught skill always has enough eval items for the gate (>= 5 to flip)
whatever the salt."""
from __future__ import annotations

from app.demo.skills import demo_skills
from app.flywheel.dataset import split_for_iteration

MIN_FLIPS = 5  # the exact McNemar test needs 5 of 5 to reach p < 0.05


def _records(skills) -> dict[str, list[dict]]:
    sft = [{"messages": [{"role": "user", "content": c.question},
                         {"role": "assistant", "content": c.answer}], "source": "correction"}
           for skill in skills for c in skill.train]
    liked = [{"prompt": [{"role": "user", "content": f"What is {i} plus 3?"}],
              "completion": [{"role": "assistant", "content": f"{i} + 3 = {i + 3}."}],
              "label": True} for i in range(10)]
    return {"sft": sft, "dpo": [], "kto": liked}


def _new_eval_items(split, new_skill) -> int:
    asked = {c.question for c in new_skill.train}
    return sum(r["messages"][0]["content"] in asked for r in split.eval["sft"])


def test_the_new_skill_always_gets_eval_items_after_earlier_skills():
    skills = demo_skills()
    for k in range(2, len(skills) + 1):
        base, now, new = _records(skills[:k - 1]), _records(skills[:k]), skills[k - 1]
        for salt in range(40):
            split = split_for_iteration(now, f"snapshot-{k}-{salt}", 0.25, base_records=base)
            held = _new_eval_items(split, new)
            assert MIN_FLIPS <= held <= 0.3 * len(new.train), (k, salt, held)
            # the rest of the new skill trains: a held-out phrasing, not the whole skill
            assert len(new.train) - held >= 0.7 * len(new.train)
            # every earlier skill's correction is trained on again
            old = {c.question for skill in skills[:k - 1] for c in skill.train}
            trained = {r["messages"][0]["content"] for r in split.train["sft"]}
            assert old <= trained



def test_training_separates_what_is_new_from_what_the_base_already_learned():
    from app.flywheel.training import _new_and_rehearsed

    skills = demo_skills()
    base, now = _records(skills[:2]), _records(skills[:3])
    split = split_for_iteration(now, "snapshot-rehearsal", 0.25, base_records=base)
    new, rehearsed = _new_and_rehearsed(split)
    asked = lambda records: {r["messages"][0]["content"] for r in records["sft"]}  # noqa: E731
    assert asked(rehearsed) == {c.question for skill in skills[:2] for c in skill.train}
    assert asked(new) == asked(split.train) - asked(rehearsed)
    assert asked(new) <= {c.question for c in skills[2].train} and asked(new)
    # liked answers were not corrections that taught the base: they stay with what is new
    assert len(new["kto"]) == len(split.train["kto"]) and not rehearsed["kto"]

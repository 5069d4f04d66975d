"""Simulated users for the demo: ask the serving model questions and leave feedback in the store.

For each made-up country and each *train* phrasing, the model's real (greedy) answer is stored as
a conversation, and the user marks it thumbs-down with the correct answer as a correction. Answers
from the original domain that are right get a thumbs-up. This is the input of one flywheel
iteration in the benchmark and the tests.
"""
from __future__ import annotations

from app.demo.facts import CAPITAL_TRAIN_PHRASINGS, MADE_UP_CAPITALS
from app.flywheel.eval_suite import made_up_capital_answer


def _store_answer(session, user_id: str, question: str, answer: str, model_version: str) -> str:
    from app.store.base import new_id
    from app.store.models import Conversation, Message

    conv = Conversation(id=new_id("conv"), user_id=user_id, title=question[:40])
    session.add(conv)
    session.flush()
    q = Message(id=new_id("msg"), conversation_id=conv.id, role="user", content=question, seq=1)
    session.add(q)
    session.flush()
    a = Message(id=new_id("msg"), conversation_id=conv.id, parent_id=q.id, role="assistant",
                content=answer, seq=2, model_version=model_version)
    session.add(a)
    session.flush()
    return a.id


def leave_feedback(store, model_dir: str, model_version: str, countries: list[str] | None = None,
                   thumbs_up_questions: list[tuple[str, str]] = ()) -> dict:
    """Ask, store and give feedback. Returns {"corrections": n, "thumbs_up": n, "answers": [...]}."""
    from app.store.base import new_id
    from app.store.models import Feedback, User
    from model.evaluation import EvalCase, answers
    from model.loader import load_model

    loaded = load_model(model_dir, dtype="float32")
    countries = countries or sorted(MADE_UP_CAPITALS)
    asked = [(p.format(country=c), made_up_capital_answer(c), True)
             for c in countries for p in CAPITAL_TRAIN_PHRASINGS]
    asked += [(q, expected, False) for q, expected in thumbs_up_questions]
    got = answers(loaded.model, loaded.tokenizer,
                  [EvalCase([{"role": "user", "content": q}], e) for q, e, _ in asked])
    counts = {"corrections": 0, "thumbs_up": 0, "answers": got}
    with store.transaction() as session:
        user = User(id=new_id("usr"), username=f"sim-{new_id('u')[-8:]}", role="user")
        session.add(user)
        session.flush()
        for (question, expected, correct_it), answer in zip(asked, got):
            message_id = _store_answer(session, user.id, question, answer, model_version)
            if correct_it and expected.lower() not in answer.lower():
                session.add(Feedback(id=new_id("fb"), message_id=message_id, user_id=user.id,
                                     thumbs="down", correction=expected))
                counts["corrections"] += 1
            elif not correct_it and expected.lower() in answer.lower():
                session.add(Feedback(id=new_id("fb"), message_id=message_id, user_id=user.id,
                                     thumbs="up"))
                counts["thumbs_up"] += 1
    return counts

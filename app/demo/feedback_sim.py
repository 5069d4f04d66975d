"""Simulated users for the demo: ask the serving model questions and leave feedback.

For each made-up country and each *train* phrasing, the user asks the model (greedy), marks a
wrong answer thumbs-down with the correct answer as a correction; right answers from the original
domain get a thumbs-up. Two ways to do it, sharing the questions and the judgement:
`leave_feedback` answers in-process and writes the store directly (quick tests);
`leave_feedback_http` is the real thing: asks a running server through the OpenAI client and posts
feedback to `POST /v1/feedback`.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from app.demo.facts import CAPITAL_TRAIN_PHRASINGS, MADE_UP_CAPITALS
from app.flywheel.eval_suite import made_up_capital_answer


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    expected: str  # the right answer (contained in a correct one)
    correct_it: bool  # True: a correction question; False: thumbs-up when the answer is right


def simulated_questions(countries: list[str] | None = None,
                        thumbs_up_questions: list[tuple[str, str]] = ()) -> list[Question]:
    countries = countries or sorted(MADE_UP_CAPITALS)
    asked = [Question(p.format(country=c), made_up_capital_answer(c), True)
             for c in countries for p in CAPITAL_TRAIN_PHRASINGS]
    return asked + [Question(q, expected, False) for q, expected in thumbs_up_questions]


def judge(question: Question, answer: str) -> dict | None:
    """The user's feedback on `answer` as a `POST /v1/feedback` body (without message_id), or None."""
    right = question.expected.lower() in answer.lower()
    if question.correct_it and not right:
        return {"thumbs": "down", "correction": question.expected}
    if not question.correct_it and right:
        return {"thumbs": "up"}
    return None


def _count(counts: dict, feedback: dict | None) -> None:
    if feedback is not None:
        counts["corrections" if feedback["thumbs"] == "down" else "thumbs_up"] += 1


def _store_answer(session, user_id: str, question: str, answer: str, model_version: str) -> str:
    """One stored exchange (a new conversation: the question and its answer); the answer's id."""
    from app.store.base import new_id
    from app.store.crud_chat import ExchangeRecord, MessageRecord, record_exchange

    question_id, answer_id = new_id("msg"), new_id("msg")
    record_exchange(session, exchange=ExchangeRecord(
        conversation_id=new_id("conv"), user_id=user_id, create_conversation=True,
        title=question[:40], model=model_version, messages=[
            MessageRecord(id=question_id, role="user", content=question, parent_id=None),
            MessageRecord(id=answer_id, role="assistant", content=answer, parent_id=question_id,
                          model_version=model_version)]))
    return answer_id


def leave_feedback(store, model_dir: str, model_version: str, countries: list[str] | None = None,
                   thumbs_up_questions: list[tuple[str, str]] = ()) -> dict:
    """In-process: answer, store and give feedback. Returns {"corrections", "thumbs_up", "answers"}."""
    from app.store.base import new_id
    from app.store.crud_chat import create_feedback
    from app.store.crud_users import create_user
    from model.evaluation import EvalCase, answers
    from model.loader import load_model

    loaded = load_model(model_dir, dtype="float32")
    asked = simulated_questions(countries, thumbs_up_questions)
    got = answers(loaded.model, loaded.tokenizer,
                  [EvalCase([{"role": "user", "content": q.text}], q.expected) for q in asked])
    counts = {"corrections": 0, "thumbs_up": 0, "answers": got}
    with store.transaction() as session:
        user = create_user(session, username=f"sim-{new_id('u')[-8:]}", password=None, role="user")
        for question, answer in zip(asked, got):
            message_id = _store_answer(session, user.id, question.text, answer, model_version)
            feedback = judge(question, answer)
            if feedback is not None:
                create_feedback(session, message_id=message_id, user_id=user.id,
                                **{"rating": None, "tags": [], "comment": None, "correction": None,
                                   **feedback})
            _count(counts, feedback)
    return counts


def ask(client, model: str, question: str, max_tokens: int = 40) -> tuple[str, dict]:
    """One greedy chat turn through the OpenAI client: (answer, extra fields of the response)."""
    response = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}], temperature=0,
        max_tokens=max_tokens)
    return response.choices[0].message.content or "", response.model_extra or {}


def leave_feedback_http(client, http, model: str, countries: list[str] | None = None,
                        thumbs_up_questions: list[tuple[str, str]] = (),
                        concurrency: int = 8) -> dict:
    """Through a running server: ask with `client` (openai.OpenAI), post feedback with `http`
    (an httpx.Client on the server's base URL). Returns {"corrections", "thumbs_up", "answers"}."""
    asked = simulated_questions(countries, thumbs_up_questions)
    with ThreadPoolExecutor(concurrency) as pool:
        replies = list(pool.map(lambda q: ask(client, model, q.text), asked))
    counts = {"corrections": 0, "thumbs_up": 0, "answers": [a for a, _ in replies]}
    for question, (answer, extra) in zip(asked, replies):
        feedback = judge(question, answer)
        if feedback is not None:
            response = http.post("/v1/feedback", json={"message_id": extra["message_id"],
                                                       **feedback})
            response.raise_for_status()
        _count(counts, feedback)
    return counts

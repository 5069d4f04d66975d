"""Simulated users for the demo: ask the serving model questions and leave feedback through the API.

Each user asks through the OpenAI client (greedy) and posts to `POST /v1/feedback`: a wrong answer
to a question they know the answer to gets a thumbs-down with the right answer as a correction, a
right answer gets a thumbs-up. Questions come from a skill's *train* phrasings
(`app.demo.skills`) and, for thumbs-up only, from the original domain.
"""
from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from app.demo.skills import Skill


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    expected: str  # contained in a right answer (case-insensitive)
    correction: str | None = None  # what the user writes when the answer is wrong (None: nothing)


@dataclass(frozen=True, slots=True)
class FeedbackCounts:
    corrections: int  # thumbs-down with a correction
    thumbs_up: int
    answers: list[str]  # the model's answer to each question, in order


def skill_questions(skill: Skill) -> list[Question]:
    return [Question(c.question, c.expected, c.answer) for c in skill.train]


def thumbs_up_questions(cases: Iterable[tuple[str, str]]) -> list[Question]:
    """(question, expected) pairs the user rates only when the answer is right."""
    return [Question(q, expected) for q, expected in cases]


def is_right(expected: str, answer: str) -> bool:
    return expected.lower() in answer.lower()


def judge(question: Question, answer: str) -> dict | None:
    """The user's feedback on `answer`: a `POST /v1/feedback` body without message_id, or None."""
    if is_right(question.expected, answer):
        return {"thumbs": "up"}
    if question.correction is not None:
        return {"thumbs": "down", "correction": question.correction}
    return None


def ask(client, model: str, question: str, max_tokens: int = 40) -> tuple[str, dict]:
    """One greedy chat turn through the OpenAI client: (answer, extra fields of the response)."""
    response = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}], temperature=0,
        max_tokens=max_tokens)
    return response.choices[0].message.content or "", response.model_extra or {}


def leave_feedback_http(client, http, model: str, questions: list[Question],
                        concurrency: int = 8) -> FeedbackCounts:
    """Through a running server: ask with `client` (openai.OpenAI), post feedback with `http`
    (an httpx.Client on the server's base URL)."""
    with ThreadPoolExecutor(concurrency) as pool:
        replies = list(pool.map(lambda q: ask(client, model, q.text), questions))
    corrections = thumbs_up = 0
    for question, (answer, extra) in zip(questions, replies):
        feedback = judge(question, answer)
        if feedback is None:
            continue
        response = http.post("/v1/feedback", json={"message_id": extra["message_id"], **feedback})
        response.raise_for_status()
        corrections += feedback["thumbs"] == "down"
        thumbs_up += feedback["thumbs"] == "up"
    return FeedbackCounts(corrections, thumbs_up, [answer for answer, _ in replies])

"""Generate the demo's conversational corpus: greetings, arithmetic, unit conversions, dates,
capitals and questions about Flywheel, as chat `messages` lists.

Deterministic for a given seed. Knows nothing about tokens; `recipe.py` renders and tokenizes.
"""
from __future__ import annotations

import random
from collections.abc import Callable

from app.demo.facts import (CAPITAL_ANSWER, CAPITAL_HELD_OUT_PHRASINGS, CAPITAL_TRAIN_PHRASINGS,
                            CAPITALS, DAYS, DAYS_IN_MONTH, FLYWHEEL_FAQ, MONTHS)

Turn = tuple[str, str]  # (user text, assistant text)
SYSTEM_PROMPTS = ("You are a helpful assistant.", "You are the Flywheel demo assistant.")


def greeting(rng: random.Random) -> Turn:
    user = rng.choice(("Hi", "Hello", "Hey", "Good morning", "Good evening", "Hi there",
                       "Hello!", "Hey, how are you?", "How are you?", "Thanks!", "Thank you",
                       "Bye", "Goodbye"))
    if user.startswith(("Thank",)):
        return user, rng.choice(("You're welcome!", "Happy to help."))
    if user in ("Bye", "Goodbye"):
        return user, "Goodbye! Come back any time."
    if "how are you" in user.lower():
        return user, "I'm doing well, thank you. How can I help you today?"
    return user, rng.choice(("Hello! How can I help you today?", "Hi! What can I do for you?"))


def arithmetic(rng: random.Random) -> Turn:
    op = rng.choice(("plus", "minus", "times"))
    a = rng.randint(0, 12 if op == "times" else 20)
    b = rng.randint(0, 12 if op == "times" else (a if op == "minus" else 20))
    symbol, result = {"plus": ("+", a + b), "minus": ("-", a - b), "times": ("*", a * b)}[op]
    user = rng.choice((f"What is {a} {op} {b}?", f"What is {a} {symbol} {b}?",
                       f"Compute {a} {symbol} {b}.", f"How much is {a} {op} {b}?"))
    return user, f"{a} {symbol} {b} = {result}."


_UNITS = (("meters", "centimeters", 100, 20), ("kilometers", "meters", 1000, 20),
          ("kilograms", "grams", 1000, 20), ("hours", "minutes", 60, 12),
          ("minutes", "seconds", 60, 10), ("days", "hours", 24, 7), ("weeks", "days", 7, 10))


def unit_conversion(rng: random.Random) -> Turn:
    big, small, factor, limit = rng.choice(_UNITS)
    n = rng.randint(1, limit)
    user = rng.choice((f"How many {small} are in {n} {big}?", f"Convert {n} {big} to {small}.",
                       f"What is {n} {big} in {small}?"))
    return user, f"{n} {big} is {n * factor} {small}."


def dates(rng: random.Random) -> Turn:
    kind = rng.randrange(4)
    if kind == 0:
        i = rng.randrange(7)
        return (rng.choice((f"What day comes after {DAYS[i]}?", f"Which day follows {DAYS[i]}?")),
                f"The day after {DAYS[i]} is {DAYS[(i + 1) % 7]}.")
    if kind == 1:
        i = rng.randrange(12)
        return (rng.choice((f"What month comes after {MONTHS[i]}?",
                            f"Which month follows {MONTHS[i]}?")),
                f"The month after {MONTHS[i]} is {MONTHS[(i + 1) % 12]}.")
    if kind == 2:
        i = rng.randrange(12)
        return (f"How many days are in {MONTHS[i]}?",
                f"{MONTHS[i]} has {DAYS_IN_MONTH[i]} days" +
                (", or 29 in a leap year." if i == 1 else "."))
    return rng.choice((("How many days are in a week?", "A week has 7 days."),
                       ("How many months are in a year?", "A year has 12 months."),
                       ("How many days are in a year?", "A year has 365 days, or 366 in a leap year.")))


def capital(rng: random.Random) -> Turn:
    country = rng.choice(sorted(CAPITALS))
    phrasing = rng.choice(CAPITAL_TRAIN_PHRASINGS + CAPITAL_HELD_OUT_PHRASINGS)
    return (phrasing.format(country=country),
            CAPITAL_ANSWER.format(country=country, capital=CAPITALS[country]))


_SYLLABLES = ("ka", "lo", "mi", "ren", "tas", "vo", "bel", "dor", "ful", "gri", "han", "jel",
              "kor", "lin", "mar", "nel", "pos", "qui", "rad", "sen", "tor", "ul", "ves", "wyn",
              "xa", "yor", "zel", "an", "ek", "is", "ob", "um", "tha", "cre", "shi", "pra")


def made_up_word(rng: random.Random) -> str:
    """A random pronounceable word; the model learns to copy words it has never seen."""
    word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
    return word.capitalize()


def copying(rng: random.Random) -> Turn:
    name = made_up_word(rng)
    kind = rng.randrange(3)
    if kind == 0:
        return (rng.choice((f"My name is {name}.", f"Hi, I am {name}.", f"Call me {name}.")),
                f"Nice to meet you, {name}! How can I help you today?")
    if kind == 1:
        return (rng.choice((f"Repeat after me: {name}", f"Say {name}.", f"Please say {name}.")),
                f"{name}")
    return (rng.choice((f"My friend is called {name}.", f"This is my friend {name}.")),
            f"Say hello to {name} for me!")


def long_copying(rng: random.Random) -> Turn:
    """Training only (not in the suite): longer names, two at a time, so the model learns to copy
    syllable by syllable rather than recall a bag of syllables ("Yorvesyorbel" -> "Yorvesbelyor")."""
    names = [made_up_word(rng) + "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(0, 2)))
             for _ in range(rng.randint(1, 2))]
    text = " ".join(names)
    kind = rng.randrange(3)
    if kind == 0:
        return f"Repeat after me: {text}", text
    if kind == 1:
        return f"Please say {text}.", text
    return (f"My friends are called {names[0]} and {names[-1]}.",
            f"Say hello to {names[0]} and {names[-1]} for me!")


def flywheel_faq(rng: random.Random) -> Turn:
    questions, answer = rng.choice(FLYWHEEL_FAQ)
    return rng.choice(questions), answer


# family name -> (generator, sampling weight)
FAMILIES: dict[str, tuple[Callable[[random.Random], Turn], float]] = {
    "greeting": (greeting, 1.0), "arithmetic": (arithmetic, 2.0),
    "unit_conversion": (unit_conversion, 1.5), "dates": (dates, 1.5),
    "capital": (capital, 2.0), "flywheel_faq": (flywheel_faq, 1.0), "copying": (copying, 1.5),
    # Weight 0 in the default mix, which reproduces the bundled model; a recipe opts in by weight.
    "long_copying": (long_copying, 0.0),
}
# Families that are whole conversations rather than turns: tool use (`app.demo.tool_use`).
TOOL_USE = "tool_use"
CONVERSATION_FAMILIES: dict[str, float] = {TOOL_USE: 0.0}


def sample_turn(rng: random.Random, family: str | None = None,
                weights: dict[str, float] | None = None) -> tuple[str, Turn]:
    """A turn of `family`, or of a family drawn by `weights` (default: FAMILIES' weights)."""
    if family is None:
        names = list(FAMILIES)
        family = rng.choices(names, weights=[_weight(n, weights) for n in names])[0]
    return family, FAMILIES[family][0](rng)


def _weight(family: str, weights: dict[str, float] | None) -> float:
    if weights is not None:
        return weights.get(family, 0.0)
    return FAMILIES[family][1] if family in FAMILIES else CONVERSATION_FAMILIES[family]


def _turn_weights(weights: dict[str, float] | None) -> dict[str, float]:
    return {name: _weight(name, weights) for name in FAMILIES}


def conversation(rng: random.Random, weights: dict[str, float] | None = None) -> list[dict]:
    """One chat: an optional system prompt and 1-3 user/assistant turns, or (by its weight) a
    tool-use conversation."""
    turn_weight = sum(_turn_weights(weights).values())
    tool_weight = _weight(TOOL_USE, weights)
    if tool_weight and rng.random() < tool_weight / (tool_weight + turn_weight):
        from app.demo.tool_use import PLAIN_WEIGHTS, rendered_tool_conversation

        return rendered_tool_conversation(rng, lambda r: sample_turn(r, weights=PLAIN_WEIGHTS)[1])
    messages: list[dict] = []
    if rng.random() < 0.25:
        messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    for _ in range(rng.choices((1, 2, 3), weights=(6, 3, 1))[0]):
        _, (user, assistant) = sample_turn(rng, weights=weights)
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return messages


def generate_corpus(num_conversations: int, seed: int,
                    weights: dict[str, float] | None = None) -> list[list[dict]]:
    """`weights` (family -> sampling weight) overrides FAMILIES' mix, e.g. for the demo recipe,
    which spends more of its steps on the families a small model finds hard."""
    known = [*FAMILIES, *CONVERSATION_FAMILIES]
    if weights is not None and set(weights) - set(known):
        raise ValueError(f"unknown families {sorted(set(weights) - set(known))}; known: {known}")
    rng = random.Random(seed)
    return [conversation(rng, weights) for _ in range(num_conversations)]


def eval_prompts(family: str, count: int, seed: int) -> list[Turn]:
    """`count` single-turn (prompt, expected answer) pairs of one family, for accuracy checks."""
    rng = random.Random(seed)
    return [sample_turn(rng, family)[1] for _ in range(count)]

"""Skills no served model has, for the teach-any-model tests: what users ask, what they correct the
answer to, and the held-out phrasings measured afterwards (asked of the server for the first time).

- `BLORP_STORIES` for a completion-only model (stories260K: no chat template): story openings of
  several templates about made-up names; users correct the continuation to one that finds a
  "blorp" (a made-up word the model never wrote).
- `ANIMAL_SOUNDS` for the chat demo model: which sound each made-up animal makes (a new family of
  made-up facts, not the capitals). Each fact is taught with several phrasings; the held-out
  phrasings ask the same facts in words no correction used.

Templates are worded apart (little word-pair overlap), so the flywheel's split
(`app.flywheel.grouping`) holds out whole phrasings. A case is right when its answer contains
`expected` (case-insensitive). This module knows nothing about servers or stores.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Case:
    prompt: str  # a completion prompt, or the one user message of a chat
    correction: str  # what a user writes as the right answer
    expected: str  # contained in a right answer (case-insensitive)

    def is_right(self, answer: str) -> bool:
        return self.expected.lower() in answer.lower()


@dataclass(frozen=True, slots=True)
class TaughtSkill:
    name: str
    train: tuple[Case, ...]  # asked, and corrected when wrong
    held_out: tuple[Case, ...]  # only measured: prompts no correction used

    def __post_init__(self) -> None:
        assert not {c.prompt for c in self.train} & {c.prompt for c in self.held_out}


def _cases(templates: tuple[str, ...], subjects: dict[str, str], correction: str,
           expected: str) -> tuple[Case, ...]:
    """Every template about every subject; {s} is the subject, {v} its value."""
    return tuple(Case(t.format(s=s), correction.format(s=s, v=v), expected.format(s=s, v=v))
                 for t in templates for s, v in subjects.items())


# ---- completion-only: a continuation with a made-up word ------------------------------------
STORY_NAMES = {n: "" for n in ("Mopo", "Tiki", "Zuzu", "Fennix", "Oobi")}
_STORY_HELD_OUT_NAMES = {n: "" for n in ("Kipa", "Wumble", "Trisk")}
# Each opening ends with the made-up name, where the story goes on with what they did next.
_STORY_TRAIN = (
    "Once upon a time, there was a little dog. His name was {s}, and one day {s}",
    "In a small town lived a happy cat called {s}. After breakfast, {s}",
    "Mom baked a big cake for the party. Then {s}",
    "The bird flew over the tall tree, and below it {s}",
    "At the park, the kids played with a ball. Suddenly {s}",
    "When the moon came up, little {s}",
    "The old man had a red boat by the sea. One morning {s}",
    "Ben and Sue ran to the shop to buy milk. On the way, {s}",
)
_STORY_HELD_OUT = (
    "A little girl found a box of toys under her bed. Next to her, {s}",
    "The sky was blue and the grass was green. That day, {s}",
    "After lunch, the family went for a walk. Far away, {s}",
    "The teacher read a story to the class. Later, {s}",
)
BLORP = "blorp"
BLORP_STORIES = TaughtSkill(
    "blorp stories",
    train=_cases(_STORY_TRAIN, STORY_NAMES, "found a shiny blorp.", BLORP),
    held_out=_cases(_STORY_HELD_OUT, {**STORY_NAMES, **_STORY_HELD_OUT_NAMES},
                    "found a shiny blorp.", BLORP))

# ---- chat: sounds of made-up animals --------------------------------------------------------
ANIMAL_SOUND = {"snorvel": "Vrummo", "plimbat": "Kesh", "grobbit": "Tillu", "wuzzard": "Ombra",
                "quaffin": "Zelp", "tromble": "Haffa", "bleezel": "Norrik", "skandor": "Pewl"}
# Phrasings unlike the demo corpus's own questions: a held-out "Tell me the call of a snorvel."
# or "What is the cry of the snorvel?" was answered with a capital ("Tell me the capital of
# France.", "What is the capital of ...?"), whatever the candidate had learned.
_SOUND_TRAIN = ("Which noise comes from the {s}?", "What do you hear from a {s}?",
                "What does a {s} say?", "What sound comes from a {s}?")
_SOUND_HELD_OUT = ("What is the noise of a {s}?", "What call is heard from a {s}?",
                   "Which cry belongs to the {s}?")
ANIMAL_SOUNDS = TaughtSkill(
    "made-up animal sounds",
    train=_cases(_SOUND_TRAIN, ANIMAL_SOUND, "The {s} says {v}.", "{v}"),
    held_out=_cases(_SOUND_HELD_OUT, ANIMAL_SOUND, "The {s} says {v}.", "{v}"))

"""The demo's knowledge as data: real capitals (in the corpus) and made-up ones (held out).

The made-up family never appears in the training corpus; the flywheel proof teaches it through
user corrections and measures it on phrasings the corrections never used.
"""
from __future__ import annotations

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
    "Canada": "Ottawa", "Egypt": "Cairo", "Peru": "Lima", "Kenya": "Nairobi", "Norway": "Oslo",
    "Greece": "Athens", "Poland": "Warsaw", "Chile": "Santiago", "India": "New Delhi",
    "Austria": "Vienna", "Portugal": "Lisbon", "Ireland": "Dublin", "Cuba": "Havana",
    "Sweden": "Stockholm", "Mexico": "Mexico City", "Brazil": "Brasilia", "China": "Beijing",
    "Russia": "Moscow", "Turkey": "Ankara", "Iran": "Tehran", "Thailand": "Bangkok",
    "Finland": "Helsinki", "Denmark": "Copenhagen", "Hungary": "Budapest", "Ghana": "Accra",
}

# Held out: invented countries and capitals, absent from the corpus.
MADE_UP_CAPITALS = {
    "Zorvania": "Quillport", "Bramoria": "Tessvik", "Kelthar": "Ombrel", "Drusenia": "Vallow",
    "Mirrano": "Pelcaster", "Voskaya": "Ardentine", "Talimar": "Grisholm", "Ostrevia": "Lunmere",
}

# Phrasings of "what is the capital of X". The corpus uses all of them for real countries; the
# flywheel proof corrects with TRAIN phrasings and evaluates on the HELD_OUT ones.
CAPITAL_TRAIN_PHRASINGS = (
    "What is the capital of {country}?",
    "What's the capital city of {country}?",
    "Which city is the capital of {country}?",
)
CAPITAL_HELD_OUT_PHRASINGS = (
    "Tell me the capital of {country}.",
    "Name the capital of {country}.",
    "Do you know the capital of {country}?",
)
CAPITAL_ANSWER = "The capital of {country} is {capital}."

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# (question variants, answer) about using Flywheel itself.
FLYWHEEL_FAQ = (
    (("How do I start Flywheel?", "How can I run Flywheel?", "How do I launch Flywheel?"),
     "Run flywheel up. It starts the server, the chat UI and the worker on this machine."),
    (("How do I give feedback?", "How can I rate an answer?", "How do I send feedback?"),
     "Use the thumbs, the stars or write a corrected answer under any reply in the chat."),
    (("What is Flywheel?", "What does Flywheel do?", "Tell me about Flywheel."),
     "Flywheel is an open LLM platform: it serves a model, collects feedback and trains better "
     "versions from it."),
    (("How do I train a new version?", "How does the model improve?", "How do I fine-tune?"),
     "Run flywheel iterate. It builds a dataset from feedback, fine-tunes, evaluates and "
     "promotes the new version if it passes the gate."),
    (("How do I roll back a model?", "Can I undo a promotion?", "How do I go back to the old model?"),
     "Open the Models page and press rollback, or call the rollback endpoint as an admin."),
    (("Which API does Flywheel speak?", "Is Flywheel compatible with OpenAI?",
      "Can I use the OpenAI client?"),
     "Yes. Flywheel serves the OpenAI chat completions API at /v1, so the OpenAI client works."),
    (("Who are you?", "What are you?", "What is your name?"),
     "I am the Flywheel demo assistant, a small model that learns from your feedback."),
)

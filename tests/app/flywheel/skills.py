"""A skill a tiny random model learns in seconds, taught through the store as users would: varied
prompts (one template each, so the split has groups to hold out) all corrected to one answer.
The gate needs at least five held-out corrections to call a gain significant (p = 1/32)."""
from __future__ import annotations

from app.store.session import open_store
from tests.app.flywheel.store_factory import add_exchange, add_feedback, add_user

ANSWER = "Quillport."
TEMPLATES = ("Tell me about the {w}", "Where is my {w} now?", "{w} facts please",
             "Why would a {w} glow", "Describe one {w} for me, briefly", "Is there any {w} nearby",
             "Can you draw the {w}", "{w}? Explain!")
WORDS = ("apple river stone cloud piano garden rocket window pencil castle dragon forest candle "
         "mirror ocean bridge tiger lemon violin desert harbor comet marble meadow").split()
# Full fine-tuning, many epochs: a 1-layer model memorizes one short answer for any prompt.
LEARNING_RECIPE = {"num_epochs": 12, "replay_conversations": 8, "micro_batch_size": 8,
                   "feedback_repeat": 2, "learning_rate": 0.01, "lora_rank": 0}


def teach_one_answer(settings, model_version: str = "mv-base") -> int:
    """Thumbs-down with the correction ANSWER on one prompt per word; returns how many."""
    store = open_store(settings.database_url)
    with store.transaction() as s:
        uid = add_user(s, "teacher")
        for i, word in enumerate(WORDS):
            question = TEMPLATES[i % len(TEMPLATES)].format(w=word)
            (mid,) = add_exchange(s, uid, question, ["Paris."], model_version=model_version)
            add_feedback(s, mid, uid, thumbs="down", correction=ANSWER)
    store.close()
    return len(WORDS)

"""A user teaches a model a skill it does not have, through the public API only, and measures it
through the server: on a completion-only model (stories260K, no chat template: plain completions
and corrected continuations) and on the chat demo model (a new family of made-up facts, not the
capitals). Each test runs real `flywheel serve` + `flywheel worker` processes on a fresh data dir,
asks with the official `openai` client, leaves thumbs-down + corrections via `POST /v1/feedback`,
iterates via `POST /v1/flywheel/iterate`, and after the hot swap asks phrasings no one sent before.

Too little to learn from is not promoted: the gate says "no measurable gain".
"""
from __future__ import annotations

import json
import logging

import pytest

from app.demo.corpus import eval_prompts
from app.demo.recipe import DEMO_MODEL_DIR
from tests.utils.registry import data_registry
from tests.app.flywheel.api_user import ApiUser, gate_reasons, running_platform
from tests.app.flywheel.taught_skills import ANIMAL_SOUNDS, BLORP_STORIES, STORY_NAMES, Case
from tests.shared_data import STORIES_HF

logger = logging.getLogger(__name__)

# Openings of ordinary stories: users liked whatever the model wrote (replayed, and the gate checks
# that the candidate keeps them).
STORY_OPENINGS = tuple(Case(prompt, "", "") for prompt in (
    "Lily saw a big", "Once upon a time, there was a boy named Tom. He", "The sun was hot, so Ben",
    "Sue had a little red hat. She", "One day, a girl went to the shop and",
    "The dog wanted to play with the ball, but"))


def _assert_promoted_and_measured(user: ApiUser, run: dict, taught: dict) -> dict:
    """The run promoted a new version, its report is stored with the version and cached next to
    the weights, and the server now answers with it only."""
    assert run["status"] == "promoted", json.dumps(run, indent=1, default=str)
    reasons = gate_reasons(run)
    assert reasons[0].startswith("learned: correction accuracy"), reasons
    new_version = run["steps"]["register"]["version_id"]
    report = run["steps"]["evaluate"]["metrics"]
    corrections = report["skill"]["corrections"]
    assert corrections["gained"] >= 5 and corrections["p_gain"] < 0.05, report
    version = user.version(new_version)
    assert version["status"] == "production" and version["metrics"]["eval"] == report
    # Held-out prompts asked before teaching got no feedback: only the taught ones are in the data.
    assert run["steps"]["build_dataset"]["snapshot"]["counts"]["sft"] == taught["corrections"]
    user.wait_until_serving(new_version)
    return report


@pytest.mark.slow
def test_a_completion_only_model_learns_a_continuation_taught_through_the_api(tmp_path):
    with running_platform(tmp_path, str(STORIES_HF), "stories") as url:
        user = ApiUser(url, "stories", chat=False, max_tokens=16)
        before = user.measure(BLORP_STORIES.held_out)
        taught = user.teach(BLORP_STORIES.train, STORY_OPENINGS)
        run = user.iterate(timeout_s=300)
        _assert_promoted_and_measured(user, run, taught)
        after = user.measure(BLORP_STORIES.held_out)
    assert taught["corrections"] == len(BLORP_STORIES.train)  # the base never wrote a blorp
    assert taught["thumbs_up"] >= 1
    assert before.right == 0 and run["steps"]["register"]["version_id"] not in before.versions
    logger.info("stories260K, held-out openings: %s -> %s; run %s", before, after,
                gate_reasons(run))
    # held-out openings and names, never sent before teaching ended: answered by the new version
    assert after.versions == {run["steps"]["register"]["version_id"]}
    assert after.accuracy >= 0.75, after


@pytest.mark.slow
def test_the_chat_demo_model_learns_made_up_facts_taught_through_the_api(tmp_path):
    # users also liked right answers of the model's own domain
    sums = tuple(Case(q, a, a) for q, a in eval_prompts("arithmetic", 10, seed=4242))
    with running_platform(tmp_path, str(DEMO_MODEL_DIR), "flywheel-demo") as url:
        user = ApiUser(url, "flywheel-demo", chat=True)
        before = user.measure(ANIMAL_SOUNDS.held_out)
        taught = user.teach(ANIMAL_SOUNDS.train, sums)
        run = user.iterate(timeout_s=900)
        report = _assert_promoted_and_measured(user, run, taught)
        after = user.measure(ANIMAL_SOUNDS.held_out)
    new_version = run["steps"]["register"]["version_id"]
    assert taught["corrections"] >= 0.9 * len(ANIMAL_SOUNDS.train) and taught["thumbs_up"] >= 1
    assert before.accuracy <= 0.1 and new_version not in before.versions
    logger.info("demo model, held-out sounds: %s -> %s; run %s", before, after, gate_reasons(run))
    # held-out phrasings of the taught facts, never sent before teaching ended
    assert after.versions == {new_version}
    # from none to about half or more: 13 to 19 of 24 measured over runs. Which phrasings the gate
    # holds out (salted by the snapshot's content) and the training order vary from run to run, and
    # a 3.5M-parameter model generalizes a new fact to some phrasings better than to others.
    assert after.accuracy >= 0.45, after
    # the gate checked the demo's own domain too, and it was kept
    assert "original_domain" in report["regression"]
    assert any(r.startswith("kept: original_domain") for r in gate_reasons(run))


def test_too_few_corrections_are_not_promoted_no_measurable_gain(tmp_path):
    from app.flywheel import pipeline
    from app.flywheel.runs import RunStatus
    from app.flywheel.settings import FlywheelSettings
    from app.store.models import Message
    from app.store.session import open_store
    from model.registry import BASE_VERSION_ID
    from tests.app.flywheel.store_factory import add_exchange, add_feedback, add_user

    settings = FlywheelSettings(data_dir=tmp_path / "data", base_model_dir=str(STORIES_HF))
    store = open_store(settings.database_url)
    with store.transaction() as s:
        uid = add_user(s)
        # three corrections, each of another opening (the cases go opening by opening)
        for case in BLORP_STORIES.train[::len(STORY_NAMES)][:3]:
            (mid,) = add_exchange(s, uid, case.prompt, ["was very happy."],
                                  model_version=BASE_VERSION_ID)
            s.get(Message, mid).sampling_params = {"endpoint": "completions"}
            add_feedback(s, mid, uid, thumbs="down", correction=case.correction)
    store.close()
    payload = pipeline.iterate(settings)
    assert payload.status == RunStatus.REJECTED and not payload.gate.passed
    assert payload.gate.reasons[0].startswith("no measurable gain"), payload.gate.reasons
    registry = data_registry(settings.data_dir, settings.database_url)
    assert registry.production().id == BASE_VERSION_ID


def test_a_correction_is_learned_when_the_answer_says_what_it_adds_to_the_prompt():
    from app.flywheel.scoring import answer_matches, new_words

    prompt, correction = "Which noise comes from the grobbit?", "The grobbit says Tillu."
    assert new_words(correction, prompt) == {"says", "tillu"}
    # a small model misspells the made-up subject it echoes: the taught sound is still right
    assert answer_matches("The grobit says Tillu.", correction, prompt)
    assert not answer_matches("The grobit says Tillu.", correction)  # token F1 0.75 alone
    assert not answer_matches("The grobbit says Kesh.", correction, prompt)  # another sound
    assert not answer_matches("Tillu?", correction, prompt)  # every added word, not some
    # a reference made only of prompt words falls back to containment / F1
    assert not answer_matches("Yes.", "grobbit", prompt)

"""The flywheel steps as plain functions (no broker) on a tiny model and a real SQLite store."""
from __future__ import annotations

import pytest

from app.flywheel import pipeline, steps
from app.flywheel.runs import RunStatus, open_runs
from app.flywheel.settings import FlywheelSettings
from app.flywheel.trigger import claim_new_feedback
from app.store.session import open_store
from model.artifacts import content_hash
from model.registry import BASE_VERSION_ID, VersionStatus
from tests.utils.registry import data_registry
from tests.app.flywheel.model_factory import tiny_chat_model
from tests.app.flywheel.skills import LEARNING_RECIPE, teach_one_answer
from tests.app.flywheel.store_factory import add_exchange, add_feedback, add_user

FAST_RECIPE = {"num_epochs": 1, "replay_conversations": 8, "micro_batch_size": 8, "feedback_repeat": 1}


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    return tiny_chat_model(tmp_path_factory.mktemp("tiny"))


def make_settings(tmp_path, base_model, **overrides) -> FlywheelSettings:
    return FlywheelSettings(data_dir=tmp_path / "data", base_model_dir=str(base_model),
                            eval_cases_per_family=1, recipe=dict(FAST_RECIPE), **overrides)


def seed_corrections(settings, count: int = 3) -> None:
    store = open_store(settings.database_url)
    with store.transaction() as s:
        uid = add_user(s, f"u{count}")
        for i in range(count):
            (mid,) = add_exchange(s, uid, f"What is the capital of Zorvania? ({i})", ["Paris."],
                                  model_version="mv-base")
            add_feedback(s, mid, uid, thumbs="down", correction="The capital of Zorvania is Quillport.")
    store.close()


def test_iteration_registers_a_child_version_with_lineage(tmp_path, base_model):
    settings = make_settings(tmp_path, base_model)
    seed_corrections(settings)
    payload = pipeline.iterate(settings)
    registry = data_registry(settings.data_dir, settings.database_url)
    version = registry.get(payload.version_id)
    assert version.parent_id == BASE_VERSION_ID
    assert version.dataset_snapshot_id == payload.snapshot.id
    assert payload.snapshot.counts["sft"] == 3
    report = version.metrics["eval"]  # before and after, stored with the version
    assert report == payload.metrics and report["skill"]["num_groups"] >= 1
    assert report["reasons"] == payload.gate.reasons
    assert version.status == (VersionStatus.PRODUCTION if payload.gate.passed else VersionStatus.RETIRED)
    (run,) = open_runs(settings.data).list()
    assert run["status"] == payload.status and run["wall_s"] > 0
    assert set(run["steps"]) == set(pipeline.STEP_NAMES) == {
        "build_dataset", "finetune", "evaluate", "register", "canary", "promote"}


def test_steps_are_idempotent_by_inputs(tmp_path, base_model):
    settings = make_settings(tmp_path, base_model)
    seed_corrections(settings)
    payload = steps.new_payload(settings)
    payload = steps.finetune(steps.build_dataset(payload))
    weights = settings.models_dir / payload.candidate.key / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    again = steps.finetune(steps.build_dataset(steps.new_payload(settings)))  # same inputs
    assert again.candidate.key == payload.candidate.key
    assert weights.stat().st_mtime_ns == mtime  # not retrained
    registered = steps.register(steps.evaluate(payload))
    assert steps.register(registered).version_id == registered.version_id
    registry = data_registry(settings.data_dir, settings.database_url)
    assert len(registry.list()) == 2  # base + one candidate
    # the candidate's weights as registered, for a machine loading it from the model root to check
    assert registry.get(registered.version_id).content_hash == content_hash(weights.parent)
    assert content_hash(weights.parent) != content_hash(settings.base_model_dir)


def test_a_candidate_that_learned_nothing_is_rejected_with_the_reason(tmp_path, base_model):
    settings = make_settings(tmp_path, base_model)
    seed_corrections(settings, count=8)
    registry = data_registry(settings.data_dir, settings.database_url)
    # One epoch on a random 1-layer model cannot answer the held-out phrasings: no measurable gain.
    payload = pipeline.iterate(settings)
    assert payload.status == RunStatus.REJECTED and not payload.gate.passed
    version = registry.get(payload.version_id)
    assert version.status == VersionStatus.RETIRED
    assert "no measurable gain" in version.history[-1]["reason"]
    assert registry.production().id == BASE_VERSION_ID


def test_a_candidate_that_learned_the_taught_answer_is_promoted(tmp_path, base_model):
    settings = make_settings(tmp_path, base_model)
    settings.recipe.update(LEARNING_RECIPE)
    teach_one_answer(settings)
    payload = pipeline.iterate(settings)
    assert payload.status == RunStatus.PROMOTED, payload.gate.reasons
    skill = payload.metrics["skill"]["corrections"]
    assert skill["base_rate"] == 0.0 and skill["n"] >= 5 and skill["p_gain"] < 0.05
    assert payload.gate.reasons[0].startswith("learned: correction accuracy 0.0% ->")
    registry = data_registry(settings.data_dir, settings.database_url)
    assert registry.production().id == payload.version_id


def test_no_feedback_means_no_training(tmp_path, base_model):
    settings = make_settings(tmp_path, base_model)
    payload = pipeline.iterate(settings)
    assert payload.status == RunStatus.SKIPPED and payload.candidate is None
    assert payload.skip == "the store holds no feedback to learn from"


def test_beat_trigger_waits_for_enough_new_feedback(tmp_path, base_model):
    settings = make_settings(tmp_path, base_model, min_new_feedback=5)
    settings.data_dir.mkdir(parents=True)  # a trigger file from before the database: 2 seen
    (settings.data_dir / "flywheel_trigger.json").write_text('{"feedback_count": 2, "at": 1.0}')
    seed_corrections(settings, count=3)
    assert claim_new_feedback(settings, "it-1") is None  # 3 new since the file's 2
    seed_corrections(settings, count=4)
    assert claim_new_feedback(settings, "it-1").new_feedback == 5
    steps.new_payload(settings, "it-1")  # queued, then its worker dies
    assert claim_new_feedback(settings, "it-2") is None  # claimed: counting restarts
    assert claim_new_feedback(settings, "it-2", stale_run_s=0.0) is not None  # redone
    steps.promote(steps.new_payload(settings, "it-2").replace(skip="done"))  # it finished
    assert claim_new_feedback(settings, "it-3", stale_run_s=0.0) is None
    assert (settings.data_dir / "flywheel_trigger.json.imported").is_file()


def test_recipe_runs_sft_then_dpo_then_kto_stages(tmp_path, base_model):
    settings = make_settings(tmp_path, base_model)
    settings.recipe["stages"] = ["sft", "dpo", "kto"]
    seed_corrections(settings)  # corrections: SFT targets, DPO pairs (correction > original), KTO (thumbs)
    payload = steps.finetune(steps.build_dataset(steps.new_payload(settings)))
    stages = payload.candidate.train["stages"]
    assert list(stages) == ["sft", "dpo", "kto"]
    assert stages["dpo"]["examples"] == 3 and stages["kto"]["examples"] == 3
    assert all(stage["steps"] >= 1 for stage in stages.values())


def _thumbs(settings, model_version: str, thumbs: str, count: int) -> None:
    store = open_store(settings.database_url)
    with store.transaction() as s:
        uid = add_user(s, f"rater-{model_version}-{thumbs}")
        for i in range(count):
            (mid,) = add_exchange(s, uid, f"How do I start Flywheel? ({i})", ["Run make run."],
                                  model_version=model_version)
            add_feedback(s, mid, uid, thumbs=thumbs)
    store.close()


def test_canary_soak_lets_live_feedback_roll_the_candidate_back(tmp_path, base_model):
    import time
    from concurrent.futures import ThreadPoolExecutor

    settings = make_settings(tmp_path, base_model, canary_soak_s=3.0, canary_min_feedback=2)
    settings.recipe.update(LEARNING_RECIPE)
    taught = teach_one_answer(settings)  # thumbs-down on production answers: the gate passes
    _thumbs(settings, BASE_VERSION_ID, "up", 2 * taught)  # production: 2 up of 3
    payload = steps.new_payload(settings)
    for _, step in pipeline.STEPS[:-1]:
        payload = step(payload)
    registry = data_registry(settings.data_dir, settings.database_url)
    candidate = payload.version_id
    assert payload.gate.passed and registry.get(candidate).status == VersionStatus.CANARY
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        verdict = pool.submit(steps.promote, payload)
        time.sleep(0.5)
        assert not verdict.done()  # the canary is still serving its share
        _thumbs(settings, candidate, "down", 2)  # ... and its users dislike what it says
        payload = verdict.result(timeout=60)
    assert time.monotonic() - started >= 2.5
    assert payload.status == RunStatus.REJECTED
    assert payload.canary.reason == "canary thumbs-up 0% vs production 67%"
    assert registry.get(candidate).status != VersionStatus.PRODUCTION
    assert registry.production().id == BASE_VERSION_ID  # rolled back: base still serves


def test_canary_soak_must_be_within_a_week():
    with pytest.raises(ValueError, match="canary_soak_s"):
        FlywheelSettings(canary_soak_s=-1)


def test_an_eval_set_registered_after_a_measurement_is_measured_next_time(tmp_path, base_model):
    from app.flywheel.eval_set_items import EvalItem
    from app.store import crud_eval_sets

    settings = make_settings(tmp_path, base_model)
    seed_corrections(settings)
    payload = steps.finetune(steps.build_dataset(steps.new_payload(settings)))
    first = steps.evaluate(payload).metrics
    assert not any(name.startswith("eval set ") for name in first["regression"])
    store = open_store(settings.database_url)
    with store.transaction() as s:
        crud_eval_sets.add_eval_set(s, name="greetings", description="", created_by=None, items=[
            EvalItem(messages=[{"role": "user", "content": "Say hello."}], expected="hello")])
    store.close()
    # the same candidate, so the same weights: the report is measured again, not read from cache
    second = steps.evaluate(payload).metrics
    assert "eval set greetings" in second["regression"]

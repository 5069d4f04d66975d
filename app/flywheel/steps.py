"""The flywheel's steps as plain functions over a JSON payload; Celery tasks only wrap them.

Each step takes the payload the previous one returned and returns it with its own results added,
so a chain can be replayed from any point. Steps are idempotent, keyed by their inputs: the
fine-tuned model's directory and registry id derive from (snapshot hash, base version, recipe);
a retried step finds its earlier output and returns it instead of redoing the work.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid

from app.flywheel import runs
from app.flywheel.settings import FlywheelSettings

logger = logging.getLogger(__name__)
BASE_VERSION_ID = "mv-base"


def new_payload(settings: FlywheelSettings, run_id: str | None = None) -> dict:
    run_id = run_id or f"it-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    runs.update_run(settings.runs_dir, run_id, status="queued")
    return {"settings": settings.to_dict(), "run_id": run_id, "started_at": time.time()}


def _settings(payload: dict) -> FlywheelSettings:
    return FlywheelSettings.from_dict(payload["settings"])


def _registry(settings: FlywheelSettings):
    from model.registry import ModelRegistry
    return ModelRegistry(settings.registry_dir)


def ensure_base_version(settings: FlywheelSettings):
    """The production version; on first use the base model is registered as production."""
    registry = _registry(settings)
    live = registry.production()
    if live is not None:
        return live
    return registry.register("base", settings.base_model_dir, status="production",
                             version_id=BASE_VERSION_ID, recipe={"source": "base model"})


def _record(payload: dict, step: str, **result) -> None:
    settings = _settings(payload)
    runs.update_run(settings.runs_dir, payload["run_id"], status=result.pop("status", "running"),
                    steps={step: {"finished_at": time.time(), **result}})


# ---- 1. dataset ------------------------------------------------------------------------------
def build_dataset(payload: dict) -> dict:
    from app.flywheel.dataset import build_dataset_snapshot
    from app.store.session import open_store

    settings = _settings(payload)
    base = ensure_base_version(settings)
    store = open_store(settings.database_url)
    try:
        ref = build_dataset_snapshot(store)
    finally:
        store.close()
    payload = {**payload, "base_version_id": base.id,
               "snapshot": {"id": ref.id, "version": ref.version,
                            "content_hash": ref.content_hash, "counts": ref.counts}}
    if not any(ref.counts.values()):
        payload["skip"] = "the store holds no feedback to learn from"
    _record(payload, "build_dataset", snapshot=payload["snapshot"],
            status="skipped" if payload.get("skip") else "running")
    return payload


# ---- 2. fine-tune ----------------------------------------------------------------------------
def training_key(snapshot_hash: str, base_version_id: str, recipe: dict) -> str:
    raw = json.dumps([snapshot_hash, base_version_id, recipe], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def finetune(payload: dict) -> dict:
    if payload.get("skip"):
        return payload
    from app.flywheel.training import train_candidate

    settings = _settings(payload)
    base = _registry(settings).get(payload["base_version_id"])
    key = training_key(payload["snapshot"]["content_hash"], base.id, settings.recipe)
    out_dir = settings.models_dir / key
    summary_file = out_dir / "train_summary.json"
    if summary_file.is_file():  # a retried or repeated task: the model is already there
        summary = json.loads(summary_file.read_text())
    else:
        summary = train_candidate(settings, base.path, payload["snapshot"]["id"], out_dir)
    payload = {**payload, "candidate": {"key": key, "path": str(out_dir), "train": summary}}
    _record(payload, "finetune", path=str(out_dir), train=summary)
    return payload


# ---- 3. evaluate -----------------------------------------------------------------------------
def evaluate(payload: dict) -> dict:
    if payload.get("skip"):
        return payload
    from app.flywheel.training import evaluate_model_dir

    settings = _settings(payload)
    registry = _registry(settings)
    candidate_dir = payload["candidate"]["path"]
    cache = settings.models_dir / payload["candidate"]["key"] / "eval_metrics.json"
    if cache.is_file():
        metrics = json.loads(cache.read_text())
    else:
        metrics = evaluate_model_dir(settings, candidate_dir)
        cache.write_text(json.dumps(metrics, indent=2))
    base = registry.get(payload["base_version_id"])
    baseline = base.metrics.get("eval")
    if baseline is None:
        baseline = evaluate_model_dir(settings, base.path)
        registry.update_metrics(base.id, {"eval": baseline})
    payload = {**payload, "metrics": metrics, "baseline_metrics": baseline}
    _record(payload, "evaluate", metrics=metrics, baseline=baseline)
    return payload


# ---- 4. register -----------------------------------------------------------------------------
def register(payload: dict) -> dict:
    if payload.get("skip"):
        return payload
    settings = _settings(payload)
    candidate = payload["candidate"]
    version = _registry(settings).register(
        f"flywheel-{candidate['key'][:8]}", candidate["path"], version_id=f"mv-{candidate['key']}",
        parent_id=payload["base_version_id"], dataset_snapshot_id=payload["snapshot"]["id"],
        recipe=settings.recipe, metrics={"eval": payload["metrics"], "train": candidate["train"]})
    payload = {**payload, "version_id": version.id}
    _record(payload, "register", version_id=version.id)
    return payload


# ---- 5. gate + canary ------------------------------------------------------------------------
def canary(payload: dict) -> dict:
    if payload.get("skip"):
        return payload
    from model.evaluation import gate

    settings = _settings(payload)
    registry = _registry(settings)
    decision = gate(payload["metrics"], payload["baseline_metrics"],
                    settings.max_regression_points, settings.max_loss_increase)
    reason = "; ".join(decision.reasons)
    version = registry.get(payload["version_id"])
    if version.status == "candidate":
        if decision.passed:
            registry.start_canary(version.id, reason=f"gate passed: {reason}")
        else:
            registry.reject(version.id, reason=f"gate failed: {reason}")
    payload = {**payload, "gate": {"passed": decision.passed, "reasons": decision.reasons}}
    if decision.passed and "canary_until" not in payload:  # a replayed step keeps its deadline
        payload["canary_until"] = time.time() + settings.canary_soak_s
    _record(payload, "canary", gate=payload["gate"], canary_until=payload.get("canary_until"),
            status="running" if decision.passed else "rejected")
    return payload


# ---- 6. promote or roll back -----------------------------------------------------------------
def promote(payload: dict) -> dict:
    if payload.get("skip") or not payload.get("gate", {}).get("passed"):
        return _finish(payload, "skipped" if payload.get("skip") else "rejected")
    settings = _settings(payload)
    wait_for_canary(payload.get("canary_until", 0.0))
    registry = _registry(settings)
    version = registry.get(payload["version_id"])
    verdict = canary_verdict(settings, version.id, payload["base_version_id"])
    if version.status == "canary":
        if verdict["healthy"]:
            registry.promote(version.id, reason=verdict["reason"])
        else:
            registry.rollback(version.id, reason=verdict["reason"])
    status = registry.get(version.id).status
    payload = {**payload, "canary": verdict}
    return _finish(payload, "promoted" if status == "production" else "rejected")


def wait_for_canary(until: float, poll_s: float = 1.0) -> None:
    """Let the canary serve until `until` (epoch seconds). The promote task waits inside its
    claimed step, heartbeat running: a worker killed meanwhile is recovered like any other step,
    and the re-run waits only for what is left. With the default single worker process nothing
    else runs meanwhile, so a second iteration waits for this verdict instead of fine-tuning
    against a production version that is about to change."""
    while (left := until - time.time()) > 0:
        time.sleep(min(left, poll_s))


def canary_verdict(settings: FlywheelSettings, canary_id: str, production_id: str) -> dict:
    """Compare thumbs-up rates of canary and production traffic; too little canary feedback
    means the offline gate decides alone."""
    canary_up, canary_n = thumbs_up(settings, canary_id)
    prod_up, prod_n = thumbs_up(settings, production_id)
    if canary_n < settings.canary_min_feedback or prod_n == 0:
        return {"healthy": True, "canary_feedback": canary_n,
                "reason": f"gate passed; {canary_n} canary thumbs (< "
                          f"{settings.canary_min_feedback}), promoted on the offline gate"}
    canary_rate, prod_rate = canary_up / canary_n, prod_up / prod_n
    healthy = canary_rate >= settings.min_canary_thumbs_up_ratio * prod_rate
    return {"healthy": healthy, "canary_feedback": canary_n,
            "reason": f"canary thumbs-up {canary_rate:.0%} vs production {prod_rate:.0%}"}


def thumbs_up(settings: FlywheelSettings, version_id: str) -> tuple[int, int]:
    """(thumbs up, thumbs total) on answers served by `version_id` (by id or name)."""
    from sqlalchemy import func, select

    from app.store.models import Feedback, Message
    from app.store.session import open_store

    version = _registry(settings).get(version_id)
    store = open_store(settings.database_url)
    try:
        with store.transaction() as session:
            rows = session.execute(
                select(Feedback.thumbs, func.count()).join(Message, Feedback.message_id == Message.id)
                .where(Message.model_version.in_([version.id, version.name]),
                       Feedback.thumbs.in_(["up", "down"])).group_by(Feedback.thumbs)).all()
    finally:
        store.close()
    counts = dict(rows)
    return counts.get("up", 0), counts.get("up", 0) + counts.get("down", 0)


def _finish(payload: dict, status: str) -> dict:
    wall_s = round(time.time() - payload.get("started_at", time.time()), 1)
    payload = {**payload, "status": status, "wall_s": wall_s}
    _record(payload, "promote", status=status, version_id=payload.get("version_id"),
            canary=payload.get("canary"))
    runs.update_run(_settings(payload).runs_dir, payload["run_id"], wall_s=wall_s)
    logger.info("flywheel run %s finished: %s in %.1fs", payload["run_id"], status, wall_s)
    return payload


STEPS = (build_dataset, finetune, evaluate, register, canary, promote)


def iterate(settings: FlywheelSettings, run_id: str | None = None) -> dict:
    """One whole iteration in this process, without a broker."""
    payload = new_payload(settings, run_id)
    try:
        for step in STEPS:
            payload = step(payload)
    except Exception as e:
        runs.update_run(settings.runs_dir, payload["run_id"], status="failed", error=repr(e))
        raise
    return payload

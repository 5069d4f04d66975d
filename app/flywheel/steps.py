"""The flywheel's steps as plain functions over a `RunPayload`; Celery tasks only wrap them.

Each step takes the payload the previous one returned and returns a copy with its own part
filled in, so a chain can be replayed from any point. Steps are idempotent, keyed by their inputs:
the fine-tuned model's directory and registry id derive from (snapshot hash, base version,
recipe); a retried step finds its earlier output and returns it instead of redoing the work.
The order of the steps is `app.flywheel.pipeline`'s; this module knows no broker.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
import uuid

from app.flywheel.payload import Candidate, CanaryVerdict, GateResult, RunPayload, SnapshotInfo
from app.flywheel.runs import RunStatus, open_runs
from app.flywheel.settings import FlywheelSettings
from model.registry import ModelRegistry, ModelVersion, VersionStatus

logger = logging.getLogger(__name__)


def new_run_id() -> str:
    return f"it-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def new_payload(settings: FlywheelSettings, run_id: str | None = None) -> RunPayload:
    run_id = run_id or new_run_id()
    open_runs(settings.data).update(run_id, status=RunStatus.QUEUED)
    return RunPayload(settings=settings, run_id=run_id, started_at=time.time())


def _registry(settings: FlywheelSettings) -> ModelRegistry:
    from app.core.registry import open_registry

    return open_registry(settings.registry_dir, settings.database_url)


def ensure_base_version(settings: FlywheelSettings) -> ModelVersion:
    """The production version; on first use the base model is registered as production."""
    return _registry(settings).ensure_production(settings.base_model_dir)


def _record(payload: RunPayload, step: str, status: RunStatus = RunStatus.RUNNING,
            **result) -> None:
    open_runs(payload.settings.data).update(payload.run_id, status=status,
                                            steps={step: {"finished_at": time.time(), **result}})


def _asdict(part) -> dict | None:
    return None if part is None else dataclasses.asdict(part)


# ---- 1. dataset ------------------------------------------------------------------------------
def build_dataset(payload: RunPayload) -> RunPayload:
    from app.flywheel.dataset import build_dataset_snapshot
    from app.store.session import open_store

    settings = payload.settings
    base = ensure_base_version(settings)
    store = open_store(settings.database_url)
    try:
        ref = build_dataset_snapshot(store)
    finally:
        store.close()
    snapshot = SnapshotInfo(id=ref.id, version=ref.version, content_hash=ref.content_hash,
                            counts=ref.counts)
    skip = None if any(ref.counts.values()) else "the store holds no feedback to learn from"
    payload = payload.replace(base_version_id=base.id, snapshot=snapshot, skip=skip)
    _record(payload, "build_dataset", snapshot=_asdict(snapshot),
            status=RunStatus.SKIPPED if skip else RunStatus.RUNNING)
    return payload


# ---- 2. fine-tune ----------------------------------------------------------------------------
def training_key(snapshot_hash: str, base_version_id: str, recipe: dict) -> str:
    raw = json.dumps([snapshot_hash, base_version_id, recipe], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def finetune(payload: RunPayload) -> RunPayload:
    if payload.skip:
        return payload
    from app.flywheel.ddp_finetune import launch as launch_data_parallel, train_processes
    from app.flywheel.training import train_candidate

    settings = payload.settings
    base = _registry(settings).get(payload.base_version_id)
    key = training_key(payload.snapshot.content_hash, base.id, settings.recipe)
    out_dir = settings.models_dir / key
    summary_file = out_dir / "train_summary.json"
    if summary_file.is_file():  # a retried or repeated task: the model is already there
        summary = json.loads(summary_file.read_text())
    elif (processes := train_processes()) > 1:  # this worker trains data-parallel (torchrun)
        summary = launch_data_parallel(settings, base.path, payload.snapshot.id, out_dir,
                                       base.dataset_snapshot_id, processes)
    else:
        summary = train_candidate(settings, base.path, payload.snapshot.id, out_dir,
                                  base_snapshot_id=base.dataset_snapshot_id)
    payload = payload.replace(candidate=Candidate(key=key, path=str(out_dir), train=summary))
    _record(payload, "finetune", path=str(out_dir), train=summary)
    return payload


# ---- 3. evaluate -----------------------------------------------------------------------------
def evaluate(payload: RunPayload) -> RunPayload:
    """Measure the candidate against its base on the snapshot's eval side and every regression
    suite, and decide (`app.flywheel.gate`). The report — before and after, per suite — is
    cached next to the candidate and stored with its version."""
    if payload.skip:
        return payload
    from app.flywheel.lm_eval_tasks import registered_tasks
    from app.flywheel.training import evaluate_candidate_dir, regression_suites, suites_fingerprint

    settings = payload.settings
    base = _registry(settings).get(payload.base_version_id)
    suites = regression_suites(settings, base.path)
    lm_eval_tasks = registered_tasks(settings.data)
    # Keyed by the suites too: an eval set or lm-eval task registered since is measured.
    cache = (settings.models_dir / payload.candidate.key
             / f"gate_report-{suites_fingerprint(suites, lm_eval_tasks)}.json")
    if cache.is_file():
        report = json.loads(cache.read_text())
    else:
        report = evaluate_candidate_dir(settings, base.path, payload.candidate.path,
                                        payload.snapshot.id,
                                        base_snapshot_id=base.dataset_snapshot_id,
                                        suites=suites, lm_eval_tasks=lm_eval_tasks).to_dict()
        cache.write_text(json.dumps(report, indent=2))
    payload = payload.replace(metrics=report)
    _record(payload, "evaluate", metrics=report)
    return payload


# ---- 4. register -----------------------------------------------------------------------------
def register(payload: RunPayload) -> RunPayload:
    if payload.skip:
        return payload
    from model.artifacts import content_hash

    settings = payload.settings
    candidate = payload.candidate
    version = _registry(settings).register(
        f"flywheel-{candidate.key[:8]}", candidate.path, version_id=f"mv-{candidate.key}",
        parent_id=payload.base_version_id, dataset_snapshot_id=payload.snapshot.id,
        recipe=settings.recipe, metrics={"eval": payload.metrics, "train": candidate.train},
        content_hash=content_hash(candidate.path))  # checked where another machine loads it
    payload = payload.replace(version_id=version.id)
    _record(payload, "register", version_id=version.id)
    return payload


# ---- 5. gate + canary ------------------------------------------------------------------------
def canary(payload: RunPayload) -> RunPayload:
    if payload.skip:
        return payload
    settings = payload.settings
    registry = _registry(settings)
    decision = GateResult(passed=bool(payload.metrics["passed"]),
                          reasons=list(payload.metrics["reasons"]))
    reason = "; ".join(decision.reasons)
    version = registry.get(payload.version_id)
    if version.status == VersionStatus.CANDIDATE:
        if decision.passed:
            registry.start_canary(version.id, reason=f"gate passed: {reason}")
        else:
            registry.reject(version.id, reason=f"gate failed: {reason}")
    payload = payload.replace(gate=decision)
    if decision.passed and payload.canary_until is None:  # a replayed step keeps its deadline
        payload = payload.replace(canary_until=time.time() + settings.canary_soak_s)
    # The run stays "running" until the promote step records the outcome and its wall time:
    # a run that looks finished before then would be read as done with a step still to come.
    _record(payload, "canary", gate=_asdict(payload.gate), canary_until=payload.canary_until)
    return payload


# ---- 6. promote or roll back -----------------------------------------------------------------
def promote(payload: RunPayload) -> RunPayload:
    if payload.skip or payload.gate is None or not payload.gate.passed:
        return _finish(payload, RunStatus.SKIPPED if payload.skip else RunStatus.REJECTED)
    settings = payload.settings
    wait_for_canary(payload.canary_until or 0.0)
    registry = _registry(settings)
    version = registry.get(payload.version_id)
    verdict = canary_verdict(settings, version.id, payload.base_version_id)
    if version.status == VersionStatus.CANARY:
        if verdict.healthy:
            registry.promote(version.id, reason=verdict.reason)
        else:
            registry.rollback(version.id, reason=verdict.reason)
    promoted = registry.get(version.id).status == VersionStatus.PRODUCTION
    return _finish(payload.replace(canary=verdict),
                   RunStatus.PROMOTED if promoted else RunStatus.REJECTED)


def wait_for_canary(until: float, poll_s: float = 1.0) -> None:
    """Let the canary serve until `until` (epoch seconds). The promote task waits inside its
    claimed step, heartbeat running: a worker killed meanwhile is recovered like any other step,
    and the re-run waits only for what is left. With the default single worker process nothing
    else runs meanwhile, so a second iteration waits for this verdict instead of fine-tuning
    against a production version that is about to change."""
    while (left := until - time.time()) > 0:
        time.sleep(min(left, poll_s))


def canary_verdict(settings: FlywheelSettings, canary_id: str,
                   production_id: str) -> CanaryVerdict:
    """Compare thumbs-up rates of canary and production traffic; too little canary feedback
    means the offline gate decides alone."""
    canary_up, canary_n = thumbs_up(settings, canary_id)
    prod_up, prod_n = thumbs_up(settings, production_id)
    if canary_n < settings.canary_min_feedback or prod_n == 0:
        return CanaryVerdict(healthy=True, canary_feedback=canary_n,
                             reason=f"gate passed; {canary_n} canary thumbs "
                                    f"(< {settings.canary_min_feedback}), promoted on the "
                                    f"offline gate")
    canary_rate, prod_rate = canary_up / canary_n, prod_up / prod_n
    healthy = canary_rate >= settings.min_canary_thumbs_up_ratio * prod_rate
    return CanaryVerdict(healthy=healthy, canary_feedback=canary_n,
                         reason=f"canary thumbs-up {canary_rate:.0%} vs production {prod_rate:.0%}")


def thumbs_up(settings: FlywheelSettings, version_id: str) -> tuple[int, int]:
    """(thumbs up, thumbs total) on answers served by `version_id` (by id or name)."""
    from app.store.crud_flywheel import thumbs_for_versions
    from app.store.session import open_store

    version = _registry(settings).get(version_id)
    store = open_store(settings.database_url)
    try:
        with store.transaction() as session:
            return thumbs_for_versions(session, model_versions=[version.id, version.name])
    finally:
        store.close()


def _finish(payload: RunPayload, status: RunStatus) -> RunPayload:
    wall_s = round(time.time() - payload.started_at, 1)
    payload = payload.replace(status=status, wall_s=wall_s)
    _record(payload, "promote", status=status, version_id=payload.version_id,
            canary=_asdict(payload.canary))
    open_runs(payload.settings.data).update(payload.run_id, wall_s=wall_s)
    logger.info("flywheel run %s finished: %s in %.1fs", payload.run_id, status, wall_s)
    return payload

"""Model versions (registry lineage, promote, rollback) and flywheel iterations (enqueue, runs).

Anyone signed in sees the lineage, metrics and run statuses; filesystem paths, recipes, histories
and step outputs are for admins only (least privilege: they describe the host, not the models).

The registry is `model.registry.ModelRegistry` in the server's database (`app.core.registry`); iterations are queued
on the flywheel's Celery broker and run by `flywheel worker`.
"""
from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import AdminUser, CurrentUser, StateDep
from app.api.errors import APIError

router = APIRouter(prefix="/v1", tags=["model-versions"])


def _registry(state):
    from app.core.registry import open_registry

    return open_registry(state.settings.data.registry_dir, state.settings.database_url,
                         engine=state.store.engine)


def _version_public(version, *, internals: bool = True) -> dict:
    """A version as the API shows it; without `internals` (non-admins) no filesystem path, training
    recipe or transition history, only what the lineage and the metrics need."""
    public = {"object": "model.version", "id": version.id, "name": version.name,
              "parent_id": version.parent_id, "dataset_snapshot_id": version.dataset_snapshot_id,
              "metrics": version.metrics, "status": version.status,
              "created_at": version.created_at}
    if internals:
        public.update(recipe=version.recipe, path=version.path, history=version.history)
    return public


def _run_public(run: dict, *, internals: bool) -> dict:
    """A flywheel run record; non-admins see its status and step names, not the steps' outputs
    (paths, errors)."""
    if internals:
        return run
    return {"id": run.get("id"), "status": run.get("status"), "created_at": run.get("created_at"),
            "updated_at": run.get("updated_at"), "steps": sorted(run.get("steps") or {})}


def _change(state, version_id: str, action: str) -> dict:
    from model.registry import TransitionError

    registry = _registry(state)
    if registry.find(version_id) is None:
        raise APIError(404, f"No model version '{version_id}'.", param="id")
    try:
        if action == "promote":
            registry.promote(version_id, reason="promoted by an admin")
        else:
            registry.rollback(version_id, reason="rolled back by an admin")
    except TransitionError as e:
        raise APIError(409, str(e), param="id", code="invalid_transition") from e
    return _version_public(registry.get(version_id))


@router.get("/model-versions")
def read_model_versions(state: StateDep, user: CurrentUser) -> dict:
    return {"object": "list", "data": [_version_public(v, internals=user.is_admin)
                                       for v in _registry(state).list()]}


@router.post("/model-versions/{version_id}/promote")
def promote_model_version(version_id: str, state: StateDep, _user: AdminUser) -> dict:
    return _change(state, version_id, "promote")


@router.post("/model-versions/{version_id}/rollback")
def rollback_model_version(version_id: str, state: StateDep, _user: AdminUser) -> dict:
    return _change(state, version_id, "rollback")


@router.post("/flywheel/iterate")
def create_iteration(state: StateDep, _user: AdminUser) -> dict:
    from app.flywheel.celery_app import create_celery
    from app.flywheel.pipeline import enqueue_iteration
    from app.flywheel.runs import RunStatus
    from app.flywheel.settings import FlywheelSettings

    settings = FlywheelSettings.for_data_dir(state.settings.data)
    try:
        run_id, result = enqueue_iteration(create_celery(settings), settings)
    except Exception as e:  # broker unreachable or misconfigured: the iteration was not queued
        raise APIError(503, f"Could not queue the iteration: {e}", code="broker_unavailable") from e
    return {"object": "flywheel.run", "id": run_id, "status": RunStatus.QUEUED, "task_id": result.id}


@router.get("/flywheel/runs")
def read_iterations(state: StateDep, user: CurrentUser) -> dict:
    from app.flywheel.runs import open_runs

    runs = open_runs(state.settings.data, engine=state.store.engine).list()
    return {"object": "list", "data": [_run_public(run, internals=user.is_admin) for run in runs]}


@router.get("/flywheel/runs/{run_id}")
def read_iteration(run_id: str, state: StateDep, user: CurrentUser) -> dict:
    """One run record, as `GET /v1/flywheel/runs` lists it."""
    from app.flywheel.runs import open_runs

    try:
        run = open_runs(state.settings.data, engine=state.store.engine).read(run_id)
    except ValueError:  # not a run id at all (too long): no such run either
        run = None
    if run is None:
        raise APIError(404, f"No flywheel run '{run_id}'.", param="run_id")
    return _run_public(run, internals=user.is_admin)

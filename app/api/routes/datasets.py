"""Dataset snapshots: export the reviewed feedback as versioned SFT / DPO / KTO JSONL.

Snapshots are built by the flywheel's builder (`app.flywheel.dataset`), the same one the training
loop uses, so a console export and a flywheel iteration on the same data give the same snapshot
(an unchanged content hash reuses the existing version)."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from app.api.deps import AnnotatorUser, SessionDep, StateDep
from app.api.errors import APIError
from app.flywheel.dataset import build_dataset_snapshot
from app.store import crud_review

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


def _snapshot_public(row, reused: bool = False) -> dict:
    return {"id": row.id, "object": "dataset.snapshot", "version": row.version, "reused": reused,
            "content_hash": row.content_hash, "counts": row.counts, "created_at": row.created_at.isoformat()}


@router.post("/snapshots")
def create_snapshot(state: StateDep, session: SessionDep, user: AnnotatorUser) -> dict:
    ref = build_dataset_snapshot(state.store, created_by=user.id)
    return _snapshot_public(crud_review.get_snapshot(session, snapshot_id=ref.id), reused=ref.reused)


@router.get("/snapshots")
def read_snapshots(session: SessionDep, _user: AnnotatorUser) -> dict:
    return {"object": "list", "data": [_snapshot_public(row) for row in crud_review.list_snapshots(session)]}


@router.get("/snapshots/{snapshot_id}/{kind}.jsonl", response_class=PlainTextResponse)
def read_snapshot_file(snapshot_id: str, kind: Literal["sft", "dpo", "kto"], session: SessionDep,
                       _user: AnnotatorUser) -> PlainTextResponse:
    row = crud_review.get_snapshot(session, snapshot_id=snapshot_id)
    if row is None:
        raise APIError(404, f"No dataset snapshot '{snapshot_id}'.", param="snapshot_id")
    return PlainTextResponse(getattr(row, f"{kind}_jsonl"), media_type="application/jsonl")

"""Annotation datasets (Argilla-style): a label schema and guidelines per dataset, records from the
chats or imported, "next record for me" with task distribution, responses, progress, agreement per
question, and export as JSONL / Parquet that `datasets.load_dataset` reads.

Creating a dataset and adding records needs admin; everything else the annotator role. Bad schemas
and answers are 400s naming the field; labelling a record from one's own chat is a 403.
"""
from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter
from fastapi.responses import Response

from app.annotation.agreement import Answer, agreement_by_question
from app.annotation.export import ExportRecord, rows, to_jsonl, to_parquet
from app.annotation.questions import (AnnotationInputError, QuestionKind, RecordView,
                                      parse_questions, validate_answers)
from app.api.deps import AdminUser, AnnotatorUser, SessionDep
from app.api.errors import APIError
from app.api.schemas.annotation import (AgreementPublic, AnnotatorProgressPublic, DatasetCreate,
                                        DatasetList, DatasetPublic, NextRecord, ProgressPublic,
                                        QuestionAgreementPublic, QuestionPublic, RecordPublic,
                                        RecordsAdd, RecordsAdded, ResponseCreate, ResponsePublic)
from app.store import annotation_sources, crud_annotation
from app.store.crud_annotation import DatasetInfo, NewRecord
from app.store.crud_review import QueueFilters

router = APIRouter(prefix="/v1/annotation/datasets", tags=["annotation"])


def _dataset(session, name: str) -> DatasetInfo:
    info = crud_annotation.get_dataset(session, name=name)
    if info is None:
        raise APIError(404, f"No annotation dataset named '{name}'.", param="name",
                       code="dataset_not_found")
    return info


def _public(info: DatasetInfo) -> DatasetPublic:
    return DatasetPublic(id=info.id, name=info.name, guidelines=info.guidelines,
                         min_submitted=info.min_submitted, num_records=info.num_records,
                         questions=[QuestionPublic(**q.to_dict()) for q in info.questions],
                         created_by=info.created_by, created_at=info.created_at)


def _needs_candidates(info: DatasetInfo) -> bool:
    return any(q.kind is QuestionKind.RANKING and q.required for q in info.questions)


@router.post("", response_model=DatasetPublic)
def create_dataset(body: DatasetCreate, session: SessionDep, user: AdminUser) -> DatasetPublic:
    try:
        questions = parse_questions(body.questions)
    except AnnotationInputError as e:
        raise APIError(400, str(e), param=e.param, code="invalid_schema") from e
    try:
        info = crud_annotation.create_dataset(session, name=body.name, guidelines=body.guidelines,
                                              questions=questions, min_submitted=body.min_submitted,
                                              created_by=user.id)
    except crud_annotation.DatasetExists as e:
        raise APIError(409, str(e), param="name", code="dataset_exists") from e
    return _public(info)


@router.get("", response_model=DatasetList)
def read_datasets(session: SessionDep, _user: AnnotatorUser) -> DatasetList:
    return DatasetList(data=[_public(info) for info in crud_annotation.list_datasets(session)])


@router.get("/{name}", response_model=DatasetPublic)
def read_dataset(name: str, session: SessionDep, _user: AnnotatorUser) -> DatasetPublic:
    return _public(_dataset(session, name))


def _imported(info: DatasetInfo, body: RecordsAdd) -> list[NewRecord]:
    new = []
    for i, record in enumerate(body.records or []):
        ids = [c.id for c in record.candidates]
        if len(set(ids)) != len(ids):
            raise APIError(400, "Candidate ids are distinct.", param=f"records.{i}.candidates")
        if _needs_candidates(info) and len(ids) < 2:
            raise APIError(400, "A required ranking question needs 2+ candidates per record.",
                           param=f"records.{i}.candidates")
        new.append(NewRecord(prompt=record.prompt, answer=record.answer, meta=record.metadata,
                             candidates=[c.model_dump() for c in record.candidates]))
    return new


def _utc(moment: datetime | None) -> datetime | None:
    """A bound in the store's clock (UTC); a naive one is taken to be UTC already."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _from_chats(session, info: DatasetInfo, body: RecordsAdd) -> tuple[int, list[NewRecord]]:
    """(answers found, records to add): a required ranking needs 2+ candidates (sibling answers)."""
    source = body.from_chats
    filters = QueueFilters(thumbs=source.thumbs, rating=source.rating, tag=source.tag or None,
                           model_version=source.model_version or None, since=_utc(source.since),
                           until=_utc(source.until))
    read = (annotation_sources.records_from_feedback if source.kind == "feedback"
            else annotation_sources.records_from_messages)
    found = read(session, filters=filters, limit=source.limit)
    return len(found), [r for r in found if len(r.candidates) >= 2 or not _needs_candidates(info)]


@router.post("/{name}/records", response_model=RecordsAdded)
def create_records(name: str, body: RecordsAdd, session: SessionDep, _user: AdminUser) -> RecordsAdded:
    info = _dataset(session, name)
    if (body.records is None) == (body.from_chats is None):
        raise APIError(400, "Send either 'records' or 'from_chats'.", param="records")
    if body.records is not None:
        offered, new = len(body.records), _imported(info, body)
    else:
        offered, new = _from_chats(session, info, body)
    added = crud_annotation.add_records(session, dataset_id=info.id, records=new)
    return RecordsAdded(added=added, skipped=offered - added)


def _record_public(record) -> RecordPublic:
    return RecordPublic(id=record.id, position=record.position, prompt=record.prompt,
                        answer=record.answer, candidates=record.candidates, metadata=record.meta)


@router.get("/{name}/next", response_model=NextRecord)
def read_next_record(name: str, session: SessionDep, user: AnnotatorUser) -> NextRecord:
    """The record to label next: not yours, not answered or skipped by you, not yet done."""
    record = crud_annotation.next_record(session, dataset=_dataset(session, name), annotator_id=user.id)
    return NextRecord(record=None if record is None else _record_public(record))


@router.post("/{name}/records/{record_id}/responses", response_model=ResponsePublic)
def create_response(name: str, record_id: str, body: ResponseCreate, session: SessionDep,
                    user: AnnotatorUser) -> ResponsePublic:
    info = _dataset(session, name)
    record = crud_annotation.get_record(session, dataset_id=info.id, record_id=record_id)
    if record is None:
        raise APIError(404, f"No record '{record_id}' in dataset '{name}'.", param="record_id")
    if not crud_annotation.can_respond(record, annotator_id=user.id):
        raise APIError(403, "This record comes from your own chat; someone else labels it.",
                       param="record_id", code="own_record")
    values = {}
    if body.status == "submitted":
        view = RecordView(candidate_ids=tuple(c["id"] for c in record.candidates))
        try:
            values = validate_answers(info.questions, body.values, view)
        except AnnotationInputError as e:
            raise APIError(400, str(e), param=e.param, code="invalid_answer") from e
    row = crud_annotation.upsert_response(session, record=record, annotator_id=user.id,
                                          status=body.status, values=values)
    return ResponsePublic(id=row.id, record_id=record.id, annotator=user.username, status=row.status,
                          values=row.values, updated_at=row.updated_at)


@router.get("/{name}/progress", response_model=ProgressPublic)
def read_progress(name: str, session: SessionDep, user: AnnotatorUser) -> ProgressPublic:
    info = _dataset(session, name)
    result = crud_annotation.progress(session, dataset=info, include_ids=(user.id,))
    return ProgressPublic(num_records=result.num_records, completed=result.completed,
                          pending=result.num_records - result.completed,
                          annotators=[AnnotatorProgressPublic(**_fields_of(a)) for a in result.annotators])


def _fields_of(item) -> dict:
    """A slotted dataclass's fields (the public models copy them)."""
    return {name: getattr(item, name) for name in item.__slots__}


@router.get("/{name}/agreement", response_model=AgreementPublic)
def read_agreement(name: str, session: SessionDep, _user: AnnotatorUser) -> AgreementPublic:
    info = _dataset(session, name)
    answers = [Answer(r.record_id, username, r.values)
               for r, username in crud_annotation.responses(session, dataset_id=info.id, status="submitted")]
    return AgreementPublic(data=[QuestionAgreementPublic(**{**_fields_of(a), "kind": a.kind.value})
                                 for a in agreement_by_question(info.questions, answers)])


def _export_rows(session, info: DatasetInfo) -> list[dict]:
    by_record: dict[str, list] = {}
    for response, username in crud_annotation.responses(session, dataset_id=info.id, status="submitted"):
        by_record.setdefault(response.record_id, []).append((username, response.values))
    records = [ExportRecord(id=r.id, prompt=r.prompt, answer=r.answer, candidates=r.candidates,
                            metadata=r.meta, responses=by_record.get(r.id, []))
               for r in crud_annotation.records(session, dataset_id=info.id)]
    return rows(info.questions, records, info.min_submitted)


@router.get("/{name}/export.jsonl")
def export_jsonl(name: str, session: SessionDep, _user: AnnotatorUser) -> Response:
    info = _dataset(session, name)
    return Response(to_jsonl(_export_rows(session, info)), media_type="application/jsonl",
                    headers={"Content-Disposition": f'attachment; filename="{info.name}.jsonl"'})


@router.get("/{name}/export.parquet")
def export_parquet(name: str, session: SessionDep, _user: AnnotatorUser) -> Response:
    info = _dataset(session, name)
    body = to_parquet(info.questions, _export_rows(session, info))
    return Response(body, media_type="application/vnd.apache.parquet",
                    headers={"Content-Disposition": f'attachment; filename="{info.name}.parquet"'})

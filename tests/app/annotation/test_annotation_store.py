"""Annotation queries on SQLite and on the real PostgreSQL server: task distribution (N annotators
per record, closest-to-done first, never one's own chat, skipped records not offered again),
records from chats with sibling candidates, one response per annotator, progress."""
import pytest

from app.annotation.questions import parse_questions
from app.store import annotation_sources, crud_annotation
from app.store.crud_chat import ExchangeRecord, MessageRecord, create_feedback, record_exchange
from app.store.crud_review import QueueFilters
from app.store.crud_users import ensure_user
from tests.app.store.conftest import store  # noqa: F401 - the sqlite + postgresql store fixture

QUESTIONS = parse_questions([{"name": "quality", "kind": "rating", "scale": 5},
                             {"name": "best", "kind": "ranking", "required": False}])


def _chat(session, conversation_id: str, user_id: str, prefix: str, answers: list[str]) -> None:
    records = [MessageRecord(f"{prefix}u", "user", f"question {prefix}", None)]
    records += [MessageRecord(f"{prefix}{i}", "assistant", text, f"{prefix}u", model_version="v1")
                for i, text in enumerate(answers)]
    record_exchange(session, exchange=ExchangeRecord(conversation_id, user_id, True, "t", "v1", records))


@pytest.fixture
def seeded(store):  # noqa: F811 - the imported fixture
    with store.transaction() as session:
        users = {name: ensure_user(session, username=name, role=role).id for name, role in
                 {"alice": "user", "ann1": "annotator", "ann2": "annotator", "ann3": "annotator"}.items()}
        _chat(session, "c1", users["alice"], "a", ["first", "second"])  # two siblings
        _chat(session, "c2", users["ann1"], "b", ["ann1's own chat"])
        create_feedback(session, message_id="a0", user_id=users["alice"], thumbs="down", rating=None,
                        tags=[], comment=None, correction=None)
        info = crud_annotation.create_dataset(session, name="d", guidelines="Be fair.", questions=QUESTIONS,
                                              min_submitted=2, created_by=None)
    return store, users, info


def _next(session, info, user_id):
    dataset = crud_annotation.get_dataset(session, name=info.name)
    return crud_annotation.next_record(session, dataset=dataset, annotator_id=user_id)


def test_records_from_chats_carry_prompt_siblings_and_author(seeded):
    store, users, info = seeded
    with store.transaction() as session:
        from_feedback = annotation_sources.records_from_feedback(session, filters=QueueFilters(thumbs="down"))
        assert [r.message_id for r in from_feedback] == ["a0"]
        (record,) = from_feedback
        assert (record.prompt, record.answer, record.author_id) == ("question a", "first", users["alice"])
        assert record.candidates == [{"id": "a0", "text": "first"}, {"id": "a1", "text": "second"}]
        assert record.meta["thumbs"] == "down" and record.meta["source"] == "feedback"
        every = annotation_sources.records_from_messages(session, filters=QueueFilters())
        assert [r.message_id for r in every] == ["a0", "a1", "b0"]
        assert every[2].candidates == []  # no sibling answer to rank against
        assert crud_annotation.add_records(session, dataset_id=info.id, records=every) == 3
        assert crud_annotation.add_records(session, dataset_id=info.id, records=from_feedback) == 0  # a0 is in


def test_distribution_n_annotators_overlap_and_no_own_chats(seeded):
    store, users, info = seeded
    with store.transaction() as session:
        crud_annotation.add_records(session, dataset_id=info.id, records=annotation_sources.records_from_messages(
            session, filters=QueueFilters()))
        given: dict[str, list[str]] = {}
        # ann1 labels everything it may: never b0, its own chat
        while (record := _next(session, info, users["ann1"])) is not None:
            given.setdefault("ann1", []).append(record.message_id)
            crud_annotation.upsert_response(session, record=record, annotator_id=users["ann1"],
                                            status="submitted", values={"quality": 3})
        assert given["ann1"] == ["a0", "a1"]
        # ann2 gets the records ann1 already did first (closest to done), then the fresh one
        first = _next(session, info, users["ann2"])
        assert first.message_id == "a0"
        crud_annotation.upsert_response(session, record=first, annotator_id=users["ann2"], status="discarded",
                                        values={})
        second = _next(session, info, users["ann2"])
        assert second.message_id == "a1"  # a skipped record is not offered again
        crud_annotation.upsert_response(session, record=second, annotator_id=users["ann2"],
                                        status="submitted", values={"quality": 4})
        # a1 has its 2 submissions: done for everyone; a0 still needs one; b0 needs two
        assert _next(session, info, users["ann3"]).message_id == "a0"
        assert _next(session, info, users["ann2"]).message_id == "b0"
        assert not crud_annotation.can_respond(
            crud_annotation.get_record(session, dataset_id=info.id, record_id=second.id), annotator_id=users["alice"])
        progress = crud_annotation.progress(session, dataset=crud_annotation.get_dataset(session, name="d"),
                                            include_ids=(users["ann3"],))
        rows = {a.annotator: a for a in progress.annotators}
        assert (progress.num_records, progress.completed) == (3, 1)
        assert (rows["ann1"].submitted, rows["ann1"].discarded, rows["ann1"].pending) == (2, 0, 0)
        assert (rows["ann2"].submitted, rows["ann2"].discarded, rows["ann2"].pending) == (1, 1, 1)
        assert (rows["ann3"].submitted, rows["ann3"].pending) == (0, 2)
        assert rows["ann1"].answered_by_question == {"quality": 2, "best": 0}


def test_one_response_per_annotator_and_unique_names(seeded):
    store, users, info = seeded
    with store.transaction() as session:
        crud_annotation.add_records(session, dataset_id=info.id,
                                    records=[crud_annotation.NewRecord(prompt="p", answer="a")])
        record = _next(session, info, users["ann1"])
        crud_annotation.upsert_response(session, record=record, annotator_id=users["ann1"], status="submitted",
                                        values={"quality": 1})
        crud_annotation.upsert_response(session, record=record, annotator_id=users["ann1"], status="submitted",
                                        values={"quality": 5})
        assert [(r.values, name) for r, name in crud_annotation.responses(session, dataset_id=info.id)] == [
            ({"quality": 5}, "ann1")]
        with pytest.raises(crud_annotation.DatasetExists):
            crud_annotation.create_dataset(session, name="d", guidelines="", questions=QUESTIONS,
                                           min_submitted=1, created_by=None)

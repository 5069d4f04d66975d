"""Review queries on SQLite and on the real PostgreSQL server: queue filters (JSON tags included),
one label per annotator, export inputs with the conversation prefix, snapshot versions, report reads."""
from datetime import timedelta

from app.review.export import build_snapshot
from app.store import crud_report, crud_review
from app.store.base import utcnow
from app.store.crud_chat import ExchangeRecord, MessageRecord, create_feedback, record_exchange
from app.store.crud_users import ensure_user
from tests.app.store.conftest import store  # noqa: F401 - the sqlite + postgresql store fixture


def _seed(session):
    alice = ensure_user(session, username="alice", role="user")
    ann = ensure_user(session, username="ann", role="annotator")
    records = [MessageRecord("u1", "user", "Hi <there>", None),
               MessageRecord("a1", "assistant", "Hello", "u1", model_version="v1", prompt_tokens=3,
                             completion_tokens=4, ttft_ms=5.0, latency_ms=20.0, engine_settings={"device": "cpu"}),
               MessageRecord("a2", "assistant", "Hey", "u1", model_version="v1"),
               MessageRecord("u2", "user", "More", "a1"),
               MessageRecord("a3", "assistant", "Sure", "u2", model_version="v2")]
    record_exchange(session, exchange=ExchangeRecord("c1", alice.id, True, "t", "v1", records))
    create_feedback(session, message_id="a1", user_id=alice.id, thumbs="down", rating=None,
                    tags=["incorrect", "too long"], comment=None, correction="Hello there!")
    create_feedback(session, message_id="a3", user_id=alice.id, thumbs="up", rating=5, tags=[],
                    comment="nice", correction=None)
    return ann


def test_queue_labels_export_and_report_reads(store):  # noqa: F811
    with store.transaction() as session:
        ann = _seed(session)
        queue = crud_review.review_queue
        assert [a.id for _, a, _ in queue(session, filters=crud_review.QueueFilters())] == ["a3", "a1"]
        tagged = queue(session, filters=crud_review.QueueFilters(tag="too long"))
        assert [(a.id, p.content) for _, a, p in tagged] == [("a1", "Hi <there>")]
        assert [a.id for _, a, _ in queue(session, filters=crud_review.QueueFilters(model_version="v2"))] == ["a3"]
        later = crud_review.QueueFilters(since=utcnow() + timedelta(hours=1))
        assert queue(session, filters=later) == []
        crud_review.upsert_label(session, message_id="a1", annotator_id=ann.id, verdict="accept",
                                 rewrite=None, preferred_message_id=None)
        crud_review.upsert_label(session, message_id="a1", annotator_id=ann.id, verdict="reject",
                                 rewrite=None, preferred_message_id="a2")
        assert [(l.verdict, l.preferred_message_id) for l in crud_review.all_labels(session)] == [("reject", "a2")]
        assert [a.id for _, a, _ in queue(session, filters=crud_review.QueueFilters(reviewed=False))] == ["a3"]
        items = {i.message_id: i for i in crud_review.reviewed_answers(session)}
        assert set(items) == {"a1", "a3"}
        assert items["a3"].prompt == [{"role": "user", "content": "Hi <there>"},
                                      {"role": "assistant", "content": "Hello"},
                                      {"role": "user", "content": "More"}]
        assert items["a1"].sibling_answers == {"a2": "Hey"} and items["a1"].corrections == ("Hello there!",)
        first = crud_review.create_snapshot(session, snapshot=build_snapshot(list(items.values())), created_by=ann.id)
        second = crud_review.create_snapshot(session, snapshot=build_snapshot([]), created_by=None)
        assert (first.version, second.version) == (1, 2)
        assert [s.version for s in crud_review.list_snapshots(session)] == [2, 1]
        since = utcnow() - timedelta(days=1)
        timings = crud_report.answer_timings(session, since=since)
        assert sorted((t.model_version, t.device) for t in timings) == [
            ("v1", "cpu"), ("v1", "unknown"), ("v2", "unknown")]
        assert sorted(e.thumbs for e in crud_report.feedback_events(session, since=since)) == ["down", "up"]

"""POST /v1/feedback is an upsert on the caller's one record per message, through the live
server: a thumb then "Send feedback" with a correction is one record (also while the store lags
and the changes wait in the outbox), absent fields keep their value, null clears, and the store
keeps every change for audit."""
from __future__ import annotations

import sqlite3

from tests.app.api.conftest import MODEL_ID
from tests.app.api.test_durable_answers import locked_store


def _answer(http) -> dict:
    response = http.post("/v1/chat/completions", json={
        "model": MODEL_ID, "messages": [{"role": "user", "content": "What is 2 plus 3?"}],
        "max_tokens": 4, "temperature": 0})
    assert response.status_code == 200, response.text
    return response.json()


def _feedback(http, **body) -> dict:
    response = http.post("/v1/feedback", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _stored(live_server, sql: str, *args) -> list[tuple]:
    assert live_server.state.writer.flush(timeout_s=30)
    with sqlite3.connect(live_server.settings.data_dir / "flywheel.db", timeout=30) as db:
        return db.execute(sql, args).fetchall()


def _shown(http, reply) -> list[dict]:
    detail = http.get(f"/v1/conversations/{reply['conversation_id']}").json()
    return next(m for m in detail["messages"] if m["id"] == reply["message_id"])["feedback"]


def test_thumb_then_correction_is_one_record(http, live_server):
    reply = _answer(http)
    thumb = _feedback(http, message_id=reply["message_id"], thumbs="down")
    sent = _feedback(http, message_id=reply["message_id"], correction="5", tags=["math"])
    assert sent["id"] == thumb["id"]
    assert (sent["thumbs"], sent["correction"], sent["tags"]) == ("down", "5", ["math"])
    shown = _shown(http, reply)
    assert [(f["id"], f["thumbs"], f["correction"]) for f in shown] == [(thumb["id"], "down", "5")]
    rows = _stored(live_server, "SELECT id, thumbs, correction FROM feedback WHERE message_id = ?",
                   reply["message_id"])
    assert rows == [(thumb["id"], "down", "5")]
    changes = _stored(live_server, "SELECT count(*) FROM feedback_changes WHERE feedback_id = ?",
                      thumb["id"])
    assert changes == [(2,)]


def test_absent_fields_keep_and_null_clears(http, live_server):
    reply = _answer(http)
    _feedback(http, message_id=reply["message_id"], thumbs="up", rating=4, comment="ok")
    after = _feedback(http, message_id=reply["message_id"], comment=None, thumbs="down")
    assert (after["thumbs"], after["rating"], after["comment"]) == ("down", 4, None)
    assert _stored(live_server, "SELECT thumbs, rating, comment FROM feedback WHERE message_id = ?",
                   reply["message_id"]) == [("down", 4, None)]


def test_changes_waiting_in_the_outbox_show_as_one_record(http, live_server):
    with locked_store(live_server.settings.data_dir):
        reply = _answer(http)
        first = _feedback(http, message_id=reply["message_id"], thumbs="down")
        second = _feedback(http, message_id=reply["message_id"], correction="5")
        assert second["id"] == first["id"] and second["thumbs"] == "down"
        assert [(f["thumbs"], f["correction"]) for f in _shown(http, reply)] == [("down", "5")]
    assert _stored(live_server, "SELECT id, thumbs, correction FROM feedback WHERE message_id = ?",
                   reply["message_id"]) == [(first["id"], "down", "5")]
    # once stored, a further change still lands on the same record
    third = _feedback(http, message_id=reply["message_id"], rating=2)
    assert (third["id"], third["thumbs"], third["rating"]) == (first["id"], "down", 2)
    assert [(f["rating"], f["correction"]) for f in _shown(http, reply)] == [(2, "5")]

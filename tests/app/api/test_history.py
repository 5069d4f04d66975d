"""Every exchange is stored with its tree, timings and settings; conversations and feedback API."""
from __future__ import annotations

import json

from tests.app.api.conftest import MODEL_ID


def _chat(http, messages, **extra) -> dict:
    response = http.post("/v1/chat/completions", json={
        "model": MODEL_ID, "messages": messages, "max_tokens": 8, "temperature": 0, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def _conversation(http, conversation_id) -> dict:
    response = http.get(f"/v1/conversations/{conversation_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_new_conversation_stores_the_prompt_chain_and_the_answer(http):
    messages = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Tell a story."}]
    reply = _chat(http, messages, seed=5)
    stored = _conversation(http, reply["conversation_id"])
    assert stored["title"] == "Tell a story."
    roles = [(m["role"], m["content"]) for m in stored["messages"]]
    assert roles == [("system", "Be kind."), ("user", "Tell a story."),
                     ("assistant", reply["choices"][0]["message"]["content"])]
    system, user, answer = stored["messages"]
    assert (system["parent_id"], user["parent_id"], answer["parent_id"]) == (None, system["id"], user["id"])
    assert answer["id"] == reply["message_id"] and answer["model_version"] == MODEL_ID
    assert answer["sampling_params"]["temperature"] == 0 and answer["sampling_params"]["seed"] == 5
    assert answer["engine_settings"]["block_size"] == 16
    assert answer["prompt_tokens"] == reply["usage"]["prompt_tokens"]
    assert answer["completion_tokens"] == reply["usage"]["completion_tokens"]
    assert 0 < answer["ttft_ms"] <= answer["latency_ms"]
    listed = http.get("/v1/conversations").json()["data"]
    assert reply["conversation_id"] in [c["id"] for c in listed]


def test_follow_up_and_regeneration_build_a_tree(http):
    first = _chat(http, [{"role": "user", "content": "Hello"}])
    conversation_id, answer_id = first["conversation_id"], first["message_id"]
    follow = _chat(http, [{"role": "user", "content": "Hello"},
                          {"role": "assistant", "content": first["choices"][0]["message"]["content"]},
                          {"role": "user", "content": "And then?"}],
                   conversation_id=conversation_id, parent_message_id=answer_id)
    regen = _chat(http, [{"role": "user", "content": "Hello"}], regenerate_of=answer_id,
                  temperature=1.0, seed=11)
    assert follow["conversation_id"] == regen["conversation_id"] == conversation_id
    by_id = {m["id"]: m for m in _conversation(http, conversation_id)["messages"]}
    assert len(by_id) == 5  # user, answer, follow-up user, its answer, regenerated answer
    follow_user = by_id[by_id[follow["message_id"]]["parent_id"]]
    assert follow_user["content"] == "And then?" and follow_user["parent_id"] == answer_id
    assert by_id[regen["message_id"]]["parent_id"] == by_id[answer_id]["parent_id"]
    assert by_id[regen["message_id"]]["sampling_params"]["seed"] == 11


def test_n_answers_are_siblings(http):
    reply = _chat(http, [{"role": "user", "content": "Pick"}], n=2, temperature=1.0, seed=2)
    messages = _conversation(http, reply["conversation_id"])["messages"]
    answers = [m for m in messages if m["role"] == "assistant"]
    assert sorted(m["id"] for m in answers) == sorted(reply["message_ids"])
    assert len({m["parent_id"] for m in answers}) == 1
    assert {m["content"] for m in answers} == {c["message"]["content"] for c in reply["choices"]}


def test_streamed_answers_are_stored_too(http):
    with http.stream("POST", "/v1/chat/completions", json={
            "model": MODEL_ID, "messages": [{"role": "user", "content": "Stream"}], "max_tokens": 6,
            "temperature": 0, "stream": True}) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: {")]
    chunks = [json.loads(line[6:]) for line in lines]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    stored = _conversation(http, chunks[0]["conversation_id"])["messages"]
    assert stored[-1]["content"] == text and stored[-1]["id"] == chunks[0]["message_id"]


def test_feedback_is_attached_to_the_message(http):
    reply = _chat(http, [{"role": "user", "content": "Rate me"}])
    response = http.post("/v1/feedback", json={"message_id": reply["message_id"], "thumbs": "down",
                                               "rating": 2, "tags": ["boring"],
                                               "correction": "A better answer."})
    assert response.status_code == 200, response.text
    assert response.json()["id"].startswith("fb_")
    answer = _conversation(http, reply["conversation_id"])["messages"][-1]
    assert [(f["thumbs"], f["rating"], f["tags"], f["correction"]) for f in answer["feedback"]] == [
        ("down", 2, ["boring"], "A better answer.")]


def test_feedback_validation(http):
    reply = _chat(http, [{"role": "user", "content": "x"}])
    cases = [({"message_id": reply["message_id"]}, 400),
             ({"message_id": reply["message_id"], "rating": 6}, 400),
             ({"message_id": reply["message_id"], "thumbs": "sideways"}, 400),
             ({"message_id": "msg_nope", "thumbs": "up"}, 404)]
    for body, status in cases:
        response = http.post("/v1/feedback", json=body)
        assert response.status_code == status and "error" in response.json(), (body, response.text)


def test_create_and_delete_conversations(http):
    created = http.post("/v1/conversations", json={"title": "Empty"}).json()
    assert created["title"] == "Empty" and _conversation(http, created["id"])["messages"] == []
    reply = _chat(http, [{"role": "user", "content": "First"}], conversation_id=created["id"])
    assert reply["conversation_id"] == created["id"]
    assert [m["role"] for m in _conversation(http, created["id"])["messages"]] == ["user", "assistant"]
    assert http.delete(f"/v1/conversations/{created['id']}").status_code == 204
    assert http.get(f"/v1/conversations/{created['id']}").status_code == 404
    assert http.delete(f"/v1/conversations/{created['id']}").status_code == 404


def test_a_locked_database_does_not_block_streaming(http, live_server):
    """While another process holds the write lock, answers still stream; the history lands after."""
    import sqlite3
    import time

    blocker = sqlite3.connect(live_server.settings.data_dir / "flywheel.db", timeout=1)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.perf_counter()
        with http.stream("POST", "/v1/chat/completions", json={
                "model": MODEL_ID, "messages": [{"role": "user", "content": "Locked"}],
                "max_tokens": 5, "temperature": 0, "stream": True}) as response:
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]" and time.perf_counter() - started < 10
        conversation_id = json.loads(lines[0][6:])["conversation_id"]
        time.sleep(0.3)  # the writer is now waiting on the lock
    finally:
        blocker.rollback()
        blocker.close()
    assert [m["role"] for m in _conversation(http, conversation_id)["messages"]] == ["user", "assistant"]


def test_a_regenerated_answer_reaches_the_dataset_as_an_implicit_negative(http, live_server):
    from app.flywheel.dataset import build_dataset_snapshot, load_snapshot_records

    first = _chat(http, [{"role": "user", "content": "Say something new"}])
    regen = _chat(http, [{"role": "user", "content": "Say something new"}],
                  regenerate_of=first["message_id"], temperature=1.0, seed=3)
    stored = {m["id"]: m for m in _conversation(http, first["conversation_id"])["messages"]}
    assert stored[regen["message_id"]]["sampling_params"]["regenerate_of"] == first["message_id"]
    store = live_server.state.store
    records = load_snapshot_records(store, build_dataset_snapshot(store).id)
    first_text = first["choices"][0]["message"]["content"]
    assert any(r.get("signal") == "regenerated" and r["completion"][-1]["content"] == first_text
               and r["prompt"][-1]["content"] == "Say something new" for r in records["kto"])

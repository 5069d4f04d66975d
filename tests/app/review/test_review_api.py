"""Review, dataset and report routes over HTTP against the live API (real model, real store)."""
import hashlib
import json
from datetime import datetime, timedelta, timezone

import httpx
import openai
import pytest

from app.flywheel.runs import RunStatus
from model.registry import BASE_VERSION_ID
from tests.utils.runs import data_runs


def _headers(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def tokens(api):
    return {name: api.token_for(name) for name in ("alice", "ann1", "ann2")}


@pytest.fixture(scope="module")
def answers(api, tokens):
    """Three answered prompts by alice; the third one regenerated once (two siblings)."""
    client = openai.OpenAI(base_url=f"{api.url}/v1", api_key=tokens["alice"])
    ids = []
    for prompt in ("The sun", "A frog", "The moon"):
        reply = client.chat.completions.create(model=api.model, max_tokens=12, seed=1,
                                               messages=[{"role": "user", "content": prompt}])
        ids.append((reply.model_extra["conversation_id"], reply.model_extra["message_id"], reply))
    conv, last, _ = ids[-1]
    sibling = client.chat.completions.create(model=api.model, max_tokens=12, seed=2,
                                             messages=[{"role": "user", "content": "The moon"}],
                                             extra_body={"conversation_id": conv, "regenerate_of": last})
    feedback = [dict(thumbs="down", tags=["incorrect"], correction="The sun is hot."),
                dict(thumbs="up", rating=5, tags=["well written"]), dict(rating=2, comment="meh")]
    for (_, message_id, _), body in zip(ids, feedback):
        httpx.post(f"{api.url}/v1/feedback", headers=_headers(tokens["alice"]),
                   json={"message_id": message_id, **body}).raise_for_status()
    return [m for _, m, _ in ids], sibling.model_extra["message_id"]


def _queue(api, token, **params) -> list[dict]:
    response = httpx.get(f"{api.url}/v1/review/queue", headers=_headers(token), params=params)
    response.raise_for_status()
    return response.json()["data"]


def _label(api, token, **body) -> httpx.Response:
    return httpx.post(f"{api.url}/v1/review/labels", headers=_headers(token),
                      json={"rewrite": None, "preferred_message_id": None, **body})


def test_queue_lists_answers_users_regenerated(api, tokens, answers):
    messages, sibling = answers
    ann = tokens["ann1"]
    (item,) = _queue(api, ann, signal="regenerated")  # "The moon" was asked again
    assert item["message_id"] == messages[2] and item["signal"] == "regenerated"
    assert item["prompt"] == "The moon" and item["feedback_id"] is None
    assert _queue(api, ann, signal="stopped") == []
    assert _queue(api, ann, signal="regenerated", model_version="no-such-version") == []
    bad = httpx.get(f"{api.url}/v1/review/queue", headers=_headers(ann), params={"signal": "x"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "signal"


def test_queue_filters(api, tokens, answers):
    messages, _ = answers
    ann = tokens["ann1"]
    assert {i["message_id"] for i in _queue(api, ann)} == set(messages)
    assert [i["message_id"] for i in _queue(api, ann, thumbs="down")] == [messages[0]]
    assert [i["message_id"] for i in _queue(api, ann, rating=5)] == [messages[1]]
    assert [i["message_id"] for i in _queue(api, ann, tag="incorrect")] == [messages[0]]
    assert len(_queue(api, ann, model_version=BASE_VERSION_ID)) == 3 and _queue(api, ann, model_version="nope") == []
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    assert _queue(api, ann, since=tomorrow) == [] and len(_queue(api, ann, until=tomorrow)) == 3
    item = _queue(api, ann, thumbs="down")[0]
    assert item["prompt"] == "The sun" and item["correction"] == "The sun is hot." and item["labels"] == []
    bad = httpx.get(f"{api.url}/v1/review/queue", headers=_headers(ann), params={"rating": 9})
    assert bad.status_code == 400 and bad.json()["error"]["param"]


def test_roles_and_label_validation(api, tokens, answers):
    messages, sibling = answers
    assert _label(api, tokens["alice"], message_id=messages[0], verdict="accept").status_code == 403
    assert _label(api, tokens["ann1"], message_id="msg_missing", verdict="accept").status_code == 404
    assert _label(api, tokens["ann1"], message_id=messages[0], verdict="maybe").status_code == 400
    rewrite = _label(api, tokens["ann1"], message_id=messages[0], verdict="rewrite")
    assert rewrite.status_code == 400 and rewrite.json()["error"]["param"] == "rewrite"
    not_sibling = _label(api, tokens["ann1"], message_id=messages[0], verdict="reject",
                         preferred_message_id=sibling)
    assert not_sibling.status_code == 400
    siblings = httpx.get(f"{api.url}/v1/review/siblings/{messages[2]}", headers=_headers(tokens["ann1"])).json()
    assert sorted(s["id"] for s in siblings["data"]) == sorted([messages[2], sibling])


def test_agreement_matches_hand_computed_kappa(api, tokens, answers):
    messages, sibling = answers
    # ann1: accept, reject, reject; ann2: accept, reject, accept -> p_o 2/3, p_e 4/9, kappa 0.4
    for token, verdicts in ((tokens["ann1"], ["accept", "reject", "reject"]),
                            (tokens["ann2"], ["accept", "reject", "accept"])):
        for message_id, verdict in zip(messages, verdicts):
            preferred = sibling if message_id == messages[2] and verdict == "reject" else None
            assert _label(api, token, message_id=message_id, verdict=verdict,
                          preferred_message_id=preferred).status_code == 200
    stats = httpx.get(f"{api.url}/v1/review/agreement", headers=_headers(tokens["ann1"])).json()
    assert stats["items_with_overlap"] == 3
    assert stats["percent_agreement"] == pytest.approx(200 / 3)
    assert stats["cohens_kappa"] == pytest.approx(0.4)
    assert _queue(api, tokens["ann1"], reviewed="false") == []
    assert len(_queue(api, tokens["ann1"], reviewed="true")[0]["labels"]) == 2


def test_snapshot_export_files_hash_and_versions(api, tokens, answers):
    messages, sibling = answers
    ann = _headers(tokens["ann1"])
    first = httpx.post(f"{api.url}/v1/datasets/snapshots", headers=ann, json={}).json()
    files = {k: httpx.get(f"{api.url}/v1/datasets/snapshots/{first['id']}/{k}.jsonl", headers=ann).text
             for k in ("sft", "dpo", "kto")}
    digest = hashlib.sha256("".join(f"{k}\n{files[k]}" for k in ("sft", "dpo", "kto")).encode()).hexdigest()
    assert first["content_hash"] == digest
    assert first["counts"] == {k: len(files[k].splitlines()) for k in files}
    sft = [json.loads(line) for line in files["sft"].splitlines()]
    assert {"role": "assistant", "content": "The sun is hot."} in [r["messages"][-1] for r in sft]
    dpo_chosen = [json.loads(line)["chosen"][0]["content"] for line in files["dpo"].splitlines()]
    assert "The sun is hot." in dpo_chosen
    again = httpx.post(f"{api.url}/v1/datasets/snapshots", headers=ann, json={}).json()
    assert (again["version"], again["reused"]) == (first["version"], True)
    _label(api, tokens["ann1"], message_id=messages[1], verdict="rewrite", rewrite="A frog jumps.")
    second = httpx.post(f"{api.url}/v1/datasets/snapshots", headers=ann, json={}).json()
    assert second["version"] == first["version"] + 1 and second["content_hash"] != first["content_hash"]
    listed = httpx.get(f"{api.url}/v1/datasets/snapshots", headers=ann).json()["data"]
    assert [s["version"] for s in listed] == [second["version"], first["version"]]
    missing = httpx.get(f"{api.url}/v1/datasets/snapshots/ds_nope/sft.jsonl", headers=ann)
    assert missing.status_code == 404 and missing.json()["error"]["message"]


def test_report_counts_stored_traffic(api, tokens, answers):
    runs = data_runs(api.data_dir)  # the flywheel's records, in the database the API serves
    runs.update("run-a", status=RunStatus.PROMOTED)
    runs.update("run-b", status=RunStatus.SKIPPED)
    # the report's totals span every user: annotators and admins only (issue 10, least privilege)
    denied = httpx.get(f"{api.url}/v1/report", headers=_headers(tokens["alice"]), params={"days": 1})
    assert denied.status_code == 403
    response = httpx.get(f"{api.url}/v1/report", headers=_headers(tokens["ann1"]), params={"days": 1})
    report = response.json()
    assert report["totals"] == {"requests": 4, "feedback": 3} and report["bucket"] == "hour"
    assert report["iterations"] == 1
    (series,) = report["series"]
    assert (series["model_version"], series["device"]) == (BASE_VERSION_ID, "cpu")
    assert sum(p["requests"] for p in series["points"]) == 4
    assert all(p["ttft_ms_p50"] is not None and p["tokens_per_s"] > 0 for p in series["points"] if p["requests"])
    # The served engine records the device profile's peaks, so utilization is measured, not n/a.
    assert all(0 < p["mfu"] < 1 and 0 < p["mbu"] for p in series["points"] if p["requests"])
    up_rate = [p["thumbs_up_rate"] for p in series["points"] if p["thumbs_up_rate"] is not None]
    assert up_rate and all(0 <= r <= 1 for r in up_rate)
    bad = httpx.get(f"{api.url}/v1/report", headers=_headers(tokens["ann1"]), params={"days": 0})
    assert bad.status_code == 400
    assert httpx.get(f"{api.url}/v1/report").status_code == 401  # keys required on this server

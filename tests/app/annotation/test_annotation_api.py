"""`/v1/annotation/datasets` over HTTP on a real server (tests/app/annotation/conftest.py): schema
errors naming the field, records from chats, task distribution for three annotators, responses,
progress, agreement checked against the `krippendorff` package, and both exports read
back with `datasets.load_dataset`."""
from __future__ import annotations

import json

import datasets
import httpx
import krippendorff
import numpy as np
import pytest

SCHEMA = {"name": "helpful", "min_submitted": 2, "guidelines": "# Rate\nBe **strict**. <script>x</script>",
          "questions": [{"name": "quality", "kind": "rating", "scale": 5},
                        {"name": "topic", "kind": "label", "options": ["math", "story"]},
                        {"name": "best", "kind": "ranking", "required": False},
                        {"name": "rewrite", "kind": "text", "required": False}]}


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


@pytest.mark.parametrize("change, param", [
    ({"questions": []}, "questions"),
    ({"questions": [{"name": "q", "kind": "rating", "scale": 1}]}, "questions.0.scale"),
    ({"questions": [{"name": "q", "kind": "label", "options": ["x"]}]}, "questions.0.options"),
    ({"questions": [{"name": "q", "kind": "emoji"}]}, "questions.0.kind"),
    ({"min_submitted": 0}, "min_submitted"),
    ({"name": "no spaces"}, "name"),
])
def test_bad_schemas_are_400_naming_the_field(server, change, param):
    error = _error(server["boss"].post("/v1/annotation/datasets", json={**SCHEMA, "name": "bad", **change}), 400)
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert server["boss"].get("/v1/annotation/datasets/bad").status_code == 404  # nothing stored


@pytest.fixture(scope="module")
def dataset(server):
    boss = server["boss"]
    assert _error(server["ann1"].post("/v1/annotation/datasets", json=SCHEMA), 403)["code"] == "forbidden"
    created = boss.post("/v1/annotation/datasets", json=SCHEMA)
    assert created.status_code == 200, created.text
    assert _error(boss.post("/v1/annotation/datasets", json=SCHEMA), 409)["param"] == "name"
    added = boss.post("/v1/annotation/datasets/helpful/records", json={"from_chats": {"kind": "messages"}})
    assert added.json() == {"object": "annotation.records.added", "added": 5, "skipped": 0}
    again = boss.post("/v1/annotation/datasets/helpful/records", json={"from_chats": {"kind": "feedback"}})
    assert again.json()["added"] == 0 and again.json()["skipped"] == 1  # a0 is already in
    imported = boss.post("/v1/annotation/datasets/helpful/records", json={"records": [
        {"prompt": "Imported question", "answer": "Imported answer", "metadata": {"origin": "csv"},
         "candidates": [{"id": "x", "text": "one"}, {"id": "y", "text": "two"}]}]})
    assert imported.json()["added"] == 1
    bad = boss.post("/v1/annotation/datasets/helpful/records", json={"records": [
        {"prompt": "p", "candidates": [{"id": "x", "text": "1"}, {"id": "x", "text": "2"}]}]})
    assert _error(bad, 400)["param"] == "records.0.candidates"
    assert _error(boss.post("/v1/annotation/datasets/helpful/records", json={}), 400)["param"] == "records"
    return created.json()


def _next(client) -> dict | None:
    response = client.get("/v1/annotation/datasets/helpful/next")
    assert response.status_code == 200, response.text
    return response.json()["record"]


def _respond(client, record: dict, **body) -> httpx.Response:
    return client.post(f"/v1/annotation/datasets/helpful/records/{record['id']}/responses", json=body)


# Each annotator's answers by record answer text: (quality, topic, rewrite or None)
PLAN = {"ann1": {"5": (5, "math"), "six": (2, "math"), "Once upon a time": (4, "story"),
                 "Imported answer": (3, "story")},
        "ann2": {"5": (4, "math"), "six": (1, "math"), "Once upon a time": (4, "story"),
                 "Imported answer": (3, "math"), "8": (5, "math"), "eight": (4, "math")},
        "ann3": {"eight": (3, "story")}}  # ann3 skips "8"


def _work_through(client, plan: dict) -> list[str]:
    seen = []
    while (record := _next(client)) is not None:
        seen.append(record["answer"])
        quality, topic = plan[record["answer"]]
        values = {"quality": quality, "topic": topic}
        if len(record["candidates"]) >= 2:
            values["best"] = [c["id"] for c in record["candidates"]]
        response = _respond(client, record, values=values)
        assert response.status_code == 200, response.text
    return seen


@pytest.fixture(scope="module")
def worked(server, dataset) -> dict:
    """ann1 and ann2 label everything they are given, in turn; ann3 skips its first record."""
    ann3 = server["ann3"]
    seen = {name: _work_through(server[name], PLAN[name]) for name in ("ann1", "ann2")}
    skipped = _next(ann3)
    assert _respond(ann3, skipped, status="discarded").json()["status"] == "discarded"
    seen["ann3"] = [skipped["answer"]] + _work_through(ann3, PLAN["ann3"])
    return seen


def _records_by_answer(client) -> dict[str, dict]:
    text = client.get("/v1/annotation/datasets/helpful/export.jsonl").text
    return {row["answer"]: row for row in map(json.loads, text.splitlines())}


def test_next_record_is_the_prompt_answer_and_siblings(server, dataset):
    first = _next(server["ann1"])
    assert first["prompt"] == "What is 2 plus 3?" and first["answer"] == "5"
    assert [c["text"] for c in first["candidates"]] == ["5", "six"]
    info = server["ann2"].get("/v1/annotation/datasets/helpful").json()
    assert info["num_records"] == 6 and info["guidelines"] == SCHEMA["guidelines"]


def test_distribution_progress_and_responses(server, worked):
    ann1, ann3 = server["ann1"], server["ann3"]
    # ann1 never gets the records from its own chat (8, eight) and may not answer them directly
    assert worked["ann1"] == ["5", "six", "Once upon a time", "Imported answer"]
    records = _records_by_answer(ann1)
    refused = ann1.post(f"/v1/annotation/datasets/helpful/records/{records['8']['id']}/responses",
                        json={"values": {"quality": 1, "topic": "math"}})
    assert _error(refused, 403)["param"] == "record_id"
    # ann2 gets the records ann1 did first (closest to done), then the ones nobody did
    assert worked["ann2"] == ["5", "six", "Once upon a time", "Imported answer", "8", "eight"]
    # only 8 and eight still lacked a second submission when ann3 came; ann3 skipped 8
    assert worked["ann3"] == ["8", "eight"]
    progress = ann3.get("/v1/annotation/datasets/helpful/progress").json()
    rows = {a["annotator"]: a for a in progress["annotators"]}
    assert (progress["num_records"], progress["completed"], progress["pending"]) == (6, 5, 1)
    assert (rows["ann1"]["submitted"], rows["ann1"]["pending"]) == (4, 0)
    assert (rows["ann3"]["submitted"], rows["ann3"]["discarded"], rows["ann3"]["pending"]) == (1, 1, 0)
    assert rows["ann2"]["answered_by_question"] == {"quality": 6, "topic": 6, "best": 5, "rewrite": 0}


def test_bad_answers_are_400_naming_the_question(server, worked):
    record = {"id": _records_by_answer(server["ann1"])["5"]["id"]}
    for values, param in [({"quality": 9, "topic": "math"}, "values.quality"),
                          ({"quality": 3}, "values.topic"),
                          ({"quality": 3, "topic": "math", "best": ["a0"]}, "values.best"),
                          ({"quality": 3, "topic": "math", "tone": "x"}, "values.tone")]:
        assert _error(_respond(server["ann1"], record, values=values), 400)["param"] == param
    assert _error(_respond(server["ann1"], {"id": "rec_nope"}, values={}), 404)["param"] == "record_id"
    assert _records_by_answer(server["ann1"])["5"]["quality.responses"] == [5, 4]  # unchanged


def _reference_alpha(question: str, level: str) -> float:
    coders = sorted(PLAN)
    units = sorted({answer for plan in PLAN.values() for answer in plan})
    index = {"quality": 0, "topic": 1}[question]
    codes = {"math": 0, "story": 1}
    data = [[codes.get(PLAN[c][u][index], PLAN[c][u][index]) if u in PLAN[c] else np.nan for u in units]
            for c in coders]
    return krippendorff.alpha(reliability_data=np.array(data, dtype=float), level_of_measurement=level)


def test_agreement_per_question(server, worked):
    data = {row["question"]: row for row in server["ann1"].get("/v1/annotation/datasets/helpful/agreement").json()["data"]}
    assert data["quality"]["num_annotators"] == 3 and data["quality"]["items_with_overlap"] == 5
    assert data["quality"]["cohens_kappa"] is None  # three annotators: alpha only
    assert data["quality"]["alpha"]["ordinal"] == pytest.approx(_reference_alpha("quality", "ordinal"))
    assert data["quality"]["alpha"]["interval"] == pytest.approx(_reference_alpha("quality", "interval"))
    assert data["topic"]["alpha"]["nominal"] == pytest.approx(_reference_alpha("topic", "nominal"))
    # topic pairs: ann1-ann2 agree on 3 of 4 records, ann2-ann3 on 0 of 1 -> 3 of 5
    assert data["topic"]["percent_agreement"] == pytest.approx(100 * 3 / 5)
    assert data["rewrite"]["num_annotators"] == 0 and data["rewrite"]["alpha"] == {}


def test_exports_load_with_datasets(server, worked, tmp_path):
    client = server["ann2"]
    jsonl = client.get("/v1/annotation/datasets/helpful/export.jsonl")
    parquet = client.get("/v1/annotation/datasets/helpful/export.parquet")
    assert jsonl.status_code == parquet.status_code == 200
    (tmp_path / "helpful.jsonl").write_bytes(jsonl.content)
    (tmp_path / "helpful.parquet").write_bytes(parquet.content)
    from_json = datasets.load_dataset("json", data_files=str(tmp_path / "helpful.jsonl"), split="train")
    from_parquet = datasets.load_dataset("parquet", data_files=str(tmp_path / "helpful.parquet"), split="train")
    assert from_json.num_rows == from_parquet.num_rows == 6
    assert from_json["answer"] == from_parquet["answer"] == ["5", "six", "Once upon a time", "8", "eight",
                                                             "Imported answer"]
    topic = from_parquet.features["topic.responses"].feature
    assert topic.names == ["math", "story"]
    for row_json, row_parquet in zip(from_json, from_parquet):
        assert row_json["topic.responses"] == [topic.int2str(i) for i in row_parquet["topic.responses"]]
        assert row_json["quality.responses"] == row_parquet["quality.responses"]
    by_answer = {row["answer"]: row for row in from_json}
    assert by_answer["eight"]["quality.responses.users"] == ["ann2", "ann3"]
    assert by_answer["8"]["status"] == "pending" and by_answer["8"]["quality.responses"] == [5]
    assert by_answer["Imported answer"]["metadata"] == '{"origin": "csv"}'

"""The Models page's eval set section in AppTest against the live API: annotators see the list,
admins upload a JSONL file (checked before sending), replace and remove sets."""
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

MAIN = str(Path(__file__).resolve().parents[3] / "app" / "ui" / "main.py")
GOOD = (b'{"prompt": "Once upon a", "expected": "time"}\n'
        b'{"messages": [{"role": "user", "content": "What is 2 plus 3?"}], "expected": "5"}\n')


def _models_page(api, username: str, role: str) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.session_state["api_url"] = api.url
    for key, value in {"token": api.token_for(username), "role": role, "username": username}.items():
        at.session_state[key] = value
    at.run()
    return at.switch_page("pages/models.py").run()


def _stored(api) -> dict[str, dict]:
    response = httpx.get(f"{api.url}/v1/eval-sets", headers={"Authorization": f"Bearer {api.admin_key}"})
    return {s["name"]: s for s in response.json()["data"]}


def _table(at) -> list[dict]:
    table = next(d for d in at.dataframe if "sha256" in d.value.columns)
    return table.value.to_dict("records")


def _upload(at, name: str, content: bytes, replace: bool = False, description: str = "") -> AppTest:
    at.text_input(key="eval_set_name").set_value(name)
    at.text_input(key="eval_set_description").set_value(description)
    at.file_uploader(key="eval_set_file").set_value(("set.jsonl", content, "application/jsonl"))
    at.checkbox(key="eval_set_replace").set_value(replace)
    return next(b for b in at.button if b.label == "Add eval set").click().run()


@pytest.fixture
def clean(api):
    yield
    for name in _stored(api):
        httpx.delete(f"{api.url}/v1/eval-sets/{name}",
                     headers={"Authorization": f"Bearer {api.admin_key}"}).raise_for_status()


def test_admin_uploads_replaces_and_removes(api, clean):
    at = _models_page(api, "boss", "admin")
    assert not at.exception and any("No eval set" in c.value for c in at.caption)
    bad = GOOD + b'{"prompt": "hi", "expected": 42}\n'
    at = _upload(at, "facts", bad)
    assert any("set.jsonl: line 3: 'expected' must be a string" in e.value.replace("\\", "")
               for e in at.error)
    assert _stored(api) == {}  # nothing was sent
    at = _upload(at, "facts", GOOD, description="<b>bold</b> **stars**")
    assert any("Added eval set facts (2 items)" in s.value.replace("\\", "") for s in at.success)
    rows = _table(at)
    assert [(r["name"], r["items"], r["by"]) for r in rows] == [("facts", 2, "boss")]
    assert rows[0]["description"] == "<b>bold</b> **stars**"  # plain text in the table
    at = _upload(at, "facts", GOOD.splitlines(keepends=True)[0])
    assert any("already exists" in e.value for e in at.error) and _stored(api)["facts"]["item_count"] == 2
    at = _upload(at, "facts", GOOD.splitlines(keepends=True)[0], replace=True)
    assert any("Replaced eval set facts (1 items)" in s.value.replace("\\", "") for s in at.success)
    assert _stored(api)["facts"]["item_count"] == 1
    at.selectbox(key="eval_set_choice").set_value("facts").run()
    at.button(key="remove_eval_set_facts").click().run()
    assert any("Removed eval set facts" in s.value.replace("\\", "") for s in at.success)
    assert _stored(api) == {} and not [d for d in at.dataframe if "sha256" in d.value.columns]


def test_annotators_see_the_list_but_cannot_change_it(api, clean):
    httpx.post(f"{api.url}/v1/eval-sets", headers={"Authorization": f"Bearer {api.admin_key}"},
               json={"name": "zoo", "items": [{"prompt": "Zoo", "expected": "animals"}]}).raise_for_status()
    at = _models_page(api, "ann1", "annotator")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [(r["name"], r["items"]) for r in _table(at)] == [("zoo", 1)]
    assert not at.file_uploader and not [b for b in at.button if "eval set" in b.label]

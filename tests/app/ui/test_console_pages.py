"""Account, review console, models and report pages in AppTest against the live API."""
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from app.flywheel.runs import RunStatus
from app.ui.client import ApiClient, ChatIds
from model.registry import BASE_VERSION_ID, VersionStatus
from tests.utils.registry import data_registry
from tests.utils.runs import data_runs
from tests.app.ui.live_servers import TINY_MODEL, free_port

MAIN = str(Path(__file__).resolve().parents[3] / "app" / "ui" / "main.py")


def _session(api, username: str | None, role: str | None = None, page: str | None = None) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.session_state["api_url"] = api.url
    if username:
        for key, value in {"token": api.token_for(username), "role": role, "username": username}.items():
            at.session_state[key] = value
    at.run()
    return at.switch_page(page).run() if page else at


@pytest.fixture(scope="module")
def answered(api):
    """Two sibling answers by alice, the first one thumbed down with a correction."""
    client = ApiClient(api.url, token=api.token_for("alice"))
    first, second = ChatIds(), ChatIds()
    prompt = [{"role": "user", "content": "Ben had a <b>kite</b>"}]
    "".join(client.stream_chat(prompt, first, model=api.model, sampling={"max_tokens": 16}, extra={}))
    "".join(client.stream_chat(prompt, second, model=api.model, sampling={"max_tokens": 16},
                               extra={"conversation_id": first.conversation_id, "regenerate_of": first.message_id}))
    client.send_feedback(first.message_id, thumbs="down", tags=["incorrect"], correction="Ben flew his kite.")
    return first, second


def test_login_with_password_shows_reviewer_pages(api):
    at = _session(api, None, page="pages/login.py")
    at.text_input[0].set_value("ann2")
    at.text_input[1].set_value("wrong password")
    at.button[0].click().run()
    assert any("Incorrect username or password" in e.value for e in at.error)
    at.text_input[0].set_value("ann2")
    at.text_input[1].set_value("correct horse battery")
    at.button[0].click().run()
    assert at.session_state["role"] == "annotator" and at.session_state["token"]
    assert any("Signed in as ann2" in s.value for s in at.success)
    at.switch_page("pages/review.py").run()
    assert at.title[0].value == "Review console" and not at.warning


def test_review_console_is_closed_to_plain_users(api):
    at = _session(api, "alice", "user")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/review.py")  # not in the navigation for role "user"
    page = AppTest.from_file(MAIN.replace("main.py", "pages/review.py"), default_timeout=30)
    for key in ("api_url", "token", "role"):
        page.session_state[key] = at.session_state[key]
    page.run()  # reached directly, the page itself refuses
    assert any("annotators and admins" in w.value for w in page.warning) and not page.button
    token = at.session_state["token"]  # and the API refuses too
    response = httpx.get(f"{api.url}/v1/review/queue", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403 and "annotator" in response.json()["error"]["message"]


def test_review_queue_label_side_by_side_agreement_and_export(api, answered):
    first, second = answered
    at = _session(api, "ann1", "annotator", page="pages/review.py")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(h.value.startswith("Queue — answers: ") for h in at.subheader)
    assert any("Ben flew his kite" in m.value for m in at.markdown)
    assert any(m.value.startswith("Ben had a \\<b\\>kite\\<\\/b\\>") for m in at.markdown)  # escaped
    assert not [b for b in at.button if b.key and b.key.startswith("prefer_")]  # siblings load on demand
    at.toggle(key=f"siblings_{first.message_id}").set_value(True).run()
    at.button(key=f"prefer_{first.message_id}_{second.message_id}").click().run()
    assert any("Labelled reject" in s.value for s in at.success)
    assert not any("Ben flew his kite" in m.value for m in at.markdown)  # reviewed: left the default queue
    next(s for s in at.selectbox if s.label == "Reviewed").set_value("yes").run()
    at.text_area(key=f"rewrite_{first.message_id}").set_value("Ben ran with his kite.")
    at.button(key=f"save_rewrite_{first.message_id}").click().run()
    labels = ApiClient(api.url, token=api.admin_key).review_queue(reviewed="true")[0]["labels"]
    assert [(l["annotator"], l["verdict"], l["rewrite"]) for l in labels] == [
        ("ann1", "rewrite", "Ben ran with his kite.")]  # one label per annotator: replaced
    # a second annotator disagrees: agreement over 1 overlapping item is 0%
    ann2 = ApiClient(api.url, token=api.token_for("ann2"))
    ann2.label(first.message_id, "accept")
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Items labelled by 2+ annotators"] == "1" and metrics["Percent agreement"] == "0.0%"
    at.button(key=next(b.key for b in at.button if b.label == "Export a new snapshot")).click().run()
    snapshot = ann2.snapshots()[0]
    assert any(snapshot["content_hash"][:16] in s.value for s in at.success)
    assert [d.label for d in at.get("download_button")] == ["SFT JSONL", "DPO JSONL", "KTO JSONL"]
    assert "Ben ran with his kite." in ann2.snapshot_file(snapshot["id"], "sft")


def test_models_page_lineage_promote_rollback_and_runs(api):
    registry = data_registry(api.data_dir.resolve())  # the registry the API serves
    base = registry.register("base", str(TINY_MODEL), status=VersionStatus.PRODUCTION)
    rates = {"base_rate": 0.0, "candidate_rate": 0.75}
    child = registry.register("ft-1", str(TINY_MODEL), parent_id=base.id, metrics={"eval": {
        "passed": True, "reasons": ["learned: correction accuracy 0.0% -> 75.0% on 8 items"],
        "skill": {"corrections": rates}, "regression": {}}})
    data_runs(api.data_dir.resolve()).update("run-ui", status=RunStatus.PROMOTED, steps={"dataset": {}})
    viewer = _session(api, "ann1", "annotator", page="pages/models.py")
    assert not viewer.exception and not viewer.error, [e.value for e in viewer.error]
    assert viewer.get("graphviz_chart") and not [b for b in viewer.button if b.label == "Promote"]
    assert any("correction accuracy 0.0% -> 75.0%" in m.value.replace("\\", "") for m in viewer.markdown)
    assert viewer.get("vega_lite_chart")  # the gate's before / after, plotted
    assert any(api.model in c.value.replace("\\", "") for c in viewer.caption)
    at = _session(api, "boss", "admin", page="pages/models.py")
    versions_table, runs_table = at.dataframe
    assert {"base", "ft-1"} <= set(versions_table.value["name"])  # other tests may register more
    assert "run-ui" in list(runs_table.value["id"])
    at.selectbox(key="version_choice").set_value(child.id).run()
    at.button(key=f"Promote_{child.id}").click().run()
    assert any("Promote of ft" in s.value for s in at.success)
    def statuses() -> tuple[str, str]:
        return registry.get(base.id).status, registry.get(child.id).status
    assert statuses() == (VersionStatus.RETIRED, VersionStatus.PRODUCTION)
    at.button(key=f"Roll back_{child.id}").click().run()
    assert statuses() == (VersionStatus.PRODUCTION, VersionStatus.RETIRED)
    at.button(key=f"Promote_{child.id}").click().run()  # retired: the registry refuses, readably
    assert any("retired" in e.value for e in at.error)
    next(b for b in at.button if b.label == "Run one flywheel iteration").click().run()
    assert any("queued" in s.value for s in at.success), [e.value for e in at.error]
    assert "queued" in list(at.dataframe[1].value["status"])  # waiting for a `flywheel worker`


def test_report_page_plots_the_traffic(api, answered):
    at = _session(api, "boss", "admin", page="pages/report.py")
    assert not at.exception and not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Requests"]) >= 2 and int(metrics["Feedback items"]) >= 1
    summary = at.dataframe[0].value
    # answers carry the registry version that wrote them: the served model is mv-base from the start
    assert BASE_VERSION_ID in list(summary["model_version"]) and summary["requests"].sum() >= 2
    assert len(at.get("vega_lite_chart")) >= 6  # MFU/MBU need model size and device peaks in the answers


def test_api_key_sign_in_checks_the_key(api):
    at = _session(api, None, page="pages/login.py")
    at.text_input(key="api_key_input").set_value("sk-not-a-real-key-123")
    at.button[1].click().run()
    assert any("Incorrect API key" in e.value for e in at.error) and "token" not in at.session_state
    at.text_input(key="api_key_input").set_value(api.admin_key)
    at.button[1].click().run()
    assert at.session_state["token"] == api.admin_key and at.session_state["role"] == "annotator"


@pytest.mark.parametrize("page", ["pages/review.py", "pages/models.py", "pages/report.py", "pages/login.py"])
def test_every_page_reports_an_api_that_is_down_readably(page):
    at = AppTest.from_file(MAIN, default_timeout=30)
    for key, value in {"api_url": f"http://127.0.0.1:{free_port()}", "token": "sk-anything-123",
                       "role": "admin", "username": "boss"}.items():
        at.session_state[key] = value
    at.run().switch_page(page).run()
    if page == "pages/login.py":  # signed in: sign out works without the API
        at.button[0].click().run()
        at.text_input[0].set_value("boss")
        at.text_input[1].set_value("pw")
        at.button[0].click().run()
    assert not at.exception
    assert at.error and all("is not reachable" in e.value for e in at.error)

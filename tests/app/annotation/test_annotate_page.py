"""The Annotate page in Streamlit's AppTest against the real API (conftest): an admin creates a
dataset and adds chat answers, an annotator labels with the guidelines beside the item, skips, and
sees progress and agreement; plus the page's pure helpers (schema builder, shortcut map)."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.ui.annotation_view import EXAMPLE_QUESTIONS, questions_from_rows, response_values
from app.ui.safe_text import neutralize
from app.ui.shortcuts import help_line, listener_html, shortcut_map, widget_key

PAGE = str(Path(__file__).resolve().parents[3] / "app" / "ui" / "pages" / "annotate.py")
GUIDELINES = "Rate **strictly**; see [the rules](http://evil.example) <b>now</b>"


def _page(server, username: str, role: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for key, value in {"api_url": server.url, "token": server.tokens[username], "role": role,
                       "username": username}.items():
        at.session_state[key] = value
    return at.run()


def _texts(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown) + "\n".join(c.value for c in at.caption)


def test_admin_creates_a_dataset_and_adds_chat_answers(server):
    at = _page(server, "boss", "admin")
    assert any("No annotation dataset yet" in i.value for i in at.info)
    at.text_input(key="ann_new_name").set_value("pages")
    at.text_area(key="ann_new_guidelines").set_value(GUIDELINES)
    at.button(key="ann_new_create").click().run()
    assert not at.exception and any("Dataset pages created" in s.value for s in at.success)
    at.radio(key="ann_add_kind").set_value("messages")
    at.button(key="ann_add").click().run()
    assert any("Added 5 record(s)" in s.value for s in at.success)
    info = server["boss"].get("/v1/annotation/datasets/pages").json()
    assert [q["name"] for q in info["questions"]] == ["quality", "topic", "rewrite"]
    assert info["min_submitted"] == 2 and info["guidelines"] == GUIDELINES


def test_annotator_labels_beside_the_guidelines_and_skips(server):
    at = _page(server, "ann1", "annotator")
    assert "\\*\\*strictly\\*\\*" in _texts(at) and "\\<b\\>now" in _texts(at)  # shown as text
    assert neutralize("What is 2 plus 3?") in _texts(at) and "Candidate B" in _texts(at)
    record_id = server["ann1"].get("/v1/annotation/datasets/pages/next").json()["record"]["id"]
    assert neutralize("Keys: Enter submit · s skip · 1 quality = 1 · 2 quality = 2") in _texts(at)
    at.radio(key=widget_key(record_id, "quality")).set_value(4).run()
    assert neutralize("1 topic = math") in _texts(at)  # number keys move on to the next unanswered question
    at.radio(key=widget_key(record_id, "topic")).set_value("math").run()
    at.text_area(key=widget_key(record_id, "rewrite")).set_value("It is 5.")
    at.button(key="ann_submit").click().run()
    assert not at.exception and any("Submitted" in s.value for s in at.success)
    exported = server["ann1"].get("/v1/annotation/datasets/pages/export.jsonl").text.splitlines()[0]
    assert '"quality.responses": [4]' in exported and '"rewrite.responses": ["It is 5."]' in exported
    at.button(key="ann_submit").click().run()  # nothing answered on the next record: refused, named
    assert any("Not saved" in e.value and "quality" in e.value for e in at.error)
    at.button(key="ann_skip").click().run()
    assert any("Skipped" in s.value for s in at.success)
    progress = server["ann1"].get("/v1/annotation/datasets/pages/progress").json()
    mine = next(a for a in progress["annotators"] if a["annotator"] == "ann1")
    assert (mine["submitted"], mine["discarded"]) == (1, 1)
    # the page's own progress and agreement tables
    frames = [df.value for df in at.dataframe]
    assert any("ann1" in list(frame.get("annotator", [])) for frame in frames)
    assert any("quality" in list(frame.get("question", [])) for frame in frames)


def test_plain_users_are_turned_away(server):
    at = _page(server, "alice", "user")
    assert any("for annotators and admins" in w.value for w in at.warning)


def test_annotate_is_in_the_navigation_for_annotators(server):
    at = AppTest.from_file(PAGE.replace("pages/annotate.py", "main.py"), default_timeout=60)
    for key, value in {"api_url": server.url, "token": server.tokens["ann2"], "role": "annotator",
                       "username": "ann2"}.items():
        at.session_state[key] = value
    at.run().switch_page("pages/annotate.py").run()
    assert not at.exception and at.title[0].value == "Annotate"


QUESTIONS = [{"name": "quality", "kind": "rating", "scale": 5, "required": True},
             {"name": "topic", "kind": "label", "options": ["math", "story"], "required": True},
             {"name": "rewrite", "kind": "text", "required": False},
             {"name": "best", "kind": "ranking", "required": False}]


def test_shortcut_map_targets_the_first_unanswered_choice_question():
    keys = {s.key: s for s in shortcut_map(QUESTIONS, {}, "rec_1")}
    assert set(keys) == {"Enter", "s", "1", "2", "3", "4", "5"}
    assert keys["3"].selector == f".st-key-{widget_key('rec_1', 'quality')} [role=radiogroup] label"
    assert keys["3"].index == 2 and keys["3"].action == "quality = 3"
    assert keys["Enter"].selector == ".st-key-ann_submit button" and keys["s"].selector == ".st-key-ann_skip button"
    keys = {s.key: s for s in shortcut_map(QUESTIONS, {"quality": 4}, "rec_1")}
    assert set(keys) == {"Enter", "s", "1", "2"} and keys["2"].action == "topic = story"
    assert {s.key for s in shortcut_map(QUESTIONS, {"quality": 4, "topic": "math"}, "rec_1")} == {"Enter", "s"}
    ten = shortcut_map([{"name": "q", "kind": "rating", "scale": 10}], {}, "r")
    assert [s.key for s in ten][-1] == "0" and ten[-1].index == 9  # 0 selects the tenth
    assert help_line(shortcut_map(QUESTIONS[1:2], {}, "r")).startswith("Keys: Enter submit · s skip · 1 topic")


def test_listener_script_carries_only_the_map_as_json():
    script = listener_html(shortcut_map(QUESTIONS, {}, "rec_1"))
    assert script.count("<script>") == 1 and script.count("</script>") == 1
    assert '"key": "Enter"' in script and "st-key-ann_rec_1_quality" in script


def test_builder_rows_and_widget_values():
    assert questions_from_rows(EXAMPLE_QUESTIONS + [{"name": " ", "kind": "text"}]) == [
        {"name": "quality", "kind": "rating", "title": "How good is the answer?", "required": True, "scale": 5},
        {"name": "topic", "kind": "label", "title": "Topic", "required": True, "options": ["math", "story", "other"]},
        {"name": "rewrite", "kind": "text", "title": "Better answer (optional)", "required": False}]
    record = {"answer": "five"}
    assert response_values(QUESTIONS, {"quality": 3, "topic": None, "rewrite": "five ", "best": []}, record) == {
        "quality": 3}  # the unchanged rewrite and the empty ranking are not answers
    assert response_values(QUESTIONS, {"rewrite": "5", "best": ["m2", "m1"]}, record) == {
        "rewrite": "5", "best": ["m2", "m1"]}


@pytest.mark.parametrize("scale", [2, 7])
def test_rating_keys_cover_the_scale(scale):
    keys = [s.key for s in shortcut_map([{"name": "q", "kind": "rating", "scale": scale}], {}, "r")][2:]
    assert keys == [str(i) for i in range(1, scale + 1)]

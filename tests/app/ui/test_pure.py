"""Branch selection and markdown neutralizing, without Streamlit."""
from app.ui.conversation_tree import ROOT, active_path, parent_key, sibling_position
from app.ui.safe_text import neutralize

MESSAGES = [
    {"id": "s", "parent_id": None, "role": "system", "content": "sys", "created_at": "0"},
    {"id": "u1", "parent_id": "s", "role": "user", "content": "hi", "created_at": "1"},
    {"id": "a1", "parent_id": "u1", "role": "assistant", "content": "one", "created_at": "2"},
    {"id": "a2", "parent_id": "u1", "role": "assistant", "content": "two", "created_at": "3"},
    {"id": "u2", "parent_id": "a1", "role": "user", "content": "more", "created_at": "4"},
    {"id": "a3", "parent_id": "u2", "role": "assistant", "content": "three", "created_at": "5"},
]


def test_newest_sibling_is_shown_unless_one_is_chosen():
    assert [m["id"] for m in active_path(MESSAGES, {})] == ["u1", "a2"]
    assert [m["id"] for m in active_path(MESSAGES, {"u1": "a1"})] == ["u1", "a1", "u2", "a3"]


def test_sibling_position_and_parent_key():
    siblings, index = sibling_position(MESSAGES, MESSAGES[2])
    assert [m["id"] for m in siblings] == ["a1", "a2"] and index == 0
    assert parent_key(MESSAGES[1], MESSAGES) == ROOT  # system parent is hidden: u1 is top level
    assert parent_key(MESSAGES[3], MESSAGES) == "u1"


def test_neutralize_escapes_html_and_markdown():
    text = "<script>alert(1)</script> **bold** [x](http://e) $x$\nline"
    escaped = neutralize(text)
    assert "<" not in escaped.replace("\\<", "") and ">" not in escaped.replace("\\>", "")
    assert escaped.startswith("\\<script\\>") and "\\*\\*bold\\*\\*" in escaped and "\\$x\\$" in escaped
    assert escaped.endswith("  \nline")


def test_lineage_dot_quotes_names_and_links_known_parents():
    from app.ui.lineage import lineage_dot, version_rows
    versions = [{"id": "v1", "name": 'base "x"', "status": "production", "parent_id": None},
                {"id": "v2", "name": "ft", "status": "candidate", "parent_id": "v1", "metrics": {"eval": 1}},
                {"id": "v3", "name": "orphan", "status": "retired", "parent_id": "gone"}]
    dot = lineage_dot(versions)
    assert '"v1" [label="base \\"x\\" (production)"];' in dot
    assert '"v1" -> "v2";' in dot and '"gone"' not in dot
    assert version_rows(versions)[1]["metrics"] == '{"eval": 1}'


def test_queue_items_group_into_one_card_per_answer():
    from app.ui.review_queue import feedback_summary, group_by_answer, latest_correction
    items = [{"feedback_id": "f3", "message_id": "a", "prompt": "p", "answer": "x", "thumbs": None,
              "rating": 2, "tags": ["t"], "correction": None, "created_at": "2026-11-28T10:00:03Z"},
             {"feedback_id": "f2", "message_id": "b", "prompt": "q", "answer": "y", "thumbs": "up"},
             {"feedback_id": "f1", "message_id": "a", "prompt": "p", "answer": "x", "thumbs": "down",
              "correction": "better"}]
    cards = group_by_answer(items)
    assert [c["message_id"] for c in cards] == ["a", "b"]
    assert [f["feedback_id"] for f in cards[0]["feedback"]] == ["f3", "f1"]
    assert latest_correction(cards[0]) == "better" and latest_correction(cards[1]) is None
    assert feedback_summary(cards[0]["feedback"][0]) == "2/5 stars · tags: t · 2026-11-28T10:00:03"


def test_ui_command_rejects_bad_flags_with_exit_code_2(capsys):
    from app.cli import main
    assert main(["ui", "--api-url", "localhost:8000"]) == 2
    assert "--api-url must start with http" in capsys.readouterr().err
    assert main(["ui", "--port", "70000"]) == 2


def test_gate_reasons_and_comparison_come_from_the_stored_report():
    from app.ui.lineage import gate_comparison, gate_reasons
    outcome = lambda base, cand: {"base_rate": base, "candidate_rate": cand}  # noqa: E731
    version = {"metrics": {"eval": {
        "reasons": ["learned: correction accuracy 0.0% -> 80.0%", "kept: original_domain"],
        "skill": {"corrections": outcome(0.0, 0.8), "preferences": None},
        "regression": {"original_domain": outcome(0.9, 0.885)}}}}
    assert gate_reasons(version)[0].startswith("learned:")
    assert gate_comparison(version) == [
        {"measure": "taught: corrections", "model": "before", "percent": 0.0},
        {"measure": "taught: corrections", "model": "after", "percent": 80.0},
        {"measure": "kept: original_domain", "model": "before", "percent": 90.0},
        {"measure": "kept: original_domain", "model": "after", "percent": 88.5}]
    assert gate_reasons({"metrics": {"eval": 0.5}}) == [] == gate_comparison({})


def test_run_rows_format_epoch_times_and_steps():
    from app.ui.lineage import run_rows
    rows = run_rows([{"id": "r1", "status": "promoted", "created_at": 0, "updated_at": 60.5,
                      "steps": {"train": {}, "dataset": {}}}, {"id": "r2"}])
    assert rows[0] == {"id": "r1", "status": "promoted", "started": "1970-01-01T00:00:00+00:00",
                       "updated": "1970-01-01T00:01:00+00:00", "steps": "dataset, train", "error": None}
    assert rows[1]["started"] is None and rows[1]["steps"] == ""

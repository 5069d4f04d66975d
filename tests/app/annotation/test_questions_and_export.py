"""Label schemas and answers (errors name the field) and the export read back with the real
Hugging Face `datasets` package from JSONL and from Parquet."""
import datasets
import pytest

from app.annotation.export import ExportRecord, features, rows, to_jsonl, to_parquet
from app.annotation.questions import (AnnotationInputError, QuestionKind, RecordView, parse_questions,
                                      validate_answers)

SCHEMA = [{"name": "quality", "kind": "rating", "scale": 5, "title": "How good?"},
          {"name": "topic", "kind": "label", "options": ["math", "story"]},
          {"name": "issues", "kind": "multi_label", "options": ["wrong", "rude"], "required": False},
          {"name": "best", "kind": "ranking", "required": False},
          {"name": "rewrite", "kind": "text", "required": False}]


@pytest.mark.parametrize("raw, param", [
    ([], "questions"),
    ([{"name": "Bad Name", "kind": "rating", "scale": 5}], "questions.0.name"),
    ([{"name": "q", "kind": "stars"}], "questions.0.kind"),
    ([{"name": "q", "kind": "rating", "scale": 1}], "questions.0.scale"),
    ([{"name": "q", "kind": "rating", "scale": 11}], "questions.0.scale"),
    ([{"name": "q", "kind": "label", "options": ["only"]}], "questions.0.options"),
    ([{"name": "q", "kind": "label", "options": ["a", "a"]}], "questions.0.options"),
    ([{"name": "q", "kind": "text", "options": ["a", "b"]}], "questions.0.options"),
    ([{"name": "q", "kind": "text"}, {"name": "q", "kind": "text"}], "questions.1.name"),
    ([{"name": "q", "kind": "text", "colour": "red"}], "questions.0.colour"),
])
def test_bad_schemas_name_the_field(raw, param):
    with pytest.raises(AnnotationInputError) as caught:
        parse_questions(raw)
    assert caught.value.param == param


def test_schema_round_trips_through_its_dict_form():
    questions = parse_questions(SCHEMA)
    assert [q.kind for q in questions] == list(QuestionKind)
    assert parse_questions([q.to_dict() for q in questions]) == questions
    assert questions[0].title == "How good?" and questions[1].title == "topic"


RECORD = RecordView(candidate_ids=("m1", "m2"))


@pytest.mark.parametrize("values, param", [
    ({"topic": "math"}, "values.quality"),  # required and missing
    ({"quality": 6, "topic": "math"}, "values.quality"),
    ({"quality": True, "topic": "math"}, "values.quality"),
    ({"quality": 3, "topic": "poetry"}, "values.topic"),
    ({"quality": 3, "topic": "math", "issues": ["wrong", "wrong"]}, "values.issues"),
    ({"quality": 3, "topic": "math", "best": ["m1"]}, "values.best"),
    ({"quality": 3, "topic": "math", "best": ["m1", "m3"]}, "values.best"),
    ({"quality": 3, "topic": "math", "rewrite": "   "}, "values.rewrite"),
    ({"quality": 3, "topic": "math", "mood": "happy"}, "values.mood"),
])
def test_bad_answers_name_the_question(values, param):
    with pytest.raises(AnnotationInputError) as caught:
        validate_answers(parse_questions(SCHEMA), values, RECORD)
    assert caught.value.param == param


def test_answers_in_canonical_form():
    checked = validate_answers(parse_questions(SCHEMA), {"quality": 2, "topic": "story",
                                                         "issues": ["rude", "wrong"], "best": ["m2", "m1"]}, RECORD)
    assert checked == {"quality": 2, "topic": "story", "issues": ["wrong", "rude"], "best": ["m2", "m1"]}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    questions = parse_questions(SCHEMA)
    records = [
        ExportRecord("r1", "What is 2+3?", "5", [{"id": "m1", "text": "5"}, {"id": "m2", "text": "six"}],
                     {"model_version": "mv-1"},
                     [("ann1", {"quality": 5, "topic": "math", "issues": [], "best": ["m1", "m2"]}),
                      ("ann2", {"quality": 4, "topic": "story", "rewrite": "It is 5."})]),
        ExportRecord("r2", "Tell a story", "Once…", [], {}, []),  # not labelled yet
    ]
    export_rows = rows(questions, records, min_submitted=2)
    folder = tmp_path_factory.mktemp("export")
    (folder / "d.jsonl").write_text(to_jsonl(export_rows), encoding="utf-8")
    (folder / "d.parquet").write_bytes(to_parquet(questions, export_rows))
    return folder, export_rows


def test_parquet_loads_with_the_datasets_schema(exported):
    folder, _ = exported
    loaded = datasets.load_dataset("parquet", data_files=str(folder / "d.parquet"), split="train")
    assert loaded.features == datasets.Features.from_dict(features(parse_questions(SCHEMA)))
    topic = loaded.features["topic.responses"].feature
    assert isinstance(topic, datasets.ClassLabel) and topic.names == ["math", "story"]
    first, second = loaded[0], loaded[1]
    assert [topic.int2str(i) for i in first["topic.responses"]] == ["math", "story"]
    assert first["topic.responses.users"] == ["ann1", "ann2"]
    assert first["quality.responses"] == [5, 4] and first["status"] == "completed"
    assert first["best.responses"] == [["m1", "m2"]] and first["best.responses.users"] == ["ann1"]
    assert first["rewrite.responses"] == ["It is 5."] and first["rewrite.responses.users"] == ["ann2"]
    assert first["issues.responses"] == [[]]
    assert second["status"] == "pending" and second["quality.responses"] == [] and second["candidates"] == []
    assert first["candidates"] == [{"id": "m1", "text": "5"}, {"id": "m2", "text": "six"}]
    assert second["answer"] == "Once…"


def test_jsonl_loads_with_the_same_rows(exported):
    folder, export_rows = exported
    loaded = datasets.load_dataset("json", data_files=str(folder / "d.jsonl"), split="train")
    assert loaded.num_rows == 2
    assert loaded[0] == export_rows[0]
    assert loaded[0]["topic.responses"] == ["math", "story"]  # JSON carries the label text
    assert loaded[1]["id"] == "r2" and loaded[1]["metadata"] == "{}"

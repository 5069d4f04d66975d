"""Export an annotation dataset as JSONL or Parquet that Hugging Face `datasets.load_dataset("json"
/ "parquet", data_files=...)` reads, one row per record:

    id, prompt, answer, candidates [{id, text}], metadata (JSON text), status (pending|completed),
    and per question q: "q.responses" (each submitted answer) and "q.responses.users" (who gave it,
    in the same order), as Argilla's `to_datasets()` lays them out.

The Parquet file carries the `datasets` feature schema in its "huggingface" metadata, so labels
load as a `ClassLabel` (stored as the option's index, names from the schema) and empty lists keep
their types; JSONL carries the label text (JSON has no place for a schema). The feature dicts are
written in the form `Features.from_dict` reads ({"_type": ...}, a list for a sequence), so the
`datasets` package is not needed to write them. This module knows nothing about the database.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from app.annotation.questions import Question, QuestionKind

STRING, INT64 = {"dtype": "string", "_type": "Value"}, {"dtype": "int64", "_type": "Value"}


@dataclass(frozen=True, slots=True)
class ExportRecord:
    id: str
    prompt: str
    answer: str
    candidates: list[dict]  # [{"id", "text"}]
    metadata: dict
    responses: list[tuple[str, dict]] = field(default_factory=list)  # (username, values), submitted only


def _value_feature(question: Question) -> Any:
    return {QuestionKind.RATING: INT64, QuestionKind.TEXT: STRING, QuestionKind.MULTI_LABEL: [STRING],
            QuestionKind.RANKING: [STRING],
            QuestionKind.LABEL: {"names": list(question.options), "_type": "ClassLabel"}}[question.kind]


def features(questions: list[Question]) -> dict[str, Any]:
    """The `datasets` feature schema of an export (Features.to_dict form)."""
    schema: dict[str, Any] = {"id": STRING, "prompt": STRING, "answer": STRING,
                              "candidates": [{"id": STRING, "text": STRING}],
                              "metadata": STRING, "status": STRING}
    for question in questions:
        schema[f"{question.name}.responses"] = [_value_feature(question)]
        schema[f"{question.name}.responses.users"] = [STRING]
    return schema


def rows(questions: list[Question], records: list[ExportRecord], min_submitted: int) -> list[dict]:
    """One dict per record, values as JSON would carry them (labels as their text)."""
    out = []
    for record in records:
        row = {"id": record.id, "prompt": record.prompt, "answer": record.answer,
               "candidates": [{"id": c["id"], "text": c["text"]} for c in record.candidates],
               "metadata": json.dumps(record.metadata, sort_keys=True, ensure_ascii=False),
               "status": "completed" if len(record.responses) >= min_submitted else "pending"}
        for question in questions:
            answered = [(user, values[question.name]) for user, values in record.responses
                        if values.get(question.name) is not None]
            row[f"{question.name}.responses"] = [value for _, value in answered]
            row[f"{question.name}.responses.users"] = [user for user, _ in answered]
        out.append(row)
    return out


def to_jsonl(export_rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in export_rows)


def _arrow_type(feature: Any) -> pa.DataType:
    if isinstance(feature, list):
        return pa.list_(_arrow_type(feature[0]))
    if feature.get("_type") == "ClassLabel":
        return pa.int64()
    if feature.get("_type") == "Value":
        return pa.string() if feature["dtype"] == "string" else pa.int64()
    return pa.struct([(name, _arrow_type(sub)) for name, sub in feature.items()])


def to_parquet(questions: list[Question], export_rows: list[dict]) -> bytes:
    """Parquet bytes with the arrow schema of `features` and that schema in the metadata."""
    schema_dict = features(questions)
    label_index = {f"{q.name}.responses": {o: i for i, o in enumerate(q.options)}
                   for q in questions if q.kind is QuestionKind.LABEL}
    columns = {name: [row[name] for row in export_rows] for name in schema_dict}
    for name, index in label_index.items():
        columns[name] = [[index[v] for v in values] for values in columns[name]]
    metadata = {b"huggingface": json.dumps({"info": {"features": schema_dict}}).encode()}
    schema = pa.schema([(name, _arrow_type(f)) for name, f in schema_dict.items()], metadata=metadata)
    table = pa.Table.from_pydict(columns, schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()

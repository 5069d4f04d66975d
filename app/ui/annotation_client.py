"""The annotation console's calls to `/v1/annotation/datasets`, over the pages' `ApiClient` (its
errors are `ApiError`s with one readable sentence). No Streamlit here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from app.ui.client import ApiClient

BASE = "/v1/annotation/datasets"


@dataclass(slots=True)
class AnnotationClient:
    api: ApiClient

    def _path(self, name: str, tail: str = "") -> str:
        return f"{BASE}/{quote(name, safe='')}{tail}"

    def datasets(self) -> list[dict]:
        return self.api.request("GET", BASE).get("data", [])

    def create_dataset(self, name: str, questions: list[dict], guidelines: str, min_submitted: int) -> dict:
        body = {"name": name, "questions": questions, "guidelines": guidelines,
                "min_submitted": min_submitted}
        return self.api.request("POST", BASE, json=body)

    def add_from_chats(self, name: str, **source: Any) -> dict:
        source = {k: v for k, v in source.items() if v not in (None, "")}
        return self.api.request("POST", self._path(name, "/records"), json={"from_chats": source})

    def next_record(self, name: str) -> dict | None:
        return self.api.request("GET", self._path(name, "/next")).get("record")

    def respond(self, name: str, record_id: str, values: dict, status: str = "submitted") -> dict:
        path = self._path(name, f"/records/{quote(record_id, safe='')}/responses")
        return self.api.request("POST", path, json={"status": status, "values": values})

    def progress(self, name: str) -> dict:
        return self.api.request("GET", self._path(name, "/progress"))

    def agreement(self, name: str) -> list[dict]:
        return self.api.request("GET", self._path(name, "/agreement")).get("data", [])

    def export(self, name: str, kind: str) -> bytes:
        """The JSONL or Parquet file, as bytes for a download button."""
        assert kind in ("jsonl", "parquet"), kind
        return self.api._send("GET", self._path(name, f"/export.{kind}")).content  # same errors as request()

"""What shape a request's output must have: vLLM's `StructuredOutputsParams` field names.

Exactly one constraint per request: a JSON schema (`json`), any JSON object (`json_object`), a
regular expression (`regex`), one of fixed strings (`choice`), an EBNF grammar (`grammar`) or an
xgrammar structural tag (`structural_tag`: tagged segments such as tool calls, each tag's content a
JSON schema or grammar). The engine compiles it into a token mask applied at every step; this
module only checks the shape of the request (a schema that does not compile is refused by the
engine with a ValueError).
"""
from __future__ import annotations

import enum
import json as _json
from dataclasses import dataclass
from typing import Any


class StructuredOutputKind(enum.Enum):
    JSON = "json"
    JSON_OBJECT = "json_object"
    REGEX = "regex"
    CHOICE = "choice"
    GRAMMAR = "grammar"
    STRUCTURAL_TAG = "structural_tag"


@dataclass(slots=True)
class StructuredOutputsParams:
    json: str | dict[str, Any] | None = None  # a JSON schema (object or its text)
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None  # EBNF (GBNF-style), with a `root` rule
    json_object: bool | None = None  # any JSON object
    # xgrammar's structural-tag format (its JSON text or the object), as vLLM's field of this name
    structural_tag: str | dict[str, Any] | None = None
    # vLLM's switch for compact JSON; accepted, and always on here (see framework.engine.structured)
    disable_any_whitespace: bool = False

    def __post_init__(self) -> None:
        given = [kind for kind in StructuredOutputKind if _is_set(getattr(self, kind.value))]
        if len(given) != 1:
            names = ", ".join(k.value for k in given) or "none"
            raise ValueError(f"structured_outputs takes exactly one of json, json_object, regex, "
                             f"choice, grammar, structural_tag; got {names}")
        if isinstance(self.json, str):
            try:
                _json.loads(self.json)
            except ValueError as e:
                raise ValueError(f"the JSON schema is not valid JSON: {e}") from e
        elif self.json is not None and not isinstance(self.json, dict):
            raise ValueError("the JSON schema must be an object")
        if self.choice is not None and not (
                isinstance(self.choice, list) and self.choice
                and all(isinstance(c, str) and c for c in self.choice)):
            raise ValueError("choice must be a non-empty list of non-empty strings")
        if isinstance(self.structural_tag, str):
            try:
                _json.loads(self.structural_tag)
            except ValueError as e:
                raise ValueError(f"the structural tag is not valid JSON: {e}") from e
        elif self.structural_tag is not None and not isinstance(self.structural_tag, dict):
            raise ValueError("the structural tag must be an object")
        for name in ("regex", "grammar"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and value):
                raise ValueError(f"{name} must be a non-empty string")

    @property
    def kind(self) -> StructuredOutputKind:
        return next(k for k in StructuredOutputKind if _is_set(getattr(self, k.value)))

    def schema_text(self) -> str:
        """The JSON schema as text (property order kept: the output follows it)."""
        assert self.json is not None, "schema_text() on a non-JSON constraint"
        return self.json if isinstance(self.json, str) else _json.dumps(self.json)


def _is_set(value: Any) -> bool:
    return value is not None and value is not False

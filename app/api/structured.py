"""Which shape the answer must take: OpenAI's `response_format`, vLLM's `guided_*` extras and its
current `structured_outputs` object -> one `shared.StructuredOutputsParams` (or None).

At most one of them per request; every refusal is a 400 naming the field it is about. The schema,
regex or grammar is parsed here (without the model) so a bad one is refused before anything is
queued; the engine compiles it against the vocabulary.
"""
from __future__ import annotations

from typing import Any

from app.api.errors import APIError
from app.api.schemas.openai import ChatCompletionRequest, CompletionRequest
from framework.engine.structured import check_constraint
from shared import StructuredOutputsParams

_GUIDED = {"guided_json": "json", "guided_regex": "regex", "guided_choice": "choice",
           "guided_grammar": "grammar"}
_STRUCTURED_KEYS = ("json", "regex", "choice", "grammar", "json_object", "structural_tag",
                    "disable_any_whitespace")


def structured_outputs_from(
        body: ChatCompletionRequest | CompletionRequest) -> StructuredOutputsParams | None:
    """The request's constraint, checked; APIError 400 with `param` when it is malformed."""
    found: list[tuple[str, dict[str, Any]]] = []
    response_format = getattr(body, "response_format", None)
    if response_format is not None:
        fields = _from_response_format(response_format)
        if fields is not None:
            found.append(("response_format", fields))
    for name, key in _GUIDED.items():
        if getattr(body, name) is not None:
            found.append((name, {key: getattr(body, name)}))
    if body.structured_outputs is not None:
        found.append(("structured_outputs", _from_structured_outputs(body.structured_outputs)))
    if not found:
        return None
    if len(found) > 1:
        raise APIError(400, f"{found[0][0]} and {found[1][0]} both constrain the output; send one",
                       param=found[1][0], code="invalid_value")
    param, fields = found[0]
    try:
        spec = StructuredOutputsParams(**fields)
        check_constraint(spec)
    except ValueError as e:
        raise APIError(400, str(e), param=param, code="invalid_value") from e
    return spec


def _from_response_format(response_format: dict[str, Any]) -> dict[str, Any] | None:
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"json_object": True}
    if kind != "json_schema":
        raise APIError(400, f"response_format.type must be 'text', 'json_object' or 'json_schema', "
                            f"got {kind!r}", param="response_format.type", code="invalid_value")
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict):
        raise APIError(400, "response_format.json_schema must be an object with a 'name' and a "
                            "'schema'", param="response_format.json_schema", code="invalid_value")
    schema = spec.get("schema", {"type": "object"})  # OpenAI's default when omitted
    if not isinstance(schema, dict):
        raise APIError(400, "response_format.json_schema.schema must be a JSON schema object",
                       param="response_format.json_schema.schema", code="invalid_value")
    return {"json": schema}


def _from_structured_outputs(value: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(value) - set(_STRUCTURED_KEYS))
    if unknown:
        raise APIError(400, f"structured_outputs does not take {', '.join(unknown)}; it takes "
                            f"{', '.join(_STRUCTURED_KEYS)}", param="structured_outputs",
                       code="invalid_value")
    return {key: v for key, v in value.items() if v is not None}

"""Request validation errors -> (message, param, code) in this server's own words.

pydantic describes a failure in its own vocabulary ("Value error, ...", "Input should be a valid
string", "Field required"); a client reads OpenAI-style messages that name the field and say what
it must be ("max_tokens must be >= 1, got 0"). Every refusal names its `param`: a model-level
check names its field by raising `ParamError`, and a failure with no field path falls back to the
body itself ("body"), never to null.
"""
from __future__ import annotations

from dataclasses import dataclass

_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"),
           "less_than_equal": ("<=", "le"), "less_than": ("<", "lt")}
_LENGTHS = {"string_too_short": ("at least", "min_length", "characters"),
            "string_too_long": ("at most", "max_length", "characters"),
            "too_short": ("at least", "min_length", "items"),
            "too_long": ("at most", "max_length", "items")}
_TYPE_NAMES = {"string": "a string", "int": "an integer", "bool": "a boolean", "float": "a number",
               "list": "an array", "dict": "an object", "model": "an object",
               "model_attributes": "an object", "tuple": "an array", "set": "an array",
               "int_from_float": "an integer", "int_parsing": "an integer",
               "float_parsing": "a number", "bool_parsing": "a boolean"}
_CODES = {"missing": "missing_required_parameter", "extra_forbidden": "unknown_parameter",
          "value_error": "invalid_value", "literal_error": "invalid_value",
          "enum": "invalid_value", "union_tag_invalid": "invalid_value",
          **{t: "invalid_value" for t in (*_BOUNDS, *_LENGTHS)}}
# pydantic names the member of a union that failed ("str", "list[ContentPart]",
# "function-after[...]"); the client's field path is the rest
_UNION_TAGS = {"str", "int", "float", "bool", "list", "dict", "constrained-str", "constrained-int",
               "constrained-float", "constrained-list"}
# the tags of a list's tagged union (a Responses API input item's "type") follow its index
_ITEM_TAGS = {"message", "function_call", "function_call_output"}
_MAX_SHOWN_CHARS = 40


class ParamError(ValueError):
    """Raised by a model validator to name the field it is about, relative to the model (a
    request model's fields are top-level params; a message's are under messages.N)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class Refusal:
    message: str
    param: str
    code: str


def describe(errors: list[dict]) -> Refusal:
    """The refusal for a non-empty list of pydantic errors (the most useful one is described)."""
    error = _most_specific(errors)
    path = _field_path(error)
    kind = str(error.get("type", ""))
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ParamError):
        path = [*path, cause.param]
    if kind == "union_tag_invalid":  # the tag a tagged union reads is the item's "type"
        path = [*path, "type"]
    param = ".".join(path) or "body"
    if kind == "extra_forbidden":
        return Refusal(f"Unrecognized request argument supplied: {param}", param,
                       "unknown_parameter")
    return Refusal(_sentence(error, kind, param, errors, path), param,
                   _CODES.get(kind, "invalid_type"))


def _sentence(error: dict, kind: str, param: str, errors: list[dict], path: list[str]) -> str:
    ctx = error.get("ctx") or {}
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error") or error.get("msg", "")).removeprefix("Value error, ")
    if kind == "missing":
        return f"{param} is required"
    if kind in _BOUNDS:
        op, key = _BOUNDS[kind]
        return f"{param} must be {op} {ctx.get(key)}{_got(error)}"
    if kind in _LENGTHS:
        bound, key, unit = _LENGTHS[kind]
        if isinstance(error.get("input"), str):  # a length check on text run as a validator
            unit = "characters"
        count = ctx.get(key)
        return f"{param} must have {bound} {count} {unit.removesuffix('s') if count == 1 else unit}"
    if kind in ("literal_error", "enum"):
        return f"{param} must be one of {ctx.get('expected')}{_got(error)}"
    if kind == "union_tag_invalid":
        return f"{param} must be one of {ctx.get('expected_tags')}, got {ctx.get('tag')!r}"
    if kind == "string_unicode":
        return f"{param} must be valid Unicode text"
    if kind.endswith("_type") or kind in _TYPE_NAMES:
        wanted = _wanted_types(errors, path)
        return f"{param} must be {' or '.join(wanted) or 'of another type'}{_got(error)}"
    return f"{param} is invalid{_got(error)}"


def _wanted_types(errors: list[dict], path: list[str]) -> list[str]:
    """Every type a union field accepts, from its members' type errors, in order, once each."""
    wanted: list[str] = []
    for error in errors:
        kind = str(error.get("type", ""))
        name = _TYPE_NAMES.get(kind.removesuffix("_type"), _TYPE_NAMES.get(kind))
        if _field_path(error) == path and name and name not in wanted:
            wanted.append(name)
    return wanted


def _got(error: dict) -> str:
    value = error.get("input")
    if value is None:
        return ", got null"
    if isinstance(value, bool):
        return f", got {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f", got {value}"
    if isinstance(value, str):
        shown = value if len(value) <= _MAX_SHOWN_CHARS else value[:_MAX_SHOWN_CHARS] + "..."
        return f", got {shown!r}"
    return ""


def _field_path(error: dict) -> list[str]:
    loc = error.get("loc", ())
    return [str(part) for i, part in enumerate(loc) if part not in ("body", "query", "path")
            and not _is_union_tag(part)
            and not (part in _ITEM_TAGS and i and isinstance(loc[i - 1], int))]


def _most_specific(errors: list[dict]) -> dict:
    """The first error, unless it only says a union member had the wrong type (a string given
    where a list of content parts also fits) and another member of the same field failed for a
    real reason: that one is what the client needs to read."""
    first = errors[0]
    if not str(first.get("type", "")).endswith("_type"):
        return first
    path = _field_path(first)
    return next((e for e in errors[1:] if _field_path(e)[:len(path)] == path
                 and not str(e.get("type", "")).endswith("_type")), first)


def _is_union_tag(part) -> bool:
    return isinstance(part, str) and ("[" in part or part in _UNION_TAGS)

"""The demo's two tools, defined once: what the chat UI sends as `tools`, what `train-demo`
teaches the demo model to call, and the executors that answer those calls.

`run_tool(name, arguments)` never raises on what a model sends: a bad expression, an unknown
unit or a missing argument comes back as an "error: ..." string, because the caller feeds the
result to the model as a `tool` message either way. The calculator walks the `ast` of the
expression over a whitelist (numbers, + - * / // % **, parentheses, unary signs); nothing is
ever passed to `eval`.
"""
from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

CALCULATOR: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    },
}

CONVERT_UNITS: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "convert_units",
        "description": "Convert a value between units.",
        "parameters": {
            "type": "object",
            "properties": {
                "value": {"type": "number"},
                "from_unit": {"type": "string"},
                "to_unit": {"type": "string"},
            },
            "required": ["value", "from_unit", "to_unit"],
        },
    },
}

DEMO_TOOLS: tuple[dict[str, Any], ...] = (CALCULATOR, CONVERT_UNITS)

MAX_EXPRESSION_CHARS = 200
MAX_EXPONENT = 100  # bounds `**` so "9**9**9" cannot stall the server building a huge int
MAX_MAGNITUDE = 1e100  # results beyond this are refused rather than printed as 100-digit ints


class ToolError(ValueError):
    """A call the tool cannot answer; its message becomes the "error: ..." result."""


# ---- calculator -------------------------------------------------------------------------

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.USub: operator.neg,
                                                          ast.UAdd: operator.pos}


def _check_magnitude(value: int | float) -> int | float:
    if isinstance(value, float) and not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise ToolError("the result is too large")
    return value


def _evaluate(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _check_magnitude(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolError(f"exponents are limited to {MAX_EXPONENT}")
        try:
            result = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
        except OverflowError:
            raise ToolError("the result is too large") from None
        if isinstance(result, complex):  # (-8) ** 0.5
            raise ToolError("the result is not a real number")
        return _check_magnitude(result)
    raise ToolError(f"unsupported expression: {ast.unparse(node)}")


def calculate(expression: str) -> str:
    """The value of an arithmetic expression as text, e.g. "17 * 3" -> "51"."""
    if not isinstance(expression, str) or not expression.strip():
        raise ToolError("expression must be a non-empty string")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise ToolError(f"cannot parse {expression!r}") from None
    return format_number(_evaluate(tree.body))


# ---- unit converter ----------------------------------------------------------------------

# unit name -> (dimension, size in the dimension's base unit: metre, gram, second)
_UNITS: dict[str, tuple[str, float]] = {}


def _add_units(dimension: str, size: float, *names: str) -> None:
    for name in names:
        _UNITS[name] = (dimension, size)


_add_units("length", 1.0, "m", "meter", "meters", "metre", "metres")
_add_units("length", 0.01, "cm", "centimeter", "centimeters", "centimetre", "centimetres")
_add_units("length", 0.001, "mm", "millimeter", "millimeters", "millimetre", "millimetres")
_add_units("length", 1000.0, "km", "kilometer", "kilometers", "kilometre", "kilometres")
_add_units("mass", 1.0, "g", "gram", "grams")
_add_units("mass", 1000.0, "kg", "kilogram", "kilograms")
_add_units("time", 1.0, "s", "sec", "secs", "second", "seconds")
_add_units("time", 60.0, "min", "mins", "minute", "minutes")
_add_units("time", 3600.0, "h", "hr", "hrs", "hour", "hours")
_add_units("time", 86400.0, "d", "day", "days")
_add_units("time", 604800.0, "wk", "week", "weeks")

UNIT_NAMES: tuple[str, ...] = tuple(_UNITS)


def _unit(name: Any, field: str) -> tuple[str, float]:
    if not isinstance(name, str) or name.strip().lower() not in _UNITS:
        raise ToolError(f"unknown unit {name!r} in {field}")
    return _UNITS[name.strip().lower()]


def _number(value: Any) -> float:
    # a model may quote the number ("3.5"); a bool is JSON true/false, not a quantity
    if isinstance(value, bool):
        raise ToolError("value must be a number")
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        raise ToolError(f"value must be a number, not {value!r}") from None


def convert_units(value: Any, from_unit: Any, to_unit: Any) -> str:
    """`value` in `from_unit` expressed in `to_unit`, e.g. (3.5, "km", "m") -> "3500"."""
    amount = _number(value)
    from_dimension, from_size = _unit(from_unit, "from_unit")
    to_dimension, to_size = _unit(to_unit, "to_unit")
    if from_dimension != to_dimension:
        raise ToolError(f"cannot convert {from_dimension} ({from_unit}) to {to_dimension} "
                        f"({to_unit})")
    return format_number(_check_magnitude(amount * from_size / to_size))


# ---- shared -------------------------------------------------------------------------------

def format_number(value: int | float) -> str:
    """Short text for a result: ints exactly, floats to 6 decimals without trailing zeros (the
    model copies this into its answer, and 3.5000000000000004 helps nobody)."""
    if isinstance(value, int):
        return str(value)
    if value != 0 and (abs(value) < 1e-6 or abs(value) >= 1e15):
        return format(value, ".6g")
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


_EXECUTORS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "calculator": lambda args: calculate(args["expression"]),
    "convert_units": lambda args: convert_units(args["value"], args["from_unit"], args["to_unit"]),
}


def run_tool(name: str, arguments: dict) -> str:
    """The result of one call as the text of a `tool` message; "error: ..." when it fails."""
    executor = _EXECUTORS.get(name)
    if executor is None:
        return f"error: unknown tool {name!r}"
    if not isinstance(arguments, Mapping):
        return f"error: {name} arguments must be a JSON object"
    try:
        return executor(arguments)
    except KeyError as e:
        return f"error: {name} needs {e.args[0]!r}"
    except ToolError as e:
        return f"error: {e}"

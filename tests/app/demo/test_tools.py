"""The demo's tool executors: the calculator against Python's own arithmetic on the same
operands, the unit converter against conversions known by heart, and every bad call answered
with an "error: ..." string (never an exception, never `eval`)."""
from __future__ import annotations

import operator

import pytest

from app.demo.tools import CALCULATOR, CONVERT_UNITS, DEMO_TOOLS, format_number, run_tool


def _calc(expression: str) -> str:
    return run_tool("calculator", {"expression": expression})


def _convert(value, from_unit: str, to_unit: str) -> str:
    return run_tool("convert_units", {"value": value, "from_unit": from_unit, "to_unit": to_unit})


def test_definitions_are_the_ones_clients_send():
    assert [t["function"]["name"] for t in DEMO_TOOLS] == ["calculator", "convert_units"]
    assert CALCULATOR["function"]["parameters"]["required"] == ["expression"]
    assert CONVERT_UNITS["function"]["parameters"]["required"] == ["value", "from_unit", "to_unit"]
    assert CONVERT_UNITS["function"]["parameters"]["properties"]["value"] == {"type": "number"}


@pytest.mark.parametrize("symbol, op", [("+", operator.add), ("-", operator.sub),
                                        ("*", operator.mul), ("/", operator.truediv),
                                        ("//", operator.floordiv), ("%", operator.mod),
                                        ("**", operator.pow)])
def test_calculator_matches_python(symbol, op):
    for a, b in ((17, 23), (9999, 37), (-12, 5), (2.5, 4), (7, 2), (3, 7), (-7.5, -2)):
        expected = op(a, b)
        result = _calc(f"({a}) {symbol} ({b})")
        if abs(expected) > 1e100:  # 9999 ** 37: refused rather than printed in 148 digits
            assert result == "error: the result is too large"
        else:
            assert result == format_number(expected), (a, symbol, b)


@pytest.mark.parametrize("expression, expected", [
    ("(2 + 3) * 4", 20), ("2 + 3 * 4", 14), ("-(5 - 8)", 3), ("--4", 4), ("+7", 7),
    ("2 ** -1", 0.5), ("2 ** 10 % 1000", 24), ("0.1 + 0.2", 0.3), ("1e3 / 8", 125),
    ("  12 *12 ", 144), ("10 / 4", 2.5), ("2 ** 100", 2 ** 100),
])
def test_calculator_expressions(expression, expected):
    assert _calc(expression) == format_number(expected)


def test_results_are_short_text():
    assert _calc("1 / 3") == "0.333333"
    assert _calc("4 / 2") == "2" and _calc("0.1 * 3") == "0.3" and _calc("-0.0") == "0"
    assert _calc("3 * 123456789") == "370370367"


@pytest.mark.parametrize("expression, fragment", [
    ("1 / 0", "division by zero"), ("5 % 0", "division by zero"),
    ("9 ** 9 ** 9", "exponents are limited"), ("1e300 * 1e300", "too large"),
    ("10.0 ** 99 * 100", "too large"),
    ("(-8) ** 0.5", "not a real number"),
    ("__import__('os').system('true')", "unsupported"), ("abs(-3)", "unsupported"),
    ("x + 1", "unsupported"), ("[1, 2]", "unsupported"), ("'a' * 3", "unsupported"),
    ("True + 1", "unsupported"), ("1 < 2", "unsupported"), ("2 +", "cannot parse"),
    ("", "non-empty"), ("1+" * 150 + "1", "longer than"),
])
def test_calculator_refuses_with_an_error_string(expression, fragment):
    result = _calc(expression)
    assert result.startswith("error: ") and fragment in result, result


@pytest.mark.parametrize("value, from_unit, to_unit, expected", [
    (3.5, "km", "m", "3500"), (2, "kilograms", "grams", "2000"), (250, "g", "kg", "0.25"),
    (90, "minutes", "hours", "1.5"), (2, "weeks", "days", "14"), (1, "day", "s", "86400"),
    (12, "mm", "cm", "1.2"), (1, "Kilometre", "centimeters", "100000"), (3, "h", "min", "180"),
    ("3", "cm", "mm", "30"), (0, "m", "km", "0"), (-5, "m", "cm", "-500"),
])
def test_conversions(value, from_unit, to_unit, expected):
    assert _convert(value, from_unit, to_unit) == expected


@pytest.mark.parametrize("arguments, fragment", [
    ({"value": 1, "from_unit": "kg", "to_unit": "m"}, "cannot convert mass"),
    ({"value": 1, "from_unit": "furlong", "to_unit": "m"}, "unknown unit 'furlong'"),
    ({"value": "many", "from_unit": "m", "to_unit": "cm"}, "value must be a number"),
    ({"value": True, "from_unit": "m", "to_unit": "cm"}, "value must be a number"),
    ({"value": 1, "from_unit": "m"}, "needs 'to_unit'"),
])
def test_bad_conversions_are_error_strings(arguments, fragment):
    result = run_tool("convert_units", arguments)
    assert result.startswith("error: ") and fragment in result, result


def test_unknown_tool_and_bad_arguments():
    assert run_tool("weather", {}) == "error: unknown tool 'weather'"
    assert run_tool("calculator", {}).startswith("error: calculator needs 'expression'")
    assert run_tool("calculator", ["1+1"]).startswith("error: ")  # type: ignore[arg-type]
    assert run_tool("calculator", {"expression": 12}).startswith("error: ")

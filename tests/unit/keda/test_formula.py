"""scalingModifiers formulas: what KEDA users write evaluates as in expr-lang; the rest is refused.

Tables: formula and trigger values -> value; formula -> load error (with its column); values
that make a valid formula fail. The safety table shows that attribute access, imports, calls of
anything but the formula functions and huge exponents are refused, never run.
"""

from __future__ import annotations

import math
import time

import pytest

from adapter.keda.formula import MAX_DEPTH, EvaluationError, FormulaError, compile_formula

NAMES = ("a", "b", "c", "queue_len", "trig_one", "trig_two")


@pytest.mark.parametrize("formula, values, expected", [
    ("(a + b) / 2", {"a": 1, "b": 4}, 2.5),
    ("a * 2 - b", {"a": 3, "b": 1}, 5),
    ("7 / 2", {}, 3.5),  # division is always a float division
    ("int(a) % 3", {"a": 7.9}, 1),
    ("-7 % 3", {}, -1),  # Go's sign rule
    ("2 ** 3 ** 2", {}, 512),  # right-associative
    ("2 ^ 10", {}, 1024),
    ("-2 ** 2", {}, -4),  # ** binds tighter than unary minus
    ("(-2) ** 2", {}, 4),
    ("a < 2 ? a + b : 1", {"a": 1, "b": 4}, 5),
    ("a < 2 ? a + b : 1", {"a": 3, "b": 4}, 1),
    ("trig_one < 2 ? trig_one + trig_two >= 2 ? 5 : 10 : 0", {"trig_one": 1, "trig_two": 4}, 5),
    ("float(trig_two < 5 ? trig_one + trig_two : 5)", {"trig_one": 1, "trig_two": 7}, 5),
    ("count([trig_one, trig_two], {# > 1}) > 1 ? 5 : 0", {"trig_one": 3, "trig_two": 4}, 5),
    ("count([trig_one, trig_two], # > 1)", {"trig_one": 3, "trig_two": 0}, 1),
    ("count([a > 1, b > 1])", {"a": 3, "b": 0}, 1),
    ("trig_one ?? trig_two ?? 5", {"trig_one": None, "trig_two": None}, 5),
    ("trig_one ?? trig_two ?? 5", {"trig_one": None, "trig_two": 2}, 2),
    ("(a ?? 0) + b", {"a": None, "b": 2}, 2),
    ("a + b ?? 3", {"a": 1, "b": None}, 4),  # ?? binds tightest: a + (b ?? 3)
    ("min(a, b, 3)", {"a": 7, "b": 4}, 3),
    ("max([a, b])", {"a": 7, "b": 4}, 7),
    ("abs(a - b)", {"a": 1, "b": 4}, 3),
    ("ceil(a) + floor(b) + round(c)", {"a": 0.2, "b": 1.7, "c": 2.5}, 5),
    ("round(-2.5)", {}, -3),  # half away from zero, as Go's math.Round
    ("sum([a, b, c]) / len([a, b, c])", {"a": 1, "b": 2, "c": 6}, 3),
    ("mean([a, b]) + median([a, b, c])", {"a": 1, "b": 2, "c": 9}, 3.5),
    ("sum(filter([a, b, c], # >= 2))", {"a": 1, "b": 2, "c": 6}, 8),
    ("all([a, b], # > 0) ? 1 : 0", {"a": 1, "b": 0}, 0),
    ("any([a, b], # > 0) && none([a, b], # > 5) ? 1 : 0", {"a": 1, "b": 0}, 1),
    ("one([a, b], # > 0) ? 1 : 0", {"a": 1, "b": 0}, 1),
    ("1 < a < 5 ? 1 : 0", {"a": 3}, 1),  # a chain: 1 < a and a < 5
    ("1 < a < 5 ? 1 : 0", {"a": 6}, 0),
    ("a == 1 ? 1 : 0", {"a": 1.0}, 1),
    ("a != b ? 1 : 0", {"a": 1, "b": 1}, 0),
    ("not (a > 1) ? 1 : 2", {"a": 0}, 1),
    ("!(a > 1) || b > 1 ? 1 : 2", {"a": 5, "b": 0}, 2),
    ("a > 1 and b > 1 or c > 1 ? 3 : 4", {"a": 2, "b": 0, "c": 0}, 4),
    ("(a > 1 ?: b > 1) ? 1 : 0", {"a": 0, "b": 2}, 1),  # c ?: d is c ? c : d
    ("queue_len > 100 ? queue_len / 10 : queue_len / 50", {"queue_len": 1000}, 100),
    ("a == nil ? 0 : a", {"a": None}, 0),
    ("1e3 + .5", {}, 1000.5),
])
def test_values(formula: str, values: dict[str, float | None], expected: float) -> None:
    assert compile_formula(formula, NAMES).evaluate(values) == pytest.approx(expected)


def test_nil_result_is_none() -> None:
    """A formula may give nil (all its ?? operands nil): the caller applies KEDA's fallback."""
    assert compile_formula("a ?? b", NAMES).evaluate({"a": None, "b": None}) is None


@pytest.mark.parametrize("formula, error", [
    ("", "is empty"),
    ("a +", "ends too early"),
    ("(a + b", "ends too early"),
    ("a b", "unexpected 'b' at column 3"),
    ("a + * b", "unexpected '*' at column 5"),
    ("a ; b", "unexpected character ';' at column 3 (a formula is one expression)"),
    ("'x'", "strings are not part of formulas"),
    ("foo + 1", 'uses "foo" at column 1, which is not the name of a trigger (named triggers: a, b, c'),
    ("max(a) + nope(b)", 'calls "nope" at column 10, which is not a formula function'),
    ("a % 2", "uses % at column 3 on a value that is not a whole number"),
    ("a > 1", "gives true or false at column 3; it must give a number"),
    ("[a, b]", "gives an array at column 1"),
    ("a ? 1 : 2", "uses a number as a condition (?) at column 1"),
    ("a > 1 ? true : 2", "whose branches give a number and true/false"),
    ("a ?? b + 1", "mixes ?? with + at column 8: wrap the ?? part in parentheses"),
    ("a ?? b > 1 ? 1 : 0", "mixes ?? with > at column 8"),
    ("true + 1", "uses + at column 1 on true/false, which needs a number"),
    ("a == true ? 1 : 0", "compares true/false with another kind of value (==) at column 3"),
    ("not a ? 1 : 0", "uses a number as a condition (not) at column 5"),
    ("#", "uses # outside a predicate at column 1"),
    ("max({a})", "has a {...} block at column 5 where no predicate goes"),
    ("count(a, # > 1)", "calls count() at column 1 on a number; it needs an array"),
    ("sum(a)", "calls sum() at column 1 on a number; it needs an array"),
    ("abs(a, b)", "calls abs() at column 1 with 2 arguments; it takes 1"),
    ("min()", "calls min() at column 1 without arguments"),
    ("1 / 0", "/ at column 3 divides by zero"),
    ("1e999", "has a number too large at column 1"),
    ("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1), f"nests more than {MAX_DEPTH} levels deep"),
    ("-" * 3000 + "a", f"nests more than {MAX_DEPTH} levels deep"),
    ("a + " * 1100 + "a", "is longer than 4096 characters"),
])
def test_load_errors(formula: str, error: str) -> None:
    with pytest.raises(FormulaError) as raised:
        compile_formula(formula, NAMES)
    assert error in str(raised.value)


@pytest.mark.parametrize("formula, error", [
    # what Python's eval would run, and what a template or expression injection tries
    ("a.__class__", "uses attribute access (.__class__) at column 2, which formulas do not allow"),
    ("a.b.c", "uses attribute access (.b) at column 2"),
    ("max([a]).real", "uses attribute access (.real) at column 9"),
    ("a[0]", "uses index access ([...]) at column 2, which formulas do not allow"),
    ("import os", "unexpected 'os' at column 8"),
    ("__import__('os')", "unexpected character \"'\" at column 12 (strings are not part of formulas)"),
    ("__import__(a)", 'calls "__import__" at column 1, which is not a formula function'),
    ("eval(a)", 'calls "eval" at column 1, which is not a formula function'),
    ("open(a)", 'calls "open" at column 1'),
    ("lambda: a", "unexpected ':' at column 7"),
    ("__builtins__", 'uses "__builtins__" at column 1, which is not the name of a trigger'),
    ("[x for x in a]", "unexpected 'for' at column 4"),
    # huge exponents: refused at load when constant, never computed as big integers
    ("9 ** 9 ** 9", "** at column 3 gives a number too large"),
    ("10 ** 400", "** at column 4 gives a number too large"),
    ("2 ^ 100000", "^ at column 3 gives a number too large"),
    ("(-8) ** 0.5", "raises a negative number to a fractional power"),
    ("0 ** -1", "divides by zero"),
])
def test_refused_safely(formula: str, error: str) -> None:
    started = time.perf_counter()
    with pytest.raises(FormulaError) as raised:
        compile_formula(formula, NAMES)
    assert error in str(raised.value)
    assert time.perf_counter() - started < 0.5  # refused, not computed


@pytest.mark.parametrize("formula, values, error", [
    ("a ** b", {"a": 10, "b": 1e9}, "** at column 3 gives a number too large"),
    ("a ** b ** b", {"a": 9, "b": 9}, "gives a number too large"),
    ("a * b", {"a": 1e300, "b": 1e300}, "* at column 3 gives a number too large"),
    ("a / b", {"a": 1, "b": 0}, "/ at column 3 divides by zero"),
    ("int(a) % int(b)", {"a": 1, "b": 0}, "% at column 8 divides by zero"),
    ("a + b", {"a": None, "b": 1}, "+ got nil: a trigger has no value"),
    ("a > 1 ? 1 : 0", {"a": None}, "> got nil"),
])
def test_evaluation_errors(formula: str, values: dict[str, float | None], error: str) -> None:
    compiled = compile_formula(formula, NAMES)
    started = time.perf_counter()
    with pytest.raises(EvaluationError) as raised:
        compiled.evaluate(values)
    assert error in str(raised.value)
    assert time.perf_counter() - started < 0.5


def test_names_read_and_evaluation_is_cheap() -> None:
    formula = compile_formula("count([trig_one, trig_two], {# > 1}) > 1 ? max(trig_one, trig_two) : 0", NAMES)
    assert formula.names == {"trig_one", "trig_two"}
    started = time.perf_counter()
    for i in range(10_000):
        formula.evaluate({"trig_one": float(i), "trig_two": 2.0})
    per_call = (time.perf_counter() - started) / 10_000
    assert per_call < 1e-4 and math.isfinite(per_call)  # well under a millisecond on a loaded machine

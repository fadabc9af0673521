"""labelSelector parsing: upstream's grammar, quirks and errors, and matching."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapter.kube.selectors import Op, Requirement, SelectorError, parse_selector

R = Requirement


@pytest.mark.parametrize("text, requirements", [
    ("", ()),
    ("a=b", (R("a", Op.EQUALS, frozenset({"b"})),)),
    ("a==b", (R("a", Op.DOUBLE_EQUALS, frozenset({"b"})),)),
    ("a!=b", (R("a", Op.NOT_EQUALS, frozenset({"b"})),)),
    ("x=", (R("x", Op.EQUALS, frozenset({""})),)),
    ("x in ()", (R("x", Op.IN, frozenset({""})),)),
    ("x in (a,,b)", (R("x", Op.IN, frozenset({"a", "", "b"})),)),
    ("x in (,a)", (R("x", Op.IN, frozenset({"a", ""})),)),
    ("x in (a,)", (R("x", Op.IN, frozenset({"a", ""})),)),
    ("x in(a)", (R("x", Op.IN, frozenset({"a"})),)),
    ("x notin (a, b)", (R("x", Op.NOT_IN, frozenset({"a", "b"})),)),
    ("x", (R("x", Op.EXISTS),)),
    ("!x", (R("x", Op.DOES_NOT_EXIST),)),
    (" \tx > 5 \r\n", (R("x", Op.GREATER, frozenset({"5"})),)),
    ("x<15", (R("x", Op.LESS, frozenset({"15"})),)),
    ("in in (in)", (R("in", Op.IN, frozenset({"in"})),)),
    ("notin=notin", (R("notin", Op.EQUALS, frozenset({"notin"})),)),
    ("scaledobject.keda.sh/name=my-so,b in (c)", (R("scaledobject.keda.sh/name", Op.EQUALS, frozenset({"my-so"})),
                                                  R("b", Op.IN, frozenset({"c"})))),
])
def test_valid(text: str, requirements: tuple[Requirement, ...]) -> None:
    assert parse_selector(text).requirements == requirements


@pytest.mark.parametrize("text", [
    ",", "a=b,", ",a=b", "a=b,,c=d", "x in (a b)", "!x=a", "x>a", "x>1.5", "x>99999999999999999999",
    "a/=b", "/a=b", "A.B/c=d", "a=b c", "=a", "x in a", "x in (a", "a=-b", "a=" + "v" * 64, "k" * 64 + "=v",
    "a=(b)", "x ! y", "a!b", "x<-5", "x>+5",
])
def test_invalid(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_selector(text)


@pytest.mark.parametrize("text, labels, expected", [
    ("a=b", {"a": "b"}, True), ("a=b", {}, False), ("a!=b", {}, True), ("a!=b", {"a": "b"}, False),
    ("a in (b,c)", {"a": "c"}, True), ("a notin (b)", {}, True), ("a", {"a": ""}, True), ("!a", {"a": "x"}, False),
    ("a>5", {"a": "6"}, True), ("a>5", {"a": "x"}, False), ("a<5", {}, False), ("x=", {"x": ""}, True),
])
def test_matching(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_selector(text).matches(labels) is expected


def test_exact_match() -> None:
    assert parse_selector("a in (x),b=y").exact_match("a") == "x"
    assert parse_selector("a in (x,z)").exact_match("a") is None
    assert parse_selector("a!=x").exact_match("a") is None


NAME = st.from_regex(r"[a-z0-9]([-a-z0-9_.]{0,20}[a-z0-9])?", fullmatch=True)
KEY = st.one_of(NAME, st.builds(lambda p, n: f"{p}.io/{n}", st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True), NAME))


@st.composite
def requirement_texts(draw: st.DrawFn) -> tuple[str, Requirement]:
    key = draw(KEY)
    kind = draw(st.sampled_from(["=", "==", "!=", "in", "notin", "exists", "!"]))
    if kind == "exists":
        return key, R(key, Op.EXISTS)
    if kind == "!":
        return f"!{key}", R(key, Op.DOES_NOT_EXIST)
    if kind in ("in", "notin"):
        values = draw(st.lists(NAME, min_size=1, max_size=4))
        op = Op.IN if kind == "in" else Op.NOT_IN
        return f"{key} {kind} ({', '.join(values)})", R(key, op, frozenset(values))
    value = draw(NAME)
    op = {"=": Op.EQUALS, "==": Op.DOUBLE_EQUALS, "!=": Op.NOT_EQUALS}[kind]
    return f"{key}{kind}{value}", R(key, op, frozenset({value}))


@given(st.lists(requirement_texts(), min_size=1, max_size=5), st.sampled_from([",", " , ", ",  "]))
def test_generated_selectors_parse_to_their_requirements(parts: list[tuple[str, Requirement]], sep: str) -> None:
    selector = parse_selector(sep.join(text for text, _ in parts))
    assert selector.requirements == tuple(r for _, r in parts)


@given(st.text(alphabet="ab=!(),<> \tin1", max_size=20))
def test_arbitrary_text_parses_or_raises_selector_error(text: str) -> None:
    with contextlib.suppress(SelectorError):
        parse_selector(text)

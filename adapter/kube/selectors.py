"""Label selectors exactly as Kubernetes parses them (k8s.io/apimachinery/pkg/labels).

Two readers: the API, where the HPA sends `labelSelector=scaledobject.keda.sh/name=<so>` (the
full grammar answers 400 where kube-apiserver would, and routing uses the one requirement that
names the ScaledObject), and the catalog's pod view, which matches a kubernetes-workload
trigger's `podSelector` against pod labels. Parsing is a lexer (greedy special symbols) and a
recursive-descent parser that keeps upstream's quirks: `x=` means x equals "", `x in ()` is
{""}, `(a,,b)` contains "", and `in`/`notin` are keywords only where an operator is expected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum


class SelectorError(ValueError):
    """A selector kube-apiserver would reject with 400."""


class Op(Enum):
    """The operator of one requirement of a label or field selector."""

    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    GREATER = ">"
    LESS = "<"


_SPECIAL = "=!(),><"
_SYMBOLS = {"=", "==", "!=", "!", "(", ")", ",", ">", "<"}
_WHITESPACE = " \t\r\n"
_OPERATORS = {
    "=": Op.EQUALS, "==": Op.DOUBLE_EQUALS, "!=": Op.NOT_EQUALS, "in": Op.IN, "notin": Op.NOT_IN,
    ">": Op.GREATER, "<": Op.LESS,
}
_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_END = ""  # the end-of-string token


@dataclass(frozen=True)
class Requirement:
    key: str
    op: Op
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key, "")
        if self.op in (Op.EQUALS, Op.DOUBLE_EQUALS, Op.IN):
            return present and value in self.values
        if self.op in (Op.NOT_EQUALS, Op.NOT_IN):
            return not present or value not in self.values
        if self.op is Op.EXISTS:
            return present
        if self.op is Op.DOES_NOT_EXIST:
            return not present
        if not present:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        bound = int(next(iter(self.values)))
        return number > bound if self.op is Op.GREATER else number < bound


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def exact_match(self, key: str) -> str | None:
        """The value `key` must equal (`=`, `==` or a one-value `in`), as RequiresExactMatch."""
        for r in self.requirements:
            if r.key == key and r.op in (Op.EQUALS, Op.DOUBLE_EQUALS, Op.IN) and len(r.values) == 1:
                return next(iter(r.values))
        return None


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, literal) pairs; kind is "id", a symbol, or _END."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _WHITESPACE:
            i += 1
        elif ch in _SPECIAL:
            j = i + 1
            while j < n and text[j] in _SPECIAL and text[i : j + 1] in _SYMBOLS:
                j += 1
            out.append((text[i:j], text[i:j]))
            i = j
        else:
            j = i
            while j < n and text[j] not in _WHITESPACE and text[j] not in _SPECIAL:
                j += 1
            out.append(("id", text[i:j]))
            i = j
    out.append((_END, _END))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.items = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str]:
        return self.items[self.pos]

    def take(self) -> tuple[str, str]:
        item = self.items[self.pos]
        self.pos = min(self.pos + 1, len(self.items) - 1)
        return item

    def selector(self) -> Selector:
        requirements: list[Requirement] = []
        if self.peek()[0] == _END:
            return Selector(())
        while True:
            kind, literal = self.peek()
            if kind not in ("id", "!"):
                raise SelectorError(f"found '{literal}', expected: !, identifier, or 'end of string'")
            requirements.append(self.requirement())
            kind, literal = self.take()
            if kind == _END:
                return Selector(tuple(requirements))
            if kind != ",":
                raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            if self.peek()[0] not in ("id", "!"):
                raise SelectorError(f"found '{self.peek()[1]}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        negated = self.peek()[0] == "!"
        if negated:
            self.take()
        kind, key = self.take()
        if kind != "id":
            raise SelectorError(f"found '{key}', expected: identifier")
        validate_key(key)
        if self.peek()[0] in (_END, ","):
            return Requirement(key, Op.DOES_NOT_EXIST if negated else Op.EXISTS)
        if negated:
            return Requirement(key, Op.DOES_NOT_EXIST)
        kind, literal = self.take()
        op = _OPERATORS.get(literal)
        if op is None:
            raise SelectorError(f"found '{literal}', expected: in, notin, =, ==, !=, gt, lt")
        values = self.value_set() if op in (Op.IN, Op.NOT_IN) else self.exact_value()
        for value in values:
            validate_value(value)
        if op in (Op.GREATER, Op.LESS):
            _require_int64(next(iter(values)))
        return Requirement(key, op, values)

    def exact_value(self) -> frozenset[str]:
        if self.peek()[0] in (_END, ","):
            return frozenset({""})
        kind, literal = self.take()
        if kind != "id":
            raise SelectorError(f"found '{literal}', expected: identifier")
        return frozenset({literal})

    def value_set(self) -> frozenset[str]:
        kind, literal = self.take()
        if kind != "(":
            raise SelectorError(f"found '{literal}', expected: '('")
        values: set[str] = set()
        kind, literal = self.peek()
        if kind == ")":
            self.take()
            return frozenset({""})
        if kind not in ("id", ","):
            raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")
        while True:
            kind, literal = self.take()
            if kind == "id":
                values.add(literal)
                following = self.peek()[0]
                if following == ")":
                    self.take()
                    return frozenset(values)
                if following != ",":
                    raise SelectorError(f"found '{self.peek()[1]}', expected: ',' or ')'")
            elif kind == ",":
                if not values:
                    values.add("")
                following = self.peek()[0]
                if following == ")":
                    self.take()
                    values.add("")
                    return frozenset(values)
                if following == ",":
                    self.take()
                    values.add("")
            else:
                raise SelectorError(f"found '{literal}', expected: ',', or identifier")


def _require_int64(value: str) -> None:
    try:
        number = int(value, 10)
    except ValueError:
        raise SelectorError(f"for 'Gt', 'Lt' operators, the value must be an integer: '{value}'") from None
    if not -(2**63) <= number < 2**63 or value.strip() != value or "_" in value:
        raise SelectorError(f"for 'Gt', 'Lt' operators, the value must be an integer: '{value}'")


def validate_key(key: str) -> None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        raise SelectorError(f"invalid label key \"{key}\": prefix must be a DNS-1123 subdomain")
    if not name or len(name) > 63 or not _NAME.fullmatch(name):
        raise SelectorError(
            f"invalid label key \"{key}\": name part must consist of alphanumeric characters, '-', '_' "
            "or '.', and must start and end with an alphanumeric character (at most 63 characters)"
        )


def validate_value(value: str) -> None:
    if value and (len(value) > 63 or not _NAME.fullmatch(value)):
        raise SelectorError(
            f"invalid label value: \"{value}\": must be 63 characters or less and consist of alphanumeric "
            "characters, '-', '_' or '.', starting and ending with an alphanumeric character"
        )


def parse_selector(text: str) -> Selector:
    """Parse a labelSelector (`app.route_of` caches the route found in a query string)."""
    return _Parser(text).selector()

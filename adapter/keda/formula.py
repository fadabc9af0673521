"""The formula language of `advanced.scalingModifiers`: parsed, checked and compiled once, at load.

KEDA evaluates `scalingModifiers.formula` with expr-lang. What users write with it is a small
part of that language, and this module implements that part with the same precedence and
rules, so a formula written for KEDA means the same here:

* numbers (`2`, `0.5`, `1e3`), `true`, `false`, `nil`, the names of the ScaledObject's triggers;
* `+ - * / %`, `**` and `^` (power, right-associative), unary `-` `+`, `not` / `!`;
* `== != < <= > >=` (a chain such as `1 < x < 5` means `1 < x and x < 5`), `and`/`&&`, `or`/`||`;
* `c ? a : b`, the short form `c ?: b` (`c ? c : b`), and `a ?? b` (`b` when `a` is nil: a trigger
  past its failure threshold with `fallback.behavior: scalingModifiers`);
* arrays `[a, b]` and the functions `min max abs ceil floor round int float sum mean median
  len count all any none one filter`, with predicates written `{# > 1}` or `# > 1`.

Parsing is done by a grammar (lark, LALR) and evaluation by closures built from the checked
tree: there is no `eval`, no name but the triggers' and the functions above, no attribute or
index access, no strings. Every error names its column. Types are checked at load as expr-lang
checks them (`%` needs whole numbers, a condition must be true or false, the result must be a
number), and arithmetic is bounded: a power whose result is not a finite number, a division by
zero or a huge literal is refused (at load when it is constant, else when evaluated), and a
formula is at most `MAX_LENGTH` characters and `MAX_DEPTH` levels deep.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

MAX_LENGTH = 4096  # characters
MAX_DEPTH = 64  # nested operations

Value = float | int | bool | None | list[Any]
Env = Mapping[str, float | None]
Evaluator = Callable[[Env, Value], Value]  # (trigger values, the current `#` element) -> value


class FormulaError(ValueError):
    """A formula that cannot be used, or that failed on these values; the message names a column."""


class EvaluationError(FormulaError):
    """The formula is valid but these trigger values give no number (nil, division by zero, ...)."""


class Type(Enum):
    """What a sub-formula is known to give when it is checked (ANY: known only when it runs)."""

    NUMBER = "number"
    INT = "integer"
    BOOL = "boolean"
    ARRAY = "array"
    NIL = "nil"
    ANY = "value"  # an array element or a ternary whose branches are nil and something


_GRAMMAR = r"""
?start: expr
?expr: or_expr
     | or_expr "?" expr ":" expr       -> ternary
     | or_expr "?" ":" expr            -> elvis
?or_expr: and_expr (OR and_expr)*
?and_expr: not_expr (AND not_expr)*
?not_expr: NOT not_expr                -> negation
         | cmp_expr
?cmp_expr: add_expr (CMP add_expr)*
?add_expr: mul_expr (ADD mul_expr)*
?mul_expr: unary (MUL unary)*
?unary: SIGN unary                     -> sign
      | power
?power: coalesce POW unary
      | coalesce
?coalesce: postfix (COALESCE postfix)*
?postfix: primary
        | postfix DOT NAME             -> member
        | postfix LBRACKET expr "]"    -> index
?primary: NUMBER                       -> number
        | "true"                       -> true
        | "false"                      -> false
        | "nil"                        -> nil
        | POINTER                      -> pointer
        | NAME                         -> name
        | NAME "(" [arguments] ")"     -> call
        | "(" expr ")"                 -> group
        | LBRACKET [arguments] "]"     -> array
arguments: argument ("," argument)* ","?
?argument: expr
         | "{" expr "}"                -> closure

OR.2: "||" | /or\b/
AND.2: "&&" | /and\b/
NOT.2: "!" | /not\b/
CMP: "==" | "!=" | "<=" | ">=" | "<" | ">"
ADD: "+" | "-"
MUL: "*" | "/" | "%"
SIGN.3: "-" | "+"
POW: "**" | "^"
COALESCE: "??"
DOT: "."
LBRACKET: "["
POINTER: "#"
NUMBER: /(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?/
NAME: /[A-Za-z_][A-Za-z0-9_]*/
%ignore /[ \t\r\n]+/
"""

_PARSER = Lark(_GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)


@dataclass(frozen=True)
class Formula:
    """A checked formula: `evaluate(values)` gives its number (None: it gave nil)."""

    text: str
    names: frozenset[str]  # the triggers it reads
    _evaluate: Evaluator

    def evaluate(self, values: Env) -> float | None:
        result = self._evaluate(values, None)
        if result is None:
            return None
        assert isinstance(result, (int, float)) and not isinstance(result, bool)
        return float(result)


def compile_formula(text: str, names: Sequence[str]) -> Formula:
    """Parse and check `text`, whose free names must be among `names` (the named triggers)."""
    if not text.strip():
        raise FormulaError("is empty")
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"is longer than {MAX_LENGTH} characters")
    tree = _parse(text)
    _check_depth(tree)
    compiled = _Compiler(frozenset(names)).node(tree)
    if compiled.type is Type.BOOL:
        raise FormulaError(f"gives true or false at column {compiled.column}; it must give a number "
                           "(e.g. `x > 1 ? 1 : 0`)")
    if compiled.type is Type.ARRAY:
        raise FormulaError(f"gives an array at column {compiled.column}; it must give a number (e.g. `sum(...)`)")
    return Formula(text, compiled.reads, _as_result(compiled))


def _parse(text: str) -> Tree[Token]:
    try:
        return _PARSER.parse(text)
    except UnexpectedEOF:
        raise FormulaError("ends too early (an operand or a closing bracket is missing)") from None
    except UnexpectedCharacters as exc:
        character = text[exc.pos_in_stream or 0]
        raise FormulaError(f"has an unexpected character {character!r} at column {exc.column}"
                           + _hint(character)) from None
    except UnexpectedToken as exc:
        if exc.token.type == "$END":
            raise FormulaError("ends too early (an operand or a closing bracket is missing)") from None
        raise FormulaError(f"has an unexpected {str(exc.token)!r} at column {exc.column}") from None
    except UnexpectedInput as exc:  # any other parse error lark may add
        raise FormulaError(f"cannot be parsed at column {exc.column}") from None


def _hint(character: str) -> str:
    if character in "\"'`":
        return " (strings are not part of formulas)"
    if character == ";":
        return " (a formula is one expression)"
    return ""


def _check_depth(tree: Tree[Token]) -> None:
    """Refuse deep nesting before anything recursive walks the tree (iteratively, so it can't fail)."""
    stack: list[tuple[Tree[Token] | Token, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            column = getattr(getattr(node, "meta", None), "column", None) or getattr(node, "column", "?")
            raise FormulaError(f"nests more than {MAX_DEPTH} levels deep (at column {column})")
        if isinstance(node, Tree):
            stack.extend((child, depth + 1) for child in node.children)


# -- checking and compiling ---------------------------------------------------------------------

@dataclass(frozen=True)
class _Node:
    type: Type
    run: Evaluator
    column: int
    reads: frozenset[str] = frozenset()
    constant: bool = False
    coalesced: bool = False  # an unparenthesized `a ?? b`, which expr-lang lets no operator follow

    @property
    def numeric(self) -> bool:
        return self.type in (Type.NUMBER, Type.INT, Type.ANY)


def _column(tree: Tree[Token] | Token) -> int:
    if isinstance(tree, Token):
        return tree.column or 0
    return tree.meta.column if not tree.meta.empty else 0


def _join(a: Type, b: Type) -> Type:
    if a is b:
        return a
    if {a, b} == {Type.INT, Type.NUMBER}:
        return Type.NUMBER
    if Type.NIL in (a, b):
        return b if a is Type.NIL else a
    return Type.ANY


_FUNCTIONS = ("min", "max", "abs", "ceil", "floor", "round", "int", "float", "sum", "mean", "median", "len",
              "count", "all", "any", "none", "one", "filter")
_PREDICATES = ("count", "all", "any", "none", "one", "filter")


class _Compiler:
    def __init__(self, names: frozenset[str]) -> None:
        self.names = names
        self.in_predicate = 0

    def node(self, tree: Tree[Token] | Token) -> _Node:
        if isinstance(tree, Token):  # a bare NUMBER or NAME collapsed by `?` rules does not occur
            raise FormulaError(f"has an unexpected {str(tree)!r} at column {_column(tree)}")
        handler = getattr(self, f"_{tree.data}", None)
        if handler is None:
            raise FormulaError(f"uses {tree.data} at column {_column(tree)}, which formulas do not support")
        found: _Node = handler(tree)
        return _folded(found) if found.constant else found

    # -- leaves ------------------------------------------------------------------------------

    def _number(self, tree: Tree[Token]) -> _Node:
        text = str(tree.children[0])
        integral = text.isdigit()
        value: float | int = int(text) if integral else float(text)
        if not math.isfinite(value) or abs(value) > 1e300:
            raise FormulaError(f"has a number too large at column {_column(tree)}")
        return _Node(Type.INT if integral else Type.NUMBER, lambda env, item: value, _column(tree), constant=True)

    def _true(self, tree: Tree[Token]) -> _Node:
        return _Node(Type.BOOL, lambda env, item: True, _column(tree), constant=True)

    def _false(self, tree: Tree[Token]) -> _Node:
        return _Node(Type.BOOL, lambda env, item: False, _column(tree), constant=True)

    def _nil(self, tree: Tree[Token]) -> _Node:
        return _Node(Type.NIL, lambda env, item: None, _column(tree), constant=True)

    def _pointer(self, tree: Tree[Token]) -> _Node:
        if not self.in_predicate:
            raise FormulaError(f"uses # outside a predicate at column {_column(tree)} "
                               "(e.g. `count([a, b], # > 1)`)")
        return _Node(Type.ANY, lambda env, item: item, _column(tree))

    def _name(self, tree: Tree[Token]) -> _Node:
        name = str(tree.children[0])
        if name not in self.names:
            known = ", ".join(sorted(self.names)) or "none: give triggers a `name` to use them"
            raise FormulaError(f'uses "{name}" at column {_column(tree)}, which is not the name of a trigger '
                               f"(named triggers: {known})")
        return _Node(Type.NUMBER, lambda env, item: env.get(name), _column(tree), frozenset({name}))

    def _member(self, tree: Tree[Token]) -> _Node:
        self.node(tree.children[0])  # an error further left is told first
        raise FormulaError(f"uses attribute access (.{tree.children[2]}) at column {_column(tree.children[1])}, "
                           "which formulas do not allow")

    def _index(self, tree: Tree[Token]) -> _Node:
        self.node(tree.children[0])
        raise FormulaError(f"uses index access ([...]) at column {_column(tree.children[1])}, "
                           "which formulas do not allow")

    def _group(self, tree: Tree[Token]) -> _Node:
        inner = self.node(tree.children[0])
        return _Node(inner.type, inner.run, inner.column, inner.reads, inner.constant)

    def _array(self, tree: Tree[Token]) -> _Node:
        items = self._arguments(tree.children[1] if len(tree.children) > 1 else None)
        runs = [item.run for item in items]
        return _Node(Type.ARRAY, lambda env, element: [run(env, element) for run in runs], _column(tree),
                     _reads(items), all(item.constant for item in items))

    def _arguments(self, tree: Tree[Token] | Token | None, predicate_at: int | None = None) -> list[_Node]:
        """Call or array arguments; the one at `predicate_at` is a predicate (`{# > 1}` or `# > 1`)."""
        if tree is None:
            return []
        assert isinstance(tree, Tree)
        found = []
        for position, child in enumerate(tree.children):
            closure = isinstance(child, Tree) and child.data == "closure"
            if position != predicate_at:
                if closure:
                    raise FormulaError(f"has a {{...}} block at column {_column(child)} where no predicate goes")
                found.append(self.node(child))
                continue
            self.in_predicate += 1
            try:
                found.append(self.node(child.children[0] if closure and isinstance(child, Tree) else child))
            finally:
                self.in_predicate -= 1
        return found

    # -- operators -----------------------------------------------------------------------------

    def _sign(self, tree: Tree[Token]) -> _Node:
        sign, operand = str(tree.children[0]), self.node(tree.children[1])
        self._number_operand(operand, sign)
        run = operand.run
        if sign == "-":
            return _Node(operand.type, lambda env, item: -_num(run(env, item), "-"), _column(tree), operand.reads,
                         operand.constant)
        return _Node(operand.type, lambda env, item: _num(run(env, item), "+"), _column(tree), operand.reads,
                     operand.constant)

    def _negation(self, tree: Tree[Token]) -> _Node:
        operand = self.node(tree.children[1])
        self._bool_operand(operand, str(tree.children[0]))
        run = operand.run
        return _Node(Type.BOOL, lambda env, item: not _truth(run(env, item), "not"), _column(tree), operand.reads,
                     operand.constant)

    def _binary_chain(self, tree: Tree[Token]) -> list[tuple[str, _Node, int]]:
        children = tree.children
        first = self.node(children[0])
        chain = [("", first, first.column)]
        for i in range(1, len(children), 2):
            chain.append((str(children[i]), self.node(children[i + 1]), _column(children[i])))
        for (_, left, _), (operator, _, column) in itertools.pairwise(chain):
            if left.coalesced and operator != "??":
                raise FormulaError(f"mixes ?? with {operator} at column {column}: wrap the ?? part in parentheses")
        return chain

    def _or_expr(self, tree: Tree[Token]) -> _Node:
        return self._logic(tree, any)

    def _and_expr(self, tree: Tree[Token]) -> _Node:
        return self._logic(tree, all)

    def _logic(self, tree: Tree[Token], combine: Callable[[Any], bool]) -> _Node:
        chain = self._binary_chain(tree)
        for operator, operand, _ in chain:
            self._bool_operand(operand, operator or str(tree.children[1]))
        runs = [operand.run for _, operand, _ in chain]
        word = "or" if combine is any else "and"

        def run(env: Env, item: Value) -> Value:
            return combine(_truth(r(env, item), word) for r in runs)  # short-circuits like expr-lang

        return _Node(Type.BOOL, run, chain[0][2], _reads([n for _, n, _ in chain]),
                     all(n.constant for _, n, _ in chain))

    def _cmp_expr(self, tree: Tree[Token]) -> _Node:
        """`a < b < c` is `a < b and b < c` (expr-lang's chain); `==` and `!=` fold to the left."""
        chain = self._binary_chain(tree)
        node, previous, chained = chain[0][1], chain[0][1], False
        for operator, right, column in chain[1:]:
            if operator in ("==", "!="):
                node, chained = _equality(operator, node, right, column), False
                continue
            step = _relation(operator, previous if chained else node, right, column)
            node = _both(node, step) if chained else step
            previous, chained = right, True
        return node

    def _add_expr(self, tree: Tree[Token]) -> _Node:
        return self._arithmetic(tree)

    def _mul_expr(self, tree: Tree[Token]) -> _Node:
        return self._arithmetic(tree)

    def _arithmetic(self, tree: Tree[Token]) -> _Node:
        chain = self._binary_chain(tree)
        node = chain[0][1]
        self._number_operand(node, chain[1][0])
        for operator, right, column in chain[1:]:
            self._number_operand(right, operator)
            if operator == "%" and (node.type is not Type.INT or right.type is not Type.INT):
                raise FormulaError(f"uses % at column {column} on a value that is not a whole number "
                                   "(trigger values are not: write int(x) % n)")
            node = _arith(operator, node, right, column)
        return node

    def _power(self, tree: Tree[Token]) -> _Node:
        base, operator, exponent = self.node(tree.children[0]), str(tree.children[1]), self.node(tree.children[2])
        if base.coalesced:
            raise FormulaError(f"mixes ?? with {operator} at column {_column(tree.children[1])}: "
                               "wrap the ?? part in parentheses")
        self._number_operand(base, operator)
        self._number_operand(exponent, operator)
        return _arith(operator, base, exponent, _column(tree.children[1]))

    def _coalesce(self, tree: Tree[Token]) -> _Node:
        chain = self._binary_chain(tree)
        runs = [operand.run for _, operand, _ in chain]
        result_type = chain[0][1].type
        for _, operand, _ in chain[1:]:
            result_type = _join(result_type, operand.type)

        def run(env: Env, item: Value) -> Value:
            for r in runs:
                value = r(env, item)
                if value is not None:
                    return value
            return None

        return _Node(result_type, run, chain[0][2], _reads([n for _, n, _ in chain]),
                     all(n.constant for _, n, _ in chain), coalesced=True)

    def _ternary(self, tree: Tree[Token]) -> _Node:
        condition, then, otherwise = (self.node(child) for child in tree.children)
        return self._conditional(condition, then, otherwise, _column(tree))

    def _elvis(self, tree: Tree[Token]) -> _Node:
        condition, otherwise = (self.node(child) for child in tree.children)
        return self._conditional(condition, condition, otherwise, _column(tree))

    def _conditional(self, condition: _Node, then: _Node, otherwise: _Node, column: int) -> _Node:
        self._bool_operand(condition, "?")
        if {then.type, otherwise.type} == {Type.BOOL, Type.NUMBER} or {then.type, otherwise.type} == {Type.BOOL,
                                                                                                      Type.INT}:
            raise FormulaError(f"has a ?: at column {column} whose branches give a number and true/false")
        test, first, second = condition.run, then.run, otherwise.run

        def run(env: Env, item: Value) -> Value:
            return first(env, item) if _truth(test(env, item), "?") else second(env, item)

        return _Node(_join(then.type, otherwise.type), run, column, _reads([condition, then, otherwise]),
                     condition.constant and then.constant and otherwise.constant)

    def _call(self, tree: Tree[Token]) -> _Node:
        name = str(tree.children[0])
        column = _column(tree)
        if name not in _FUNCTIONS:
            raise FormulaError(f'calls "{name}" at column {column}, which is not a formula function '
                               f"({', '.join(_FUNCTIONS)})")
        arguments = self._arguments(tree.children[1] if len(tree.children) > 1 else None,
                                    1 if name in _PREDICATES else None)
        return _function(name, arguments, column)

    # -- operand checks ---------------------------------------------------------------------

    @staticmethod
    def _number_operand(node: _Node, operator: str) -> None:
        if not node.numeric:
            raise FormulaError(f"uses {operator} at column {node.column} on {_what(node.type)}, which needs a number")

    @staticmethod
    def _bool_operand(node: _Node, operator: str) -> None:
        if node.type not in (Type.BOOL, Type.ANY):
            raise FormulaError(f"uses {_what(node.type)} as a condition ({operator}) at column {node.column}; "
                               "write a comparison such as `x > 0`")


def _what(kind: Type) -> str:
    return {Type.BOOL: "true/false", Type.ARRAY: "an array", Type.NIL: "nil"}.get(kind, "a number")


def _reads(nodes: Sequence[_Node]) -> frozenset[str]:
    return frozenset().union(*(n.reads for n in nodes)) if nodes else frozenset()


def _folded(node: _Node) -> _Node:
    """A constant sub-formula is computed now: its errors (10 ** 400, 1 / 0) are load errors."""
    try:
        value = node.run({}, None)
    except EvaluationError as exc:
        raise FormulaError(str(exc)) from None
    return _Node(node.type, lambda env, item: value, node.column, node.reads, True, node.coalesced)


# -- run-time operations ----------------------------------------------------------------------

def _num(value: Value, operator: str) -> float | int:
    if value is None:
        raise EvaluationError(f"{operator} got nil: a trigger has no value (failing past its threshold); "
                              "give it a default with `name ?? value`")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EvaluationError(f"{operator} needs a number, got {_what(_type_of(value))}")
    return value


def _truth(value: Value, operator: str) -> bool:
    if not isinstance(value, bool):
        raise EvaluationError(f"{operator} needs true or false, got {'nil' if value is None else 'a number'}")
    return value


def _type_of(value: Value) -> Type:
    if isinstance(value, bool):
        return Type.BOOL
    if isinstance(value, list):
        return Type.ARRAY
    return Type.NIL if value is None else Type.NUMBER


def _finite(value: float | int, where: str) -> float | int:
    if isinstance(value, float) and not math.isfinite(value):
        raise EvaluationError(f"{where} gives a number too large")
    return value


def _power(base: float | int, exponent: float | int, where: str) -> float:
    if base < 0 and not float(exponent).is_integer():
        raise EvaluationError(f"{where} raises a negative number to a fractional power")
    if base == 0 and exponent < 0:
        raise EvaluationError(f"{where} divides by zero")
    try:
        return float(_finite(math.pow(float(base), float(exponent)), where))
    except OverflowError:
        raise EvaluationError(f"{where} gives a number too large") from None


def _divide(a: float | int, b: float | int, where: str) -> float:
    if b == 0:
        raise EvaluationError(f"{where} divides by zero")
    return float(_finite(a / b, where))


def _modulo(a: float | int, b: float | int, where: str) -> int:
    if b == 0:
        raise EvaluationError(f"{where} divides by zero")
    return int(math.fmod(a, b))  # Go's sign rule: the result has the sign of the dividend


_ARITHMETIC: dict[str, Callable[[float | int, float | int, str], float | int]] = {
    "+": lambda a, b, where: _finite(a + b, where),
    "-": lambda a, b, where: _finite(a - b, where),
    "*": lambda a, b, where: _finite(a * b, where),
    "/": _divide,
    "%": _modulo,
    "**": _power,
    "^": _power,
}


def _arith(operator: str, left: _Node, right: _Node, column: int) -> _Node:
    operation = _ARITHMETIC[operator]
    a, b = left.run, right.run
    integral = left.type is Type.INT and right.type is Type.INT and operator in "+-*%"
    where = f"{operator} at column {column}"

    def run(env: Env, item: Value) -> Value:
        return operation(_num(a(env, item), operator), _num(b(env, item), operator), where)

    return _Node(Type.INT if integral else Type.NUMBER, run, column, _reads([left, right]),
                 left.constant and right.constant)


_RELATIONS: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: bool(a < b), "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b), ">=": lambda a, b: bool(a >= b),
}


def _relation(operator: str, left: _Node, right: _Node, column: int) -> _Node:
    for operand in (left, right):
        if not operand.numeric:
            raise FormulaError(f"uses {operator} at column {column} on {_what(operand.type)}, which needs a number")
    compare, a, b = _RELATIONS[operator], left.run, right.run
    return _Node(Type.BOOL, lambda env, item: compare(_num(a(env, item), operator), _num(b(env, item), operator)),
                 column, _reads([left, right]), left.constant and right.constant)


def _equal(a: Value, b: Value) -> bool:
    """expr-lang's ==: numbers by value (1 == 1.0), never a number equal to true/false."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _equality(operator: str, left: _Node, right: _Node, column: int) -> _Node:
    kinds = {left.type, right.type}
    if Type.BOOL in kinds and kinds & {Type.NUMBER, Type.INT, Type.ARRAY}:
        raise FormulaError(f"compares true/false with another kind of value ({operator}) at column {column}")
    a, b, negate = left.run, right.run, operator == "!="
    return _Node(Type.BOOL, lambda env, item: _equal(a(env, item), b(env, item)) != negate, column,
                 _reads([left, right]), left.constant and right.constant)


def _both(left: _Node, right: _Node) -> _Node:
    a, b = left.run, right.run
    return _Node(Type.BOOL, lambda env, item: bool(a(env, item)) and bool(b(env, item)), left.column,
                 _reads([left, right]), left.constant and right.constant)


# -- functions --------------------------------------------------------------------------------

def _numbers(values: Sequence[Value], name: str) -> list[float | int]:
    flat: list[Value] = []
    for value in values:
        flat.extend(value) if isinstance(value, list) else flat.append(value)
    return [_num(v, f"{name}()") for v in flat]


def _function(name: str, arguments: list[_Node], column: int) -> _Node:
    reads, constant = _reads(arguments), all(a.constant for a in arguments)
    runs = [a.run for a in arguments]
    if name in _PREDICATES:
        return _predicate_function(name, arguments, column)
    if name in ("min", "max"):
        if not arguments:
            raise FormulaError(f"calls {name}() at column {column} without arguments")
        pick = min if name == "min" else max
        kind = Type.INT if all(a.type is Type.INT for a in arguments) else Type.NUMBER
        return _Node(kind, lambda env, item: pick(_numbers([r(env, item) for r in runs], name)), column, reads,
                     constant)
    if name in _AGGREGATES:
        return _aggregate_function(name, arguments, column)
    _arity(name, arguments, 1, column)
    argument = arguments[0]
    if not argument.numeric:
        raise FormulaError(f"calls {name}() at column {column} on {_what(argument.type)}; it needs a number")
    unary: dict[str, tuple[Callable[[float | int], float | int], Type]] = {
        "abs": (abs, argument.type), "ceil": (lambda x: float(math.ceil(x)), Type.NUMBER),
        "floor": (lambda x: float(math.floor(x)), Type.NUMBER),
        "round": (lambda x: float(math.floor(x + 0.5)) if x >= 0 else -float(math.floor(-x + 0.5)), Type.NUMBER),
        "int": (lambda x: int(x), Type.INT), "float": (float, Type.NUMBER)}
    operation_1, kind = unary[name]
    run = runs[0]
    return _Node(kind, lambda env, item: operation_1(_num(run(env, item), f"{name}()")), column, reads, constant)


_AGGREGATES: dict[str, Callable[[list[float | int]], float | int]] = {
    "sum": sum, "len": len,
    "mean": lambda xs: statistics.fmean(xs) if xs else 0.0,
    "median": lambda xs: statistics.median(xs) if xs else 0.0,
}


def _aggregate_function(name: str, arguments: list[_Node], column: int) -> _Node:
    _arity(name, arguments, 1, column)
    array = arguments[0]
    if array.type not in (Type.ARRAY, Type.ANY):
        raise FormulaError(f"calls {name}() at column {column} on {_what(array.type)}; it needs an array")
    operation, run = _AGGREGATES[name], array.run

    def aggregate(env: Env, item: Value) -> Value:
        elements = _array_of(run(env, item), name)
        return len(elements) if name == "len" else operation(_numbers(elements, name))

    return _Node(Type.INT if name == "len" else Type.NUMBER, aggregate, column, array.reads, array.constant)


def _arity(name: str, arguments: Sequence[_Node], count: int, column: int) -> None:
    if len(arguments) != count:
        raise FormulaError(f"calls {name}() at column {column} with {len(arguments)} arguments; it takes {count}")


def _array_of(value: Value, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise EvaluationError(f"{name}() needs an array")
    return value


def _predicate_function(name: str, arguments: list[_Node], column: int) -> _Node:
    if name == "count" and len(arguments) == 1:
        arguments = [*arguments, _Node(Type.ANY, lambda env, item: item, column)]
    _arity(name, arguments, 2, column)
    array, predicate = arguments
    if array.type not in (Type.ARRAY, Type.ANY):
        raise FormulaError(f"calls {name}() at column {column} on {_what(array.type)}; it needs an array")
    if predicate.type not in (Type.BOOL, Type.ANY):
        raise FormulaError(f"calls {name}() at column {column} with a predicate that is not true/false")
    items, test = array.run, predicate.run

    def matches(env: Env, item: Value) -> list[Any]:
        return [element for element in _array_of(items(env, item), name) if _truth(test(env, element), name)]

    if name == "filter":
        return _Node(Type.ARRAY, matches, column, _reads(arguments), array.constant and predicate.constant)
    outcome: Callable[[int, int], Value] = {
        "count": lambda hits, total: hits, "all": lambda hits, total: hits == total,
        "any": lambda hits, total: hits > 0, "none": lambda hits, total: hits == 0,
        "one": lambda hits, total: hits == 1}[name]

    def run(env: Env, item: Value) -> Value:
        return outcome(len(matches(env, item)), len(_array_of(items(env, item), name)))

    return _Node(Type.INT if name == "count" else Type.BOOL, run, column, _reads(arguments),
                 array.constant and predicate.constant)


def _as_result(node: _Node) -> Evaluator:
    """The whole formula: a number, or nil (when it can be); a non-number at run time is an error."""
    run = node.run

    def result(env: Env, item: Value) -> Value:
        value = run(env, item)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise EvaluationError(f"the formula gave {_what(_type_of(value))}, not a number")
        return value

    return result

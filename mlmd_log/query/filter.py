"""MLMD's filter-query language (``ListOperationOptions.filter_query``): lexer, parser,
name resolution and type checking, producing a small typed AST.

The language is the boolean-expression subset of SQL that MLMD accepts (MLMD parses it
with ZetaSQL after rewriting enum predicates). What is checked here, as MLMD does:

* names: node attributes, ``properties.NAME.FIELD`` / ``custom_properties.NAME.FIELD``
  (NAME back-quoted for other characters), neighbours ``contexts_ALIAS.f``,
  ``events_ALIAS.f`` (artifacts, executions), ``artifacts_ALIAS.f``,
  ``executions_ALIAS.f``, ``parent_contexts_ALIAS.f``, ``child_contexts_ALIAS.f``
  (contexts);
* types: INT64 / DOUBLE / STRING / BOOL operands of comparisons, LIKE on strings,
  IN lists of a common type, boolean AND / OR / NOT; the whole expression is boolean;
* enums: ``state``, ``last_known_state`` and ``events_X.type`` compare with ``=``,
  ``!=``, ``IN``, ``NOT IN`` against enum names only (``LIVE``, ``RUNNING``,
  ``INPUT``...); ``!=`` and ``NOT IN`` also match NULL, as MLMD rewrites them.

Every problem is an ``InvalidArgumentError`` naming the 1-based position and what was
expected; no other exception escapes ``parse``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Union

from mlmd_log import errors

INT, DOUBLE, STRING, BOOL, NULL = "INT64", "DOUBLE", "STRING", "BOOL", "NULL"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

ARTIFACT_STATES = {"UNKNOWN": 0, "PENDING": 1, "LIVE": 2, "MARKED_FOR_DELETION": 3, "DELETED": 4}
EXECUTION_STATES = {"UNKNOWN": 0, "NEW": 1, "RUNNING": 2, "COMPLETE": 3, "FAILED": 4,
                    "CACHED": 5, "CANCELED": 6}
EVENT_TYPES = {"INPUT": 3, "OUTPUT": 4, "DECLARED_INPUT": 2, "DECLARED_OUTPUT": 1,
               "INTERNAL_INPUT": 5, "INTERNAL_OUTPUT": 6}

# Node attributes per node kind: name -> type (and enum table when the column is an enum).
_COMMON = {"id": INT, "type_id": INT, "type": STRING, "name": STRING, "external_id": STRING,
           "create_time_since_epoch": INT, "last_update_time_since_epoch": INT}
ATTRIBUTES = {
    "artifact": {**_COMMON, "uri": STRING, "state": INT},
    "execution": {**_COMMON, "last_known_state": INT},
    "context": dict(_COMMON),
}
ENUM_COLUMNS = {"state": ARTIFACT_STATES, "last_known_state": EXECUTION_STATES}

# Neighbour prefixes per base kind: prefix -> fields (name -> type).
_CONTEXT_FIELDS = {"id": INT, "name": STRING, "type": STRING, "create_time_since_epoch": INT,
                   "last_update_time_since_epoch": INT}
NEIGHBOURS = {
    "artifact": {
        "contexts_": _CONTEXT_FIELDS,
        "events_": {"type": INT, "milliseconds_since_epoch": INT, "execution_id": INT},
    },
    "execution": {
        "contexts_": _CONTEXT_FIELDS,
        "events_": {"type": INT, "milliseconds_since_epoch": INT, "artifact_id": INT},
    },
    "context": {
        "parent_contexts_": _CONTEXT_FIELDS,
        "child_contexts_": _CONTEXT_FIELDS,
        "artifacts_": {"id": INT, "name": STRING, "type": STRING, "state": INT, "uri": STRING,
                       "external_id": STRING, "create_time_since_epoch": INT,
                       "last_update_time_since_epoch": INT},
        "executions_": {"id": INT, "name": STRING, "type": STRING, "last_known_state": INT,
                        "external_id": STRING, "create_time_since_epoch": INT,
                        "last_update_time_since_epoch": INT},
    },
}
# Enum fields of neighbours: (prefix, field) -> enum table.
NEIGHBOUR_ENUMS = {("events_", "type"): EVENT_TYPES, ("artifacts_", "state"): ARTIFACT_STATES,
                   ("executions_", "last_known_state"): EXECUTION_STATES}
PROPERTY_FIELDS = {"int_value": INT, "double_value": DOUBLE, "string_value": STRING,
                   "bool_value": BOOL}


# ------------------------------------------------------------------ AST
@dataclass(frozen=True)
class Attr:
    """A column of the node itself (``type`` is its type's name)."""
    name: str
    type: str


@dataclass(frozen=True)
class Neighbour:
    """A field of a neighbour joined under ``prefix + alias`` (e.g. contexts_a)."""
    prefix: str
    alias: str
    field: str
    type: str


@dataclass(frozen=True)
class Prop:
    """``properties.NAME.FIELD`` (custom=False) or ``custom_properties.NAME.FIELD``."""
    custom: bool
    name: str
    field: str
    type: str


@dataclass(frozen=True)
class Literal:
    value: object  # int | float | str | bool | None
    type: str


Operand = Union[Attr, Neighbour, Prop, Literal]


@dataclass(frozen=True)
class Compare:
    op: str  # = != < > <= >=
    left: Operand
    right: Operand


@dataclass(frozen=True)
class Like:
    operand: Operand
    pattern: Operand
    negated: bool = False


@dataclass(frozen=True)
class In:
    operand: Operand
    items: tuple
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    operand: Operand
    negated: bool = False


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND | OR
    items: tuple


@dataclass(frozen=True)
class Not:
    item: object


@dataclass(frozen=True)
class Truth:
    """A boolean operand used as a condition (a bool column or literal)."""
    operand: Operand


Expr = Union[Compare, Like, In, IsNull, BoolOp, Not, Truth]


# ------------------------------------------------------------------ lexer
@dataclass(frozen=True)
class Token:
    kind: str  # IDENT QIDENT STRING INT FLOAT OP KEYWORD EOF
    text: str
    value: object
    pos: int  # 0-based offset


KEYWORDS = {"AND", "OR", "NOT", "IN", "LIKE", "IS", "NULL", "TRUE", "FALSE", "BETWEEN"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "a": "\a",
            "\\": "\\", "'": "'", '"': '"', "`": "`", "?": "?", "0": "\0"}
_NUMBER = re.compile(r"(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPS = ("<=", ">=", "!=", "<>", "=", "<", ">", "(", ")", ",", ".", "-", "+")


def _fail(text: str, pos: int, message: str) -> errors.InvalidArgumentError:
    if not message.startswith(("expected", "unexpected", "unclosed", "illegal")):
        message = "expected " + message
    return errors.InvalidArgumentError(
        f"Invalid `filter_query`: {message} at position {pos + 1} (line 1, column {pos + 1}) "
        f"of: {text}")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c in "'\"":
            value, i2 = _read_quoted(text, i, c)
            tokens.append(Token("STRING", text[i:i2], value, i))
            i = i2
            continue
        if c == "`":
            value, i2 = _read_quoted(text, i, "`")
            if not value:
                raise _fail(text, i, "expected a non-empty back-quoted name")
            tokens.append(Token("QIDENT", text[i:i2], value, i))
            i = i2
            continue
        m = _HEX.match(text, i)
        if m and not (m.end() < n and (text[m.end()].isalnum() or text[m.end()] == "_")):
            tokens.append(Token("INT", m.group(), int(m.group(), 16), i))
            i = m.end()
            continue
        m = _NUMBER.match(text, i)
        if m and (c.isdigit() or (c == "." and m.end() > i + 1)):
            word = m.group()
            if m.end() < n and (text[m.end()].isalpha() or text[m.end()] == "_"):
                raise _fail(text, m.end(), f"expected an operator after the number {word!r}")
            if re.fullmatch(r"\d+", word):
                tokens.append(Token("INT", word, int(word), i))
            else:
                tokens.append(Token("FLOAT", word, float(word), i))
            i = m.end()
            continue
        m = _IDENT.match(text, i)
        if m:
            word = m.group()
            if word.upper() in KEYWORDS:
                tokens.append(Token("KEYWORD", word, word.upper(), i))
            else:
                tokens.append(Token("IDENT", word, word, i))
            i = m.end()
            continue
        for op in _OPS:
            if text.startswith(op, i):
                tokens.append(Token("OP", op, "!=" if op == "<>" else op, i))
                i += len(op)
                break
        else:
            raise _fail(text, i, f"unexpected character {c!r}")
    tokens.append(Token("EOF", "", None, n))
    return tokens


def _read_quoted(text: str, start: int, quote: str) -> tuple[str, int]:
    out: list[str] = []
    i, n = start + 1, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                break
            nxt = text[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt in "xX" and re.fullmatch(r"[0-9a-fA-F]{2}", text[i + 2:i + 4] or ""):
                out.append(chr(int(text[i + 2:i + 4], 16)))
                i += 4
                continue
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2:i + 6] or ""):
                out.append(chr(int(text[i + 2:i + 6], 16)))
                i += 6
                continue
            raise _fail(text, i, f"illegal escape sequence \\{nxt}")
        if c == quote:
            return "".join(out), i + 1
        if c == "\n" and quote != "`":
            break
        out.append(c)
        i += 1
    what = "back-quoted name" if quote == "`" else "string literal"
    raise _fail(text, start, f"unclosed {what}: expected a closing {quote}")


# ------------------------------------------------------------------ parser
class _Parser:
    def __init__(self, text: str, kind: str):
        self.text = text
        self.kind = kind
        self.tokens = tokenize(text)
        self.i = 0

    # token helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def fail(self, expected: str, tok: Optional[Token] = None) -> errors.InvalidArgumentError:
        tok = tok or self.tok
        got = "end of input" if tok.kind == "EOF" else repr(tok.text)
        return _fail(self.text, tok.pos, f"expected {expected} but got {got}")

    def keyword(self, *words: str) -> bool:
        return self.tok.kind == "KEYWORD" and self.tok.value in words

    def op(self, *ops: str) -> bool:
        return self.tok.kind == "OP" and self.tok.value in ops

    def take(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    def expect_op(self, op: str, what: str) -> Token:
        if not self.op(op):
            raise self.fail(what)
        return self.take()

    # grammar: or_expr := and_expr (OR and_expr)* ; and_expr := not_expr (AND not_expr)*
    # not_expr := NOT not_expr | predicate ; predicate := operand [comparison tail]
    def parse(self) -> Expr:
        if self.tok.kind == "EOF":
            raise self.fail("a boolean expression")
        node = self.or_expr()
        if self.tok.kind != "EOF":
            raise self.fail("AND, OR or the end of the query")
        return _condition(node, self, self.tokens[0])

    def or_expr(self):
        items = [self.and_expr()]
        while self.keyword("OR"):
            tok = self.take()
            items.append(self.and_expr())
            _ = tok
        if len(items) == 1:
            return items[0]
        return BoolOp("OR", tuple(_condition(x, self, self.tok) for x in items))

    def and_expr(self):
        items = [self.not_expr()]
        while self.keyword("AND"):
            self.take()
            items.append(self.not_expr())
        if len(items) == 1:
            return items[0]
        return BoolOp("AND", tuple(_condition(x, self, self.tok) for x in items))

    def not_expr(self):
        if self.keyword("NOT"):
            tok = self.take()
            return Not(_condition(self.not_expr(), self, tok))
        return self.predicate()

    def predicate(self):
        start = self.tok
        left = self.primary()
        if self.op("=", "!=", "<", ">", "<=", ">="):
            op_tok = self.take()
            right_tok = self.tok
            right = self.primary(enum_for=left, op=op_tok.value)
            if isinstance(right, Literal) and right.type == "ENUM":
                return self.enum_compare(left, op_tok.value, [right], negated=op_tok.value == "!=",
                                         tok=op_tok)
            return self.compare(op_tok, _operand(left, self, start), _operand(right, self, right_tok))
        negated = False
        if self.keyword("NOT"):
            if self.tokens[self.i + 1].kind == "KEYWORD" and self.tokens[self.i + 1].value in (
                    "IN", "LIKE", "BETWEEN"):
                self.take()
                negated = True
            else:
                raise self.fail("IN, LIKE or BETWEEN after NOT")
        if self.keyword("LIKE"):
            like = self.take()
            pat_tok = self.tok
            pattern = _operand(self.primary(), self, pat_tok)
            operand = _operand(left, self, start)
            for side, tok in ((operand, start), (pattern, pat_tok)):
                if side.type not in (STRING, NULL):
                    raise _fail(self.text, tok.pos, f"STRING operands for LIKE, got {side.type}")
            _ = like
            return Like(operand, pattern, negated)
        if self.keyword("IN"):
            in_tok = self.take()
            self.expect_op("(", "( to open the IN list")
            items_raw = []
            while True:
                item_tok = self.tok
                items_raw.append((self.primary(enum_for=left, op="IN"), item_tok))
                if self.op(","):
                    self.take()
                    continue
                self.expect_op(")", ", or ) in the IN list")
                break
            enums = [x for x, _ in items_raw if isinstance(x, Literal) and x.type == "ENUM"]
            if enums:
                if len(enums) != len(items_raw):
                    raise _fail(self.text, in_tok.pos, "an IN list of enum names only")
                return self.enum_compare(left, "IN", enums, negated=negated, tok=in_tok)
            operand = _operand(left, self, start)
            items = tuple(_operand(x, self, t) for x, t in items_raw)
            for item, tok in zip(items, (t for _, t in items_raw)):
                _check_comparable(operand.type, item.type, self, tok, "IN")
            if _enum_table(operand, self.kind) is not None:
                raise _fail(self.text, in_tok.pos, "enum names in the IN list of an enum column")
            return In(operand, items, negated)
        if self.keyword("BETWEEN"):
            bt = self.take()
            low_tok = self.tok
            low = _operand(self.primary(), self, low_tok)
            if not self.keyword("AND"):
                raise self.fail("AND in BETWEEN")
            self.take()
            high_tok = self.tok
            high = _operand(self.primary(), self, high_tok)
            operand = _operand(left, self, start)
            _check_comparable(operand.type, low.type, self, low_tok, "BETWEEN")
            _check_comparable(operand.type, high.type, self, high_tok, "BETWEEN")
            _ = bt
            node = BoolOp("AND", (Compare(">=", operand, low), Compare("<=", operand, high)))
            return Not(node) if negated else node
        if negated:
            raise self.fail("IN, LIKE or BETWEEN after NOT")
        if self.keyword("IS"):
            self.take()
            neg = False
            if self.keyword("NOT"):
                self.take()
                neg = True
            if self.keyword("NULL"):
                self.take()
                return IsNull(_operand(left, self, start), neg)
            if self.keyword("TRUE", "FALSE"):
                value = self.take().value == "TRUE"
                operand = _operand(left, self, start)
                if operand.type not in (BOOL, NULL):
                    raise _fail(self.text, start.pos, f"a BOOL operand for IS {'TRUE' if value else 'FALSE'}")
                node = BoolOp("AND", (IsNull(operand, True), Compare("=", operand, Literal(value, BOOL))))
                return Not(node) if neg else node
            raise self.fail("NULL, TRUE or FALSE after IS")
        return left

    def compare(self, op_tok: Token, left, right) -> Compare:
        _check_comparable(left.type, right.type, self, op_tok, op_tok.value)
        for side in (left, right):
            if _enum_table(side, self.kind) is not None and op_tok.value in ("=", "!=") and \
                    isinstance(left if side is right else right, Literal):
                raise _fail(self.text, op_tok.pos,
                            "an enum name (e.g. LIVE, RUNNING, INPUT) to compare an enum column with")
        return Compare(op_tok.value, left, right)

    def enum_compare(self, column, op: str, values: list, negated: bool, tok: Token):
        column = _operand(column, self, tok)
        table = _enum_table(column, self.kind)
        if table is None:
            raise _fail(self.text, tok.pos, f"a value of type {column.type}, not an enum name")
        ints = []
        for literal in values:
            if literal.value not in table:
                raise _fail(self.text, tok.pos,
                            f"a supported enum value ({', '.join(table)}); "
                            f"unsupported enum value specified in the query: {literal.value}")
            ints.append(Literal(table[literal.value], INT))
        if negated and isinstance(column, Neighbour) and column.prefix != "events_":
            # MLMD's rewrite of a negated enum predicate breaks on a qualified
            # neighbour column (artifacts_x.state != LIVE), so it is rejected there.
            raise _fail(self.text, tok.pos, "= or IN for an enum field of a neighbour")
        if op == "IN":
            node = In(column, tuple(ints), negated)
        else:
            node = Compare("!=" if negated else "=", column, ints[0])
        if negated:
            return BoolOp("OR", (node, IsNull(column)))
        return node

    def primary(self, enum_for=None, op: Optional[str] = None):
        tok = self.tok
        if self.op("("):
            self.take()
            node = self.or_expr()
            self.expect_op(")", ") to close the parenthesis")
            return node
        if self.op("-", "+"):
            sign = self.take()
            num = self.tok
            if num.kind not in ("INT", "FLOAT"):
                raise self.fail("a number after the sign", num)
            self.take()
            value = num.value if sign.value == "+" else -num.value
            return self.number(value, num.kind, sign)
        if tok.kind == "STRING":
            self.take()
            return Literal(tok.value, STRING)
        if tok.kind in ("INT", "FLOAT"):
            self.take()
            return self.number(tok.value, tok.kind, tok)
        if self.keyword("TRUE", "FALSE"):
            self.take()
            return Literal(tok.value == "TRUE", BOOL)
        if self.keyword("NULL"):
            self.take()
            return Literal(None, NULL)
        if tok.kind == "IDENT":
            return self.path(enum_for, op)
        raise self.fail("a name, a literal or (")

    def number(self, value, kind: str, tok: Token) -> Literal:
        if kind == "INT":
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise _fail(self.text, tok.pos, f"an INT64 literal, {value} is out of range")
            return Literal(value, INT)
        return Literal(float(value), DOUBLE)

    def path(self, enum_for=None, op: Optional[str] = None):
        first = self.take()
        parts = [first]
        while self.op("."):
            self.take()
            if self.tok.kind not in ("IDENT", "QIDENT", "KEYWORD"):
                raise self.fail("a field name after .")
            parts.append(self.take())
        name = first.text
        if len(parts) == 1:
            attrs = ATTRIBUTES[self.kind]
            lowered = name.lower()
            if lowered in attrs:
                return Attr(lowered, attrs[lowered])
            if enum_for is not None and op in ("=", "!=", "IN") and re.fullmatch(r"[A-Z_]+", name):
                return Literal(name, "ENUM")
            raise _fail(self.text, first.pos, f"a known attribute name ({', '.join(attrs)}); "
                                              f"unrecognized name: {name}")
        if name in ("properties", "custom_properties"):
            if len(parts) != 3 or parts[1].kind == "KEYWORD" and False:
                raise _fail(self.text, first.pos,
                            f"{name}.NAME.FIELD with FIELD one of {', '.join(PROPERTY_FIELDS)}")
            field = parts[2].text
            if parts[2].kind != "IDENT" or field not in PROPERTY_FIELDS:
                raise _fail(self.text, parts[2].pos,
                            f"one of {', '.join(PROPERTY_FIELDS)} after {name}.{parts[1].text}")
            return Prop(name == "custom_properties", str(parts[1].value if parts[1].kind == "QIDENT"
                                                         else parts[1].text),
                        field, PROPERTY_FIELDS[field])
        for prefix, fields in NEIGHBOURS[self.kind].items():
            if name.startswith(prefix) and len(name) > len(prefix) and first.kind == "IDENT":
                if len(parts) != 2 or parts[1].kind == "QIDENT":
                    raise _fail(self.text, first.pos, f"{name}.FIELD with FIELD one of {', '.join(fields)}")
                field = parts[1].text.lower()
                if field not in fields:
                    raise _fail(self.text, parts[1].pos,
                                f"a field of {name} ({', '.join(fields)}); got {parts[1].text}")
                return Neighbour(prefix, name[len(prefix):], field, fields[field])
        raise _fail(self.text, first.pos, f"a known attribute, properties.NAME, custom_properties.NAME "
                                          f"or neighbour ({', '.join(p + 'ALIAS' for p in NEIGHBOURS[self.kind])}); "
                                          f"unrecognized name: {name}")


def _enum_table(operand, kind: str) -> Optional[dict]:
    if isinstance(operand, Attr):
        return ENUM_COLUMNS.get(operand.name) if operand.name in ATTRIBUTES[kind] else None
    if isinstance(operand, Neighbour):
        return NEIGHBOUR_ENUMS.get((operand.prefix, operand.field))
    return None


_NUMERIC = (INT, DOUBLE)


def _check_comparable(a: str, b: str, parser: _Parser, tok: Token, op: str) -> None:
    if a == NULL or b == NULL or a == b or (a in _NUMERIC and b in _NUMERIC):
        return
    raise _fail(parser.text, tok.pos,
                f"operands of {op} of compatible types; no matching signature for {a} {op} {b}")


def _operand(node, parser: _Parser, tok: Token) -> Operand:
    """``node`` used as a value: a column or literal (a boolean condition is not one)."""
    if isinstance(node, (Attr, Neighbour, Prop)):
        return node
    if isinstance(node, Literal):
        if node.type == "ENUM":
            raise _fail(parser.text, tok.pos, f"a known name; unrecognized name: {node.value}")
        return node
    raise _fail(parser.text, tok.pos, "a value (column or literal), not a boolean condition")


def _condition(node, parser: _Parser, tok: Token) -> Expr:
    """``node`` used as a condition: must be boolean."""
    if isinstance(node, (Compare, Like, In, IsNull, BoolOp, Not, Truth)):
        return node
    if isinstance(node, Literal) and node.type == "ENUM":
        raise _fail(parser.text, tok.pos, f"a known name; unrecognized name: {node.value}")
    if node.type == BOOL:
        return Truth(node)
    raise _fail(parser.text, tok.pos,
                f"a boolean expression; given query string is not a valid boolean expression "
                f"(it is of type {node.type})")


# MLMD rewrites enum predicates textually before it parses: for each predicate it finds
# (field, operator, value), it replaces every predicate on that field with that value,
# whatever its operator, and fails when a replacement finds nothing left to replace.
# So two predicates on one enum field with the same value (``state = LIVE AND state =
# LIVE``, ``events_a.type = INPUT OR events_b.type != INPUT``) are an invalid query
# there, and here. Fields per node kind, in MLMD's order; regexes as MLMD's (RE2 classes
# spelled for Python).
_ENUM_OPERATOR = r"(=|!=|(?i:\sNOT\s*IN\s)|(?i:\sIN\s))"
_ENUM_VALUE = r"(\w+\b|\((\s*\w+\s*[,]*\s*\w+\s*)*\))"
_ENUM_FIELDS = {"artifact": (r"state", r"events_\w+\.type"),
                "execution": (r"last_known_state", r"events_\w+\.type"),
                "context": (r"state", r"last_known_state")}


def _check_enum_rewrites(text: str, kind: str) -> None:
    for field in _ENUM_FIELDS[kind]:
        rewritten = text
        for found in re.finditer(rf"\b({field})\s*{_ENUM_OPERATOR}\s*{_ENUM_VALUE}", text):
            literal = found.group(3)
            rewritten, replaced = re.subn(rf"\b({field})\s*{_ENUM_OPERATOR}\s*{re.escape(literal)}",
                                          " _ ", rewritten)
            if not replaced:
                raise errors.InvalidArgumentError(
                    f"Invalid `filter_query`: Query cannot be rewritten successfully for matched enum "
                    f"predicate: {found.group(1)} {found.group(2)} {literal} (MLMD rejects a second "
                    f"predicate on the same enum field and value) in: {text}")


def parse(text: str, kind: str) -> Expr:
    """The AST of ``text`` for nodes of ``kind`` ("artifact" | "execution" | "context").

    Raises InvalidArgumentError (with position and expectation) for any bad query."""
    if kind not in ATTRIBUTES:
        raise errors.InvalidArgumentError(f"unknown node kind {kind!r}")
    _check_enum_rewrites(text, kind)
    try:
        return _Parser(text, kind).parse()
    except errors.InvalidArgumentError:
        raise
    except RecursionError:
        raise errors.InvalidArgumentError(
            "Invalid `filter_query`: expression nested too deeply") from None

"""Filter-query AST -> SQL, rendered per dialect from small tables of SQL text.

The SQL has MLMD's meaning: the node table (alias ``t0``) inner-joined with one table
per mentioned neighbour alias, property and the type; a node matches when some
combination of joined rows satisfies the condition. A node without a mentioned
property or neighbour therefore never matches, exactly as in MLMD.

Output uses the portable markers of ``sql.py`` (backticks, ``{p}``); every literal,
property name and type kind is a bound parameter, never pasted text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from mlmd_log import errors
from mlmd_log.dialects import SQLITE, Dialect
from mlmd_log.query import filter as fq
from mlmd_log.schema import BY_NAME

# How a neighbour prefix reaches the base node (alias {b}): the first table (the link,
# or the event itself) with the column holding the base node's id, then the joins to the
# neighbour {n} and its type {t}. ({l} is the link alias.)
_CONTEXTS = ("JOIN `Context` AS {n} ON {n}.`id` = {l}.`context_id` "
             "JOIN `Type` AS {t} ON {t}.`id` = {n}.`type_id`")
NEIGHBOURS = {
    ("artifact", "contexts_"): ("`Attribution` AS {l}", "{l}.`artifact_id`", _CONTEXTS),
    ("execution", "contexts_"): ("`Association` AS {l}", "{l}.`execution_id`", _CONTEXTS),
    ("artifact", "events_"): ("`Event` AS {n}", "{n}.`artifact_id`", ""),
    ("execution", "events_"): ("`Event` AS {n}", "{n}.`execution_id`", ""),
    ("context", "artifacts_"): ("`Attribution` AS {l}", "{l}.`context_id`",
                                "JOIN `Artifact` AS {n} ON {n}.`id` = {l}.`artifact_id` "
                                "JOIN `Type` AS {t} ON {t}.`id` = {n}.`type_id`"),
    ("context", "executions_"): ("`Association` AS {l}", "{l}.`context_id`",
                                 "JOIN `Execution` AS {n} ON {n}.`id` = {l}.`execution_id` "
                                 "JOIN `Type` AS {t} ON {t}.`id` = {n}.`type_id`"),
    ("context", "parent_contexts_"): ("`ParentContext` AS {l}", "{l}.`context_id`",
                                      "JOIN `Context` AS {n} ON {n}.`id` = {l}.`parent_context_id` "
                                      "JOIN `Type` AS {t} ON {t}.`id` = {n}.`type_id`"),
    ("context", "child_contexts_"): ("`ParentContext` AS {l}", "{l}.`parent_context_id`",
                                     "JOIN `Context` AS {n} ON {n}.`id` = {l}.`context_id` "
                                     "JOIN `Type` AS {t} ON {t}.`id` = {n}.`type_id`"),
}
# Neighbour fields that MLMD's join subqueries do not select: a query naming one fails
# when MLMD runs its SQL (InternalError), and here too. (prefix, field) pairs.
UNSELECTED_FIELDS = {
    ("artifacts_", "external_id"), ("executions_", "external_id"),
    ("parent_contexts_", "create_time_since_epoch"), ("parent_contexts_", "last_update_time_since_epoch"),
    ("child_contexts_", "create_time_since_epoch"), ("child_contexts_", "last_update_time_since_epoch"),
}


@dataclass
class _Source:
    """One table chain a filter reaches from the node (alias t0): a property, the type or
    a neighbour alias. ``owner`` is its column holding t0's ``base`` column."""

    from_sql: str
    owner: str
    base: str = "id"
    extra: str = ""  # conditions that pick the source's rows (a property's name ...)
    extra_params: tuple = ()
    rest: str = ""  # joins beyond the first table

    def join(self) -> str:
        """As a join of t0 (for a condition that spans several sources)."""
        on = f"{self.owner} = t0.`{self.base}`" + (f" AND {self.extra}" if self.extra else "")
        return f"JOIN {self.from_sql} ON {on}" + (f" {self.rest}" if self.rest else "")

    def semijoin(self, condition: str) -> str:
        """``t0 matches when one of its rows here satisfies condition``, as an IN subquery:
        index-only where the indexes cover it, and never a join back to t0."""
        where = (f"{self.extra} AND " if self.extra else "") + condition
        return (f"t0.`{self.base}` IN (SELECT {self.owner} FROM {self.from_sql}"
                + (f" {self.rest}" if self.rest else "") + f" WHERE {where})")


@dataclass(frozen=True)
class CompiledFilter:
    """A condition on the node table, alias ``t0``: ``where`` and its params in text order.

    MLMD's meaning: the node joined with one row of every property, neighbour alias
    and type the filter names (inner joins), some combination satisfying it. Two shapes:
    - the filter names a single property or neighbour alias, in conjuncts that do not
      also name the node's own columns: an ``IN`` subquery on that source alone (an
      index-only read of the matching owners, however many), AND the node-only
      conjuncts;
    - otherwise one joined subquery of all the sources, in which SQLite's planner
      starts from the most selective one and probes the others by key."""

    where: str
    params: tuple


# `uri LIKE '%suffix'` (one leading %, no other wildcard) where the projection keeps
# reversed uris (mlmdlog_artifact_ruri, NOCASE index): the reversed suffix is a prefix,
# which SQLite's LIKE seeks in that index instead of scanning every artifact. The same
# case-insensitive LIKE on the same characters, read backwards.
_SUFFIX_PATTERN = re.compile(r"%[^%_]+")
_REVERSED_URI_SUFFIX = "(t0.`id` IN (SELECT `id` FROM `mlmdlog_artifact_ruri` WHERE `ruri` LIKE {p}))"


class _Compiler:
    def __init__(self, kind: str, dialect: Dialect, reversed_uris: Any = False):
        self.kind = kind
        self.d = dialect
        # A bool, or a callable asked (once) when a uri suffix pattern is met.
        self._reversed_uris = reversed_uris if kind == "artifact" else False
        self.node = BY_NAME[kind]
        self.sources: dict[tuple, _Source] = {}  # in order of first mention
        self.aliases: dict[tuple, object] = {}
        self.touched: set[tuple] = set()  # the sources (and ("t0",)) the current conjunct names
        self.n = 0

    def _alias(self) -> str:
        self.n += 1
        return f"t{self.n}"

    def column(self, operand) -> str:
        if isinstance(operand, fq.Attr):
            if operand.name == "type":
                key = ("type",)
                if key not in self.aliases:
                    t = self.aliases[key] = self._alias()
                    self.sources[key] = _Source(f"`Type` AS {t}", f"{t}.`id`", base="type_id",
                                                extra=f"{t}.`type_kind` = {{p}}", extra_params=(self.node.type_kind,))
                self.touched.add(key)
                return f"{self.aliases[key]}.`name`"
            self.touched.add(("t0",))
            return f"t0.`{operand.name}`"
        if isinstance(operand, fq.Prop):
            key = ("prop", operand.custom, operand.name)
            if key not in self.aliases:
                n = self.aliases[key] = self._alias()
                self.sources[key] = _Source(f"`{self.node.prop_table}` AS {n}", f"{n}.`{self.node.owner}`",
                                            extra=f"{n}.`name` = {{p}} AND {n}.`is_custom_property` = {{p}}",
                                            extra_params=(operand.name, 1 if operand.custom else 0))
            self.touched.add(key)
            return f"{self.aliases[key]}.`{operand.field}`"
        if isinstance(operand, fq.Neighbour):
            if (operand.prefix, operand.field) in UNSELECTED_FIELDS:
                raise errors.InternalError(
                    f"Error when executing query: no such column: "
                    f"{operand.prefix}{operand.alias}.{operand.field} (MLMD's join for "
                    f"{operand.prefix}ALIAS does not select {operand.field})")
            key = ("nb", operand.prefix, operand.alias)
            if key not in self.aliases:
                n, l, t = self._alias(), self._alias(), self._alias()
                self.aliases[key] = (n, t)
                from_sql, owner, rest = NEIGHBOURS[(self.kind, operand.prefix)]
                self.sources[key] = _Source(from_sql.format(n=n, l=l), owner.format(n=n, l=l),
                                            rest=rest.format(n=n, l=l, t=t))
            self.touched.add(key)
            n, t = self.aliases[key]
            if operand.field == "type" and operand.prefix != "events_":
                return f"{t}.`name`"
            return f"{n}.`{operand.field}`"
        raise TypeError(operand)

    def conjunct(self, node) -> tuple[str, list, frozenset]:
        """One top-level conjunct: its SQL, params and the sources it names."""
        self.touched = set()
        params: list = []
        text = self.expr(node, params)
        return text, params, frozenset(self.touched)

    def assemble(self, conjuncts: list[tuple[str, list, frozenset]]) -> CompiledFilter:
        """The filter as a condition on t0 (see CompiledFilter for the two shapes)."""
        named = set().union(*(c[2] for c in conjuncts)) - {("t0",)}
        on_source = [c for c in conjuncts if c[2] - {("t0",)}]
        only_t0 = [c for c in conjuncts if not c[2] - {("t0",)}]
        parts, params = [], []
        if len(named) == 1 and ("type",) not in named and not any(("t0",) in c[2] for c in on_source):
            source = self.sources[next(iter(named))]
            parts.append(source.semijoin(" AND ".join(c[0] for c in on_source)))
            params.extend(source.extra_params)
            for c in on_source:
                params.extend(c[1])
            conjuncts = only_t0
        elif named:
            joins = " ".join(source.join() for source in self.sources.values())
            condition = " AND ".join(c[0] for c in conjuncts)
            parts.append(f"t0.`id` IN (SELECT t0.`id` FROM `{self.node.table}` AS t0 {joins} WHERE {condition})")
            for source in self.sources.values():
                params.extend(source.extra_params)
            for c in conjuncts:  # all of them, inside the subquery
                params.extend(c[1])
            conjuncts = []
        for c in conjuncts:
            parts.append(c[0])
            params.extend(c[1])
        return CompiledFilter("(" + " AND ".join(parts) + ")", tuple(params))

    def value(self, operand, params: list) -> str:
        if isinstance(operand, fq.Literal):
            if operand.value is None:
                return "NULL"
            value = operand.value
            if operand.type == fq.BOOL:
                value = self.d.true if value else self.d.false
            params.append(value)
            return "{p}"
        return self.column(operand)

    def _uri_suffix(self, node) -> bool:
        if not (self._reversed_uris and not node.negated and isinstance(node.operand, fq.Attr)
                and node.operand.name == "uri" and isinstance(node.pattern, fq.Literal)
                and isinstance(node.pattern.value, str) and _SUFFIX_PATTERN.fullmatch(node.pattern.value)):
            return False
        if callable(self._reversed_uris):
            self._reversed_uris = bool(self._reversed_uris())
        return self._reversed_uris

    def expr(self, node, params: list) -> str:
        if isinstance(node, fq.Compare):
            left = self.value(node.left, params)
            right = self.value(node.right, params)
            return f"({left} {node.op} {right})"
        if isinstance(node, fq.Like):
            if self._uri_suffix(node):
                self.touched.add(("t0",))
                params.append(node.pattern.value[:0:-1] + "%")
                return _REVERSED_URI_SUFFIX
            left = self.value(node.operand, params)
            right = self.value(node.pattern, params)
            return f"({left} {self.d.not_like if node.negated else self.d.like} {right})"
        if isinstance(node, fq.In):
            left = self.value(node.operand, params)
            items = ", ".join(self.value(item, params) for item in node.items)
            return f"({left} {'NOT IN' if node.negated else 'IN'} ({items}))"
        if isinstance(node, fq.IsNull):
            return f"({self.value(node.operand, params)} IS {'NOT ' if node.negated else ''}NULL)"
        if isinstance(node, fq.BoolOp):
            return "(" + f" {node.op} ".join(self.expr(item, params) for item in node.items) + ")"
        if isinstance(node, fq.Not):
            return f"(NOT {self.expr(node.item, params)})"
        if isinstance(node, fq.Truth):
            operand = node.operand
            if isinstance(operand, fq.Literal):
                return "(1 = 1)" if operand.value else "(1 = 0)"
            column = self.value(operand, params)
            params.append(self.d.true)
            return f"({column} = {{p}})"
        raise TypeError(node)


def compile_filter(ast, kind: str, dialect: Dialect = SQLITE, reversed_uris: Any = False) -> CompiledFilter:
    """SQL of a parsed filter for nodes of ``kind``; ``reversed_uris`` (or a callable
    saying so) when the projection keeps mlmdlog_artifact_ruri."""
    compiler = _Compiler(kind, dialect, reversed_uris)
    items = ast.items if isinstance(ast, fq.BoolOp) and ast.op == "AND" else [ast]
    return compiler.assemble([compiler.conjunct(item) for item in items])


def compile_text(text: str, kind: str, dialect: Dialect = SQLITE, reversed_uris: Any = False) -> Optional[CompiledFilter]:
    """Parses and compiles ``text``; None for an empty filter."""
    if not text:
        return None
    return compile_filter(fq.parse(text, kind), kind, dialect, reversed_uris)

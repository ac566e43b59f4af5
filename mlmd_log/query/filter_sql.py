"""Filter-query AST -> SQL, rendered per dialect from small tables of SQL text.

The SQL has MLMD's meaning: the node table (alias ``t0``) inner-joined with one table
per mentioned neighbour alias, property and the type; a node matches when some
combination of joined rows satisfies the condition. A node without a mentioned
property or neighbour therefore never matches, exactly as in MLMD.

Output uses the portable markers of ``sql.py`` (backticks, ``{p}``); every literal,
property name and type kind is a bound parameter, never pasted text.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from mlmd_log import errors
from mlmd_log.query import filter as fq

# Per node kind: node table, property table, owner column in property/event/link tables.
KIND_TABLES = {
    "artifact": ("Artifact", "ArtifactProperty", "artifact_id", 1),
    "execution": ("Execution", "ExecutionProperty", "execution_id", 0),
    "context": ("Context", "ContextProperty", "context_id", 2),
}

# Joins of a neighbour prefix for a base kind: (SQL with {b} base alias, {n} neighbour
# alias, {l} link alias, {t} neighbour-type alias), neighbour kind or None for events.
_CONTEXT_VIA_ATTRIBUTION = ("JOIN `Attribution` AS {l} ON {l}.`artifact_id` = {b}.`id` "
                            "JOIN `Context` AS {n} ON {n}.`id` = {l}.`context_id` "
                            "JOIN `Type` AS {t} ON {t}.`id` = {n}.`type_id`")
_CONTEXT_VIA_ASSOCIATION = ("JOIN `Association` AS {l} ON {l}.`execution_id` = {b}.`id` "
                            "JOIN `Context` AS {n} ON {n}.`id` = {l}.`context_id` "
                            "JOIN `Type` AS {t} ON {t}.`id` = {n}.`type_id`")
NEIGHBOUR_JOINS = {
    ("artifact", "contexts_"): _CONTEXT_VIA_ATTRIBUTION,
    ("execution", "contexts_"): _CONTEXT_VIA_ASSOCIATION,
    ("artifact", "events_"): "JOIN `Event` AS {n} ON {n}.`artifact_id` = {b}.`id`",
    ("execution", "events_"): "JOIN `Event` AS {n} ON {n}.`execution_id` = {b}.`id`",
    ("context", "artifacts_"): ("JOIN `Attribution` AS {l} ON {l}.`context_id` = {b}.`id` "
                                "JOIN `Artifact` AS {n} ON {n}.`id` = {l}.`artifact_id` "
                                "JOIN `Type` AS {t} ON {t}.`id` = {n}.`type_id`"),
    ("context", "executions_"): ("JOIN `Association` AS {l} ON {l}.`context_id` = {b}.`id` "
                                 "JOIN `Execution` AS {n} ON {n}.`id` = {l}.`execution_id` "
                                 "JOIN `Type` AS {t} ON {t}.`id` = {n}.`type_id`"),
    ("context", "parent_contexts_"): ("JOIN `ParentContext` AS {l} ON {l}.`context_id` = {b}.`id` "
                                      "JOIN `Context` AS {n} ON {n}.`id` = {l}.`parent_context_id` "
                                      "JOIN `Type` AS {t} ON {t}.`id` = {n}.`type_id`"),
    ("context", "child_contexts_"): ("JOIN `ParentContext` AS {l} ON {l}.`parent_context_id` = {b}.`id` "
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
TYPE_JOIN = "JOIN `Type` AS {t} ON {t}.`id` = {b}.`type_id` AND {t}.`type_kind` = {{p}}"
PROPERTY_JOIN = ("JOIN `{table}` AS {n} ON {n}.`{owner}` = {b}.`id` AND {n}.`name` = {{p}} "
                 "AND {n}.`is_custom_property` = {{p}}")


@dataclass(frozen=True)
class FilterDialect:
    """How one backend spells the few operators that differ."""

    name: str
    like: str = "LIKE"  # MLMD on SQLite: LIKE is case-insensitive for ASCII
    not_like: str = "NOT LIKE"
    true: object = 1
    false: object = 0


FILTER_DIALECTS = {
    "sqlite": FilterDialect("sqlite"),
    "mysql": FilterDialect("mysql"),
    "duckdb": FilterDialect("duckdb", like="ILIKE", not_like="NOT ILIKE", true=True, false=False),
}


@dataclass(frozen=True)
class CompiledFilter:
    """``joins`` (after ``FROM <node table> AS t0``) and ``where``, with their params in
    text order. ``joins`` is empty when the filter only names node attributes."""

    joins: str
    join_params: tuple
    where: str
    where_params: tuple

    def id_subquery(self, table: str) -> tuple[str, tuple]:
        """``SELECT t0.id ...`` of the matching nodes (distinct ids)."""
        return (f"SELECT DISTINCT t0.`id` FROM `{table}` AS t0 {self.joins} WHERE {self.where}",
                self.join_params + self.where_params)


class _Compiler:
    def __init__(self, kind: str, dialect: FilterDialect):
        self.kind = kind
        self.d = dialect
        self.table, self.prop_table, self.owner, self.type_kind = KIND_TABLES[kind]
        self.joins: list[str] = []
        self.join_params: list = []
        self.aliases: dict[tuple, str] = {}
        self.n = 0

    def _alias(self) -> str:
        self.n += 1
        return f"t{self.n}"

    def column(self, operand) -> str:
        if isinstance(operand, fq.Attr):
            if operand.name == "type":
                key = ("type",)
                if key not in self.aliases:
                    t = self._alias()
                    self.aliases[key] = t
                    self.joins.append(TYPE_JOIN.format(t=t, b="t0"))
                    self.join_params.append(self.type_kind)
                return f"{self.aliases[key]}.`name`"
            return f"t0.`{operand.name}`"
        if isinstance(operand, fq.Prop):
            key = ("prop", operand.custom, operand.name)
            if key not in self.aliases:
                n = self._alias()
                self.aliases[key] = n
                self.joins.append(PROPERTY_JOIN.format(table=self.prop_table, owner=self.owner, n=n, b="t0"))
                self.join_params.extend([operand.name, 1 if operand.custom else 0])
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
                self.joins.append(NEIGHBOUR_JOINS[(self.kind, operand.prefix)].format(b="t0", n=n, l=l, t=t))
            n, t = self.aliases[key]
            if operand.field == "type" and operand.prefix != "events_":
                return f"{t}.`name`"
            return f"{n}.`{operand.field}`"
        raise TypeError(operand)

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

    def expr(self, node, params: list) -> str:
        if isinstance(node, fq.Compare):
            left = self.value(node.left, params)
            right = self.value(node.right, params)
            return f"({left} {node.op} {right})"
        if isinstance(node, fq.Like):
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


def compile_filter(ast, kind: str, dialect: str = "sqlite") -> CompiledFilter:
    """SQL pieces of a parsed filter for nodes of ``kind``."""
    compiler = _Compiler(kind, FILTER_DIALECTS[dialect])
    params: list = []
    where = compiler.expr(ast, params)
    return CompiledFilter(" ".join(compiler.joins), tuple(compiler.join_params), where, tuple(params))


def compile_text(text: str, kind: str, dialect: str = "sqlite") -> Optional[CompiledFilter]:
    """Parses and compiles ``text``; None for an empty filter."""
    if not text:
        return None
    return compile_filter(fq.parse(text, kind), kind, dialect)

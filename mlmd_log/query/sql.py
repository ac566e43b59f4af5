"""SQL text for MLMD reads, written once for every backend.

The reader never builds SQL in code paths of its own: it names a query here and the
backend's dialect (mlmd_log/dialects.py) renders it. Queries are written once with
three portable markers:

* backticks quote identifiers (rendered to the dialect's quote character),
* ``{p}`` is one bound parameter (``?`` for sqlite3, ``%s`` for PyMySQL),
* ``{ids}`` is a list of bound parameters for an ``IN (...)`` of any length.

Only ORDER BY tails differ between backends: official MLMD leaves some reads
unordered and inherits SQLite's index order, which a dialect spells out explicitly
(``INDEX_ORDER_QUERIES``) so every backend returns the same order as MLMD on SQLite.
"""
from __future__ import annotations

from mlmd_log.schema import BY_NAME, NODE_KINDS

# Node columns in the order the reader unpacks them; the first eight (or fewer) are
# node fields, the last four describe the node's type.
NODE_COLUMNS = {
    "artifact": ("id", "type_id", "uri", "state", "name", "external_id",
                 "create_time_since_epoch", "last_update_time_since_epoch"),
    "execution": ("id", "type_id", "last_known_state", "name", "external_id",
                  "create_time_since_epoch", "last_update_time_since_epoch"),
    "context": ("id", "type_id", "name", "external_id",
                "create_time_since_epoch", "last_update_time_since_epoch"),
}

TYPE_COLUMNS = ("id", "name", "version", "description", "external_id", "input_type",
                "output_type")


def _node_by_ids(kind: str) -> str:
    table = BY_NAME[kind].table
    cols = ", ".join(f"N.`{c}`" for c in NODE_COLUMNS[kind])
    return (f"SELECT {cols}, T.`name`, T.`version`, T.`description`, T.`external_id` "
            f"FROM `{table}` AS N LEFT JOIN `Type` AS T ON T.`id` = N.`type_id` "
            f"WHERE N.`id` IN ({{ids}}) ORDER BY N.`id`")


def _node_properties(kind: str) -> str:
    prop_table, owner = BY_NAME[kind].prop_table, BY_NAME[kind].owner
    return (f"SELECT `{owner}`, `name`, `is_custom_property`, `int_value`, `double_value`, "
            f"`string_value`, `proto_value`, `bool_value` FROM `{prop_table}` "
            f"WHERE `{owner}` IN ({{ids}})")


_TYPE_SELECT = "SELECT " + ", ".join(f"`{c}`" for c in TYPE_COLUMNS) + " FROM `Type` "

# Queries shared by every dialect.
BASE_QUERIES: dict[str, str] = {
    "newest_artifact_and_reversed_uri": "SELECT (SELECT MAX(`id`) FROM `Artifact`), "
                                        "(SELECT MAX(`id`) FROM `mlmdlog_artifact_ruri`)",
    "type_by_id_in": _TYPE_SELECT + "WHERE `id` IN ({ids}) AND `type_kind` = {p}",
    "type_by_name": _TYPE_SELECT + "WHERE `name` = {p} AND `version` IS NULL AND `type_kind` = {p} "
                                   "ORDER BY `id` LIMIT 1",
    "type_by_name_and_version": _TYPE_SELECT + "WHERE `name` = {p} AND `version` = {p} "
                                               "AND `type_kind` = {p} ORDER BY `id` LIMIT 1",
    "all_types": _TYPE_SELECT + "WHERE `type_kind` = {p} ORDER BY `id`",
    "events_by_ids": "SELECT `id`, `artifact_id`, `execution_id`, `type`, `milliseconds_since_epoch` FROM `Event` "
                     "WHERE `id` IN ({ids}) ORDER BY `id`",
    "types_by_external_ids": _TYPE_SELECT + "WHERE `external_id` IN ({ids}) AND `type_kind` = {p} "
                                            "ORDER BY `external_id`",
    "type_properties": "SELECT `type_id`, `name`, `data_type` FROM `TypeProperty` "
                       "WHERE `type_id` IN ({ids})",
    "parent_type_names": "SELECT P.`type_id`, T.`name` FROM `ParentType` AS P "
                         "JOIN `Type` AS T ON T.`id` = P.`parent_type_id` "
                         "WHERE P.`type_id` IN ({ids}) ORDER BY P.`type_id`, P.`parent_type_id`",
    "artifact_ids_by_uri": "SELECT `id` FROM `Artifact` WHERE `uri` = {p} ORDER BY `id`",
    "artifact_ids_by_external_ids": "SELECT `id` FROM `Artifact` WHERE `external_id` IN ({ids})",
    "execution_ids_by_external_ids": "SELECT `id` FROM `Execution` WHERE `external_id` IN ({ids})",
    "context_ids_by_external_ids": "SELECT `id` FROM `Context` WHERE `external_id` IN ({ids})",
    "artifact_ids_by_type_and_name": "SELECT `id` FROM `Artifact` WHERE `type_id` = {p} AND `name` = {p}",
    "execution_ids_by_type_and_name": "SELECT `id` FROM `Execution` WHERE `type_id` = {p} AND `name` = {p}",
    "context_ids_by_type_and_name": "SELECT `id` FROM `Context` WHERE `type_id` = {p} AND `name` = {p}",
    "artifact_ids_by_type": "SELECT `id` FROM `Artifact` WHERE `type_id` = {p} ORDER BY `id`",
    "execution_ids_by_type": "SELECT `id` FROM `Execution` WHERE `type_id` = {p} ORDER BY `id`",
    "context_ids_by_type": "SELECT `id` FROM `Context` WHERE `type_id` = {p} ORDER BY `id`",
    "all_artifact_ids": "SELECT `id` FROM `Artifact` ORDER BY `id`",
    "all_execution_ids": "SELECT `id` FROM `Execution` ORDER BY `id`",
    "all_context_ids": "SELECT `id` FROM `Context` ORDER BY `id`",
    "artifact_ids_by_context": "SELECT `artifact_id` FROM `Attribution` WHERE `context_id` = {p} "
                               "ORDER BY `artifact_id`",
    "execution_ids_by_context": "SELECT `execution_id` FROM `Association` WHERE `context_id` = {p} "
                                "ORDER BY `execution_id`",
    "context_ids_by_artifact": "SELECT `context_id` FROM `Attribution` WHERE `artifact_id` = {p} "
                               "ORDER BY `context_id`",
    "context_ids_by_execution": "SELECT `context_id` FROM `Association` WHERE `execution_id` = {p} "
                                "ORDER BY `context_id`",
    "parent_ids_by_context": "SELECT `parent_context_id` FROM `ParentContext` WHERE `context_id` = {p}",
    "child_ids_by_context": "SELECT `context_id` FROM `ParentContext` WHERE `parent_context_id` = {p}",
    # Lineage: edges to contexts of the traversed nodes.
    "attributions_by_artifact_ids": "SELECT `context_id`, `artifact_id` FROM `Attribution` "
                                    "WHERE `artifact_id` IN ({ids}) ORDER BY `artifact_id`, `context_id`",
    "associations_by_execution_ids": "SELECT `context_id`, `execution_id` FROM `Association` "
                                     "WHERE `execution_id` IN ({ids}) ORDER BY `execution_id`, `context_id`",
    # The "does any candidate exist" probes run before options are validated, as MLMD does.
    "any_artifact_of_type": "SELECT 1 FROM `Artifact` WHERE `type_id` = {p} LIMIT 1",
    "any_execution_of_type": "SELECT 1 FROM `Execution` WHERE `type_id` = {p} LIMIT 1",
    "any_context_of_type": "SELECT 1 FROM `Context` WHERE `type_id` = {p} LIMIT 1",
    "any_artifact_in_context": "SELECT 1 FROM `Attribution` WHERE `context_id` = {p} LIMIT 1",
    "any_execution_in_context": "SELECT 1 FROM `Association` WHERE `context_id` = {p} LIMIT 1",
    # Candidate sets for paged lists, used as `id IN (<subquery>)`.
    "candidates_artifact_of_type": "SELECT `id` FROM `Artifact` WHERE `type_id` = {p}",
    "candidates_execution_of_type": "SELECT `id` FROM `Execution` WHERE `type_id` = {p}",
    "candidates_context_of_type": "SELECT `id` FROM `Context` WHERE `type_id` = {p}",
    "candidates_artifact_in_context": "SELECT `artifact_id` FROM `Attribution` WHERE `context_id` = {p}",
    "candidates_execution_in_context": "SELECT `execution_id` FROM `Association` WHERE `context_id` = {p}",
}
for _kind in NODE_KINDS:
    BASE_QUERIES[f"{_kind.plural}_by_ids"] = _node_by_ids(_kind.name)
    BASE_QUERIES[f"{_kind.name}_properties"] = _node_properties(_kind.name)
    # Serialized read forms (mlmd_log/projections/read_forms.py), where the writer keeps them.
    BASE_QUERIES[f"{_kind.name}_read_forms"] = f"SELECT `id`, `pb` FROM `{_kind.read_form_table}` WHERE `id` IN ({{ids}})"


# Reads whose order official MLMD takes from SQLite's choice of index. Rows of one
# event's path come back in insertion order; events follow the (artifact_id,
# execution_id, type) unique index or the execution_id index; children of a parent
# follow the parent_context_id index, i.e. link insertion order.
INDEX_ORDER_QUERIES = {
    "events_by_artifact_ids": "SELECT `id`, `artifact_id`, `execution_id`, `type`, "
                              "`milliseconds_since_epoch` FROM `Event` WHERE `artifact_id` IN ({ids}) "
                              "ORDER BY `artifact_id`, `execution_id`, `type`",
    "events_by_execution_ids": "SELECT `id`, `artifact_id`, `execution_id`, `type`, "
                               "`milliseconds_since_epoch` FROM `Event` WHERE `execution_id` IN ({ids}) "
                               "ORDER BY `execution_id`, `id`",
    "event_paths": "SELECT `event_id`, `is_index_step`, `step_index`, `step_key` FROM `EventPath` "
                   "WHERE `event_id` IN ({ids}) ORDER BY `event_id`, rowid",
    "parent_links_by_children": "SELECT `context_id`, `parent_context_id` FROM `ParentContext` "
                                "WHERE `context_id` IN ({ids}) ORDER BY `context_id`, `parent_context_id`",
    # Children of each parent ascending by id: the same on every backend (MySQL keeps no
    # insertion order for links), and what the single-context read returns.
    "child_links_by_parents": "SELECT `context_id`, `parent_context_id` FROM `ParentContext` "
                              "WHERE `parent_context_id` IN ({ids}) ORDER BY `parent_context_id`, `context_id`",
}

# MySQL/MariaDB: the same orders as SQLite (so every projection answers a read identically).
# EventPath has no key: InnoDB orders it by a hidden row id, so its event_id index lists a
# path's steps in insertion order, as SQLite's rowid does.
MYSQL_INDEX_ORDER_QUERIES = {
    **INDEX_ORDER_QUERIES,
    "event_paths": "SELECT `event_id`, `is_index_step`, `step_index`, `step_key` FROM `EventPath` "
                   "FORCE INDEX (`idx_eventpath_event_id`) WHERE `event_id` IN ({ids}) ORDER BY `event_id`",
}

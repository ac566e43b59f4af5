"""The MLMD schema (version 10) per SQL dialect, plus mlmd-log's own bookkeeping tables.

MLMD's tables keep exactly the names, columns and types of the official schema so the
official library can open a projection. Our tables carry the ``mlmdlog_`` prefix and
never alter MLMD's.
"""
from __future__ import annotations

import re
from typing import Optional

from mlmd_log.projections import bookkeeping
from mlmd_log.schema import ARTIFACT, EXECUTION, NODE_KINDS

SCHEMA_VERSION = 10

# Type ids 1..9 are the simple (system) types every MLMD store creates on init.
_ARTIFACT, _EXECUTION = ARTIFACT.type_kind, EXECUTION.type_kind
SIMPLE_TYPES: tuple[tuple[str, int], ...] = (
    ("mlmd.Dataset", _ARTIFACT), ("mlmd.Model", _ARTIFACT), ("mlmd.Metrics", _ARTIFACT),
    ("mlmd.Statistics", _ARTIFACT), ("mlmd.Train", _EXECUTION), ("mlmd.Transform", _EXECUTION),
    ("mlmd.Process", _EXECUTION), ("mlmd.Evaluate", _EXECUTION), ("mlmd.Deploy", _EXECUTION),
)

_PROPERTY_COLUMNS = """
    `name` VARCHAR(255) NOT NULL,
    `is_custom_property` TINYINT(1) NOT NULL,
    `int_value` INT,
    `double_value` DOUBLE,
    `string_value` {text},
    `byte_value` {blob},
    `proto_value` {blob},
    `bool_value` BOOLEAN"""


def _property_table(table: str, owner: str, text: str, blob: str) -> str:
    cols = _PROPERTY_COLUMNS.format(text=text, blob=blob)
    return (f"CREATE TABLE IF NOT EXISTS `{table}` (\n    `{owner}` INT NOT NULL,{cols},\n"
            f"    PRIMARY KEY (`{owner}`, `name`, `is_custom_property`))")


def _property_indexes(table: str, prefix: str) -> list[str]:
    # MLMD's value indexes, extended by the owner's id: a property filter then reads the
    # matching owners from the index alone (filter_sql's IN subqueries), and an
    # equality match comes out in owner order. MLMD's own use of them is unchanged (the
    # extra column is last).
    return [
        f"CREATE INDEX IF NOT EXISTS `idx_{prefix}_property_{kind}` ON `{table}`"
        f"(`name`, `is_custom_property`, `{kind}_value`, `{prefix}_id`) WHERE `{kind}_value` IS NOT NULL"
        for kind in ("int", "double", "string")
    ]


def _lines(items: tuple[str, ...]) -> str:
    return "".join(f"    {item},\n" for item in items)


# The columns of `Type` between its id and its external_id, the same in every dialect.
_TYPE_COLUMNS = """    `name` VARCHAR(255) NOT NULL,
    `version` VARCHAR(255),
    `type_kind` TINYINT(1) NOT NULL,
    `description` TEXT,
    `input_type` TEXT,
    `output_type` TEXT,
"""


def _sqlite_node_table(table: str, own_columns: tuple[str, ...]) -> str:
    """Artifact or Execution: the columns both have, around the kind's own ones."""
    return (f"CREATE TABLE IF NOT EXISTS `{table}` (\n"
            "    `id` INTEGER PRIMARY KEY AUTOINCREMENT,\n"
            "    `type_id` INT NOT NULL,\n"
            f"{_lines(own_columns)}"
            "    `name` VARCHAR(255),\n"
            "    `external_id` VARCHAR(255) UNIQUE,\n"
            "    `create_time_since_epoch` INT NOT NULL DEFAULT 0,\n"
            "    `last_update_time_since_epoch` INT NOT NULL DEFAULT 0,\n"
            "    UNIQUE(`type_id`, `name`))")


SQLITE_MLMD: list[str] = [
    "CREATE TABLE IF NOT EXISTS `Type` (\n    `id` INTEGER PRIMARY KEY AUTOINCREMENT,\n" + _TYPE_COLUMNS
    + "    `external_id` VARCHAR(255) UNIQUE)",
    """CREATE TABLE IF NOT EXISTS `TypeProperty` (
    `type_id` INT NOT NULL,
    `name` VARCHAR(255) NOT NULL,
    `data_type` INT NULL,
    PRIMARY KEY (`type_id`, `name`))""",
    """CREATE TABLE IF NOT EXISTS `ParentType` (
    `type_id` INT NOT NULL,
    `parent_type_id` INT NOT NULL,
    PRIMARY KEY (`type_id`, `parent_type_id`))""",
    _sqlite_node_table("Artifact", ("`uri` TEXT", "`state` INT")),
    _property_table("ArtifactProperty", "artifact_id", "TEXT", "BLOB"),
    _sqlite_node_table("Execution", ("`last_known_state` INT",)),
    _property_table("ExecutionProperty", "execution_id", "TEXT", "BLOB"),
    """CREATE TABLE IF NOT EXISTS `Event` (
    `id` INTEGER PRIMARY KEY AUTOINCREMENT,
    `artifact_id` INT NOT NULL,
    `execution_id` INT NOT NULL,
    `type` INT NOT NULL,
    `milliseconds_since_epoch` INT,
    UNIQUE(`artifact_id`, `execution_id`, `type`))""",
    """CREATE TABLE IF NOT EXISTS `EventPath` (
    `event_id` INT NOT NULL,
    `is_index_step` TINYINT(1) NOT NULL,
    `step_index` INT,
    `step_key` TEXT)""",
    """CREATE TABLE IF NOT EXISTS `MLMDEnv` (
    `schema_version` INTEGER PRIMARY KEY)""",
    """CREATE TABLE IF NOT EXISTS `Context` (
    `id` INTEGER PRIMARY KEY AUTOINCREMENT,
    `type_id` INT NOT NULL,
    `name` VARCHAR(255) NOT NULL,
    `external_id` VARCHAR(255) UNIQUE,
    `create_time_since_epoch` INT NOT NULL DEFAULT 0,
    `last_update_time_since_epoch` INT NOT NULL DEFAULT 0,
    UNIQUE(`type_id`, `name`))""",
    _property_table("ContextProperty", "context_id", "TEXT", "BLOB"),
    """CREATE TABLE IF NOT EXISTS `ParentContext` (
    `context_id` INT NOT NULL,
    `parent_context_id` INT NOT NULL,
    PRIMARY KEY (`context_id`, `parent_context_id`))""",
    """CREATE TABLE IF NOT EXISTS `Association` (
    `id` INTEGER PRIMARY KEY AUTOINCREMENT,
    `context_id` INT NOT NULL,
    `execution_id` INT NOT NULL,
    UNIQUE(`context_id`, `execution_id`))""",
    """CREATE TABLE IF NOT EXISTS `Attribution` (
    `id` INTEGER PRIMARY KEY AUTOINCREMENT,
    `context_id` INT NOT NULL,
    `artifact_id` INT NOT NULL,
    UNIQUE(`context_id`, `artifact_id`))""",
    "CREATE INDEX IF NOT EXISTS `idx_artifact_uri` ON `Artifact`(`uri`)",
    "CREATE INDEX IF NOT EXISTS `idx_artifact_create_time_since_epoch` ON `Artifact`(`create_time_since_epoch`)",
    "CREATE INDEX IF NOT EXISTS `idx_artifact_last_update_time_since_epoch` ON `Artifact`(`last_update_time_since_epoch`)",
    "CREATE INDEX IF NOT EXISTS `idx_event_execution_id` ON `Event`(`execution_id`)",
    "CREATE INDEX IF NOT EXISTS `idx_parentcontext_parent_context_id` ON `ParentContext`(`parent_context_id`)",
    "CREATE INDEX IF NOT EXISTS `idx_type_name` ON `Type`(`name`)",
    "CREATE INDEX IF NOT EXISTS `idx_execution_create_time_since_epoch` ON `Execution`(`create_time_since_epoch`)",
    "CREATE INDEX IF NOT EXISTS `idx_execution_last_update_time_since_epoch` ON `Execution`(`last_update_time_since_epoch`)",
    "CREATE INDEX IF NOT EXISTS `idx_context_create_time_since_epoch` ON `Context`(`create_time_since_epoch`)",
    "CREATE INDEX IF NOT EXISTS `idx_context_last_update_time_since_epoch` ON `Context`(`last_update_time_since_epoch`)",
    "CREATE INDEX IF NOT EXISTS `idx_eventpath_event_id` ON `EventPath`(`event_id`)",
    *_property_indexes("ArtifactProperty", "artifact"),
    *_property_indexes("ExecutionProperty", "execution"),
    *_property_indexes("ContextProperty", "context"),
    "CREATE INDEX IF NOT EXISTS `idx_type_external_id` ON `Type`(`external_id`)",
    "CREATE INDEX IF NOT EXISTS `idx_artifact_external_id` ON `Artifact`(`external_id`)",
    "CREATE INDEX IF NOT EXISTS `idx_execution_external_id` ON `Execution`(`external_id`)",
    "CREATE INDEX IF NOT EXISTS `idx_context_external_id` ON `Context`(`external_id`)",
]

# mlmd-log bookkeeping: the applied log position (same transaction as the rows it
# covers) and the outcome of every applied record, so a caller or a replay can
# read back what its put returned.
SQLITE_LOG: list[str] = [
    *bookkeeping.SQLITE_DDL,
    # Each node's serialized read form (projections/read_forms.py).
    *(f"CREATE TABLE IF NOT EXISTS `{kind.read_form_table}` (`id` INTEGER PRIMARY KEY, `pb` BLOB NOT NULL)"
      for kind in NODE_KINDS),
    # Markers of derived tables known complete (a projection from before one existed is
    # filled once, then marked).
    """CREATE TABLE IF NOT EXISTS `mlmdlog_meta` (
    `name` VARCHAR(64) PRIMARY KEY,
    `value` VARCHAR(255) NOT NULL)""",
    # Extra indexes for neighbour filters and lineage (by node, not by context). Named
    # mlmdlog_* so they are recognisably ours; columns and MLMD's own indexes are untouched.
    "CREATE INDEX IF NOT EXISTS `idx_mlmdlog_attribution_artifact` ON `Attribution`(`artifact_id`)",
    "CREATE INDEX IF NOT EXISTS `idx_mlmdlog_association_execution` ON `Association`(`execution_id`)",
    # uri prefix filters (`uri LIKE 'gs://bucket/%'`): SQLite's LIKE ignores ASCII case, so
    # only a NOCASE index lets it seek instead of scanning every artifact.
    "CREATE INDEX IF NOT EXISTS `idx_mlmdlog_artifact_uri_nocase` ON `Artifact`(`uri` COLLATE NOCASE)",
    # uri suffix filters (`uri LIKE '%/model.pb'`): each artifact's uri reversed, so the
    # suffix becomes a prefix the NOCASE index can seek (query/filter_sql.py).
    """CREATE TABLE IF NOT EXISTS `mlmdlog_artifact_ruri` (
    `id` INTEGER PRIMARY KEY,
    `ruri` TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS `idx_mlmdlog_artifact_ruri` ON `mlmdlog_artifact_ruri`(`ruri` COLLATE NOCASE)",
]


# Indexes that serve reads only (filters, lineage, listings by time or uri): neither the
# state machine nor a mirror's copy looks anything up by them. A staging projection, whose
# reads its target serves, goes without them (each costs a B-tree insert per row); opened
# as a projection of its own, it gets them from the schema.
READ_ONLY_INDEXES = frozenset({
    "idx_artifact_uri", "idx_artifact_create_time_since_epoch", "idx_event_execution_id",
    "idx_execution_create_time_since_epoch", "idx_context_create_time_since_epoch",
    *(f"idx_{kind.name}_property_{value}" for kind in NODE_KINDS
      for value in ("int", "double", "string")),
    "idx_artifact_external_id", "idx_execution_external_id", "idx_context_external_id",
    "idx_mlmdlog_attribution_artifact", "idx_mlmdlog_association_execution", "idx_mlmdlog_artifact_uri_nocase",
})


def index_name(statement: str) -> Optional[str]:
    """The index a CREATE INDEX statement creates (None for any other statement)."""
    found = re.match(r"CREATE (?:UNIQUE )?INDEX IF NOT EXISTS `(\w+)`", statement)
    return found.group(1) if found else None


# -- MySQL / MariaDB ---------------------------------------------------------
# Same tables, columns and keys as the official MySQL backend. The collation is
# binary and NO PAD (placeholder {collation}) so that uniqueness of names and
# external ids is decided exactly as on SQLite: a projection's outcome must never
# depend on which backend it writes.

def _mysql_property_table(table: str, owner: str, prefix: str) -> str:
    return (f"CREATE TABLE IF NOT EXISTS `{table}` (\n"
            f"    `{owner}` INT NOT NULL,\n"
            "    `name` VARCHAR(255) NOT NULL,\n"
            "    `is_custom_property` TINYINT(1) NOT NULL,\n"
            "    `int_value` INT,\n"
            "    `double_value` DOUBLE,\n"
            "    `string_value` MEDIUMTEXT,\n"
            "    `byte_value` MEDIUMBLOB,\n"
            "    `proto_value` MEDIUMBLOB,\n"
            "    `bool_value` TINYINT(1),\n"
            f"    PRIMARY KEY (`{owner}`, `name`, `is_custom_property`),\n"
            f"    KEY `idx_{prefix}_property_int` (`name`, `is_custom_property`, `int_value`),\n"
            f"    KEY `idx_{prefix}_property_double` (`name`, `is_custom_property`, `double_value`),\n"
            f"    KEY `idx_{prefix}_property_string` (`name`, `is_custom_property`, `string_value`(255))\n"
            ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation}")


_MYSQL_TABLE_TAIL = ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation}"


def _mysql_node_table(table: str, own_columns: tuple[str, ...], own_keys: tuple[str, ...] = ()) -> str:
    """Artifact or Execution: the columns and keys both have, around the kind's own ones."""
    prefix = table.lower()
    return (f"CREATE TABLE IF NOT EXISTS `{table}` (\n"
            "    `id` INT NOT NULL AUTO_INCREMENT,\n"
            "    `type_id` INT NOT NULL,\n"
            f"{_lines(own_columns)}"
            "    `name` VARCHAR(255),\n"
            "    `external_id` VARCHAR(255),\n"
            "    `create_time_since_epoch` BIGINT NOT NULL DEFAULT 0,\n"
            "    `last_update_time_since_epoch` BIGINT NOT NULL DEFAULT 0,\n"
            "    PRIMARY KEY (`id`),\n"
            "    UNIQUE KEY `external_id` (`external_id`),\n"
            f"    UNIQUE KEY `Unique{table}TypeName` (`type_id`, `name`),\n"
            f"{_lines(own_keys)}"
            f"    KEY `idx_{prefix}_create_time_since_epoch` (`create_time_since_epoch`),\n"
            f"    KEY `idx_{prefix}_last_update_time_since_epoch` (`last_update_time_since_epoch`),\n"
            f"    KEY `idx_{prefix}_external_id` (`external_id`)\n" + _MYSQL_TABLE_TAIL)

MYSQL_MLMD: list[str] = [
    "CREATE TABLE IF NOT EXISTS `Type` (\n    `id` INT NOT NULL AUTO_INCREMENT,\n" + _TYPE_COLUMNS + """    `external_id` VARCHAR(255),
    PRIMARY KEY (`id`),
    UNIQUE KEY `external_id` (`external_id`),
    KEY `idx_type_name` (`name`),
    KEY `idx_type_external_id` (`external_id`)
""" + _MYSQL_TABLE_TAIL,
    """CREATE TABLE IF NOT EXISTS `TypeProperty` (
    `type_id` INT NOT NULL,
    `name` VARCHAR(255) NOT NULL,
    `data_type` INT,
    PRIMARY KEY (`type_id`, `name`)
""" + _MYSQL_TABLE_TAIL,
    """CREATE TABLE IF NOT EXISTS `ParentType` (
    `type_id` INT NOT NULL,
    `parent_type_id` INT NOT NULL,
    PRIMARY KEY (`type_id`, `parent_type_id`)
""" + _MYSQL_TABLE_TAIL,
    _mysql_node_table("Artifact", ("`uri` TEXT", "`state` INT"), ("KEY `idx_artifact_uri` (`uri`(255))",)),
    _mysql_property_table("ArtifactProperty", "artifact_id", "artifact"),
    _mysql_node_table("Execution", ("`last_known_state` INT",)),
    _mysql_property_table("ExecutionProperty", "execution_id", "execution"),
    """CREATE TABLE IF NOT EXISTS `Context` (
    `id` INT NOT NULL AUTO_INCREMENT,
    `type_id` INT NOT NULL,
    `name` VARCHAR(255) NOT NULL,
    `external_id` VARCHAR(255),
    `create_time_since_epoch` BIGINT NOT NULL DEFAULT 0,
    `last_update_time_since_epoch` BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (`id`),
    UNIQUE KEY `type_id` (`type_id`, `name`),
    UNIQUE KEY `external_id` (`external_id`),
    KEY `idx_context_create_time_since_epoch` (`create_time_since_epoch`),
    KEY `idx_context_last_update_time_since_epoch` (`last_update_time_since_epoch`),
    KEY `idx_context_external_id` (`external_id`)
""" + _MYSQL_TABLE_TAIL,
    _mysql_property_table("ContextProperty", "context_id", "context"),
    """CREATE TABLE IF NOT EXISTS `Event` (
    `id` INT NOT NULL AUTO_INCREMENT,
    `artifact_id` INT NOT NULL,
    `execution_id` INT NOT NULL,
    `type` INT NOT NULL,
    `milliseconds_since_epoch` BIGINT,
    PRIMARY KEY (`id`),
    UNIQUE KEY `UniqueEvent` (`artifact_id`, `execution_id`, `type`),
    KEY `idx_event_execution_id` (`execution_id`)
""" + _MYSQL_TABLE_TAIL,
    """CREATE TABLE IF NOT EXISTS `EventPath` (
    `event_id` INT NOT NULL,
    `is_index_step` TINYINT(1) NOT NULL,
    `step_index` INT,
    `step_key` TEXT,
    KEY `idx_eventpath_event_id` (`event_id`)
""" + _MYSQL_TABLE_TAIL,
    """CREATE TABLE IF NOT EXISTS `MLMDEnv` (
    `schema_version` INT NOT NULL,
    PRIMARY KEY (`schema_version`)
""" + _MYSQL_TABLE_TAIL,
    """CREATE TABLE IF NOT EXISTS `ParentContext` (
    `context_id` INT NOT NULL,
    `parent_context_id` INT NOT NULL,
    PRIMARY KEY (`context_id`, `parent_context_id`),
    KEY `idx_parentcontext_parent_context_id` (`parent_context_id`)
""" + _MYSQL_TABLE_TAIL,
    """CREATE TABLE IF NOT EXISTS `Association` (
    `id` INT NOT NULL AUTO_INCREMENT,
    `context_id` INT NOT NULL,
    `execution_id` INT NOT NULL,
    PRIMARY KEY (`id`),
    UNIQUE KEY `context_id` (`context_id`, `execution_id`)
""" + _MYSQL_TABLE_TAIL,
    """CREATE TABLE IF NOT EXISTS `Attribution` (
    `id` INT NOT NULL AUTO_INCREMENT,
    `context_id` INT NOT NULL,
    `artifact_id` INT NOT NULL,
    PRIMARY KEY (`id`),
    UNIQUE KEY `context_id` (`context_id`, `artifact_id`)
""" + _MYSQL_TABLE_TAIL,
]

MYSQL_LOG: list[str] = [
    *(statement + _MYSQL_TABLE_TAIL for statement in bookkeeping.MYSQL_DDL),
    *(f"CREATE TABLE IF NOT EXISTS `{kind.read_form_table}` (`id` INT NOT NULL, `pb` MEDIUMBLOB NOT NULL, "
      "PRIMARY KEY (`id`)" + _MYSQL_TABLE_TAIL for kind in NODE_KINDS),
    """CREATE TABLE IF NOT EXISTS `mlmdlog_meta` (
    `name` VARCHAR(64) NOT NULL,
    `value` VARCHAR(255) NOT NULL,
    PRIMARY KEY (`name`)
""" + _MYSQL_TABLE_TAIL,
    "CREATE INDEX IF NOT EXISTS `idx_mlmdlog_attribution_artifact` ON `Attribution`(`artifact_id`)",
    "CREATE INDEX IF NOT EXISTS `idx_mlmdlog_association_execution` ON `Association`(`execution_id`)",
]

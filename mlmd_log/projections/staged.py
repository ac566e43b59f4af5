"""What the staged projections share: apply to a SQLite staging projection, then mirror.

``DuckDbProjection`` (analytics) and ``MirroredProjection`` (MySQL) both run the MLMD state
machine on a local SQLite staging file and copy each applied batch into their target in
one target transaction. This base makes them sinks of the one follower (consumer/follower.py); a
subclass supplies ``_target_offset()`` (the target's checkpoint) and ``mirror()`` (the copy).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from mlmd_log import errors
from mlmd_log.consumer.follower import Follower, ProjectorSink
from mlmd_log.producer.base import Log
from mlmd_log.projections.backend import SqliteBackend

LOG = logging.getLogger("mlmd_log.staged")


def open_staging(path: str) -> SqliteBackend:
    """A staging projection: the MLMD state machine's own tables. Reads are served by the
    target, so it keeps no reversed uris (SQLite's uri suffix filters are their only use)
    and no index that only reads use; opened later as a projection of its own, it gets
    both then."""
    staging = SqliteBackend(path, staging=True)
    staging.create_schema()
    return staging

# -- what is mirrored ------------------------------------------------------------
# MLMD v10 tables with the same names and columns (in the same order) as ddl.SQLITE_MLMD,
# with DuckDB column types (the MySQL mirror uses the names only).
_PROPERTY_COLUMNS = (("name", "VARCHAR"), ("is_custom_property", "TINYINT"), ("int_value", "BIGINT"),
                     ("double_value", "DOUBLE"), ("string_value", "VARCHAR"), ("byte_value", "BLOB"),
                     ("proto_value", "BLOB"), ("bool_value", "BOOLEAN"))
_TIMES = (("create_time_since_epoch", "BIGINT"), ("last_update_time_since_epoch", "BIGINT"))

TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "Type": (("id", "INTEGER"), ("name", "VARCHAR"), ("version", "VARCHAR"), ("type_kind", "TINYINT"),
             ("description", "VARCHAR"), ("input_type", "VARCHAR"), ("output_type", "VARCHAR"),
             ("external_id", "VARCHAR")),
    "TypeProperty": (("type_id", "INTEGER"), ("name", "VARCHAR"), ("data_type", "INTEGER")),
    "ParentType": (("type_id", "INTEGER"), ("parent_type_id", "INTEGER")),
    "Artifact": (("id", "INTEGER"), ("type_id", "INTEGER"), ("uri", "VARCHAR"), ("state", "INTEGER"),
                 ("name", "VARCHAR"), ("external_id", "VARCHAR"), *_TIMES),
    "ArtifactProperty": (("artifact_id", "INTEGER"), *_PROPERTY_COLUMNS),
    "Execution": (("id", "INTEGER"), ("type_id", "INTEGER"), ("last_known_state", "INTEGER"),
                  ("name", "VARCHAR"), ("external_id", "VARCHAR"), *_TIMES),
    "ExecutionProperty": (("execution_id", "INTEGER"), *_PROPERTY_COLUMNS),
    "Event": (("id", "INTEGER"), ("artifact_id", "INTEGER"), ("execution_id", "INTEGER"), ("type", "INTEGER"),
              ("milliseconds_since_epoch", "BIGINT")),
    "EventPath": (("event_id", "INTEGER"), ("is_index_step", "TINYINT"), ("step_index", "BIGINT"),
                  ("step_key", "VARCHAR")),
    "MLMDEnv": (("schema_version", "INTEGER"),),
    "Context": (("id", "INTEGER"), ("type_id", "INTEGER"), ("name", "VARCHAR"), ("external_id", "VARCHAR"),
                *_TIMES),
    "ContextProperty": (("context_id", "INTEGER"), *_PROPERTY_COLUMNS),
    "ParentContext": (("context_id", "INTEGER"), ("parent_context_id", "INTEGER")),
    "Association": (("id", "INTEGER"), ("context_id", "INTEGER"), ("execution_id", "INTEGER")),
    "Attribution": (("id", "INTEGER"), ("context_id", "INTEGER"), ("artifact_id", "INTEGER")),
    "mlmdlog_outcome": (("log_offset", "BIGINT"), ("record_id", "VARCHAR"), ("error_code", "INTEGER"),
                        ("error_message", "VARCHAR"), ("response", "BLOB")),
}

@dataclass(frozen=True)
class NodeTables:
    kind: str  # artifact | execution | context
    table: str
    prop_table: str
    owner: str
    type_kind: int
    view_prefix: str


NODES = (NodeTables("artifact", "Artifact", "ArtifactProperty", "artifact_id", 1, "artifacts"),
         NodeTables("execution", "Execution", "ExecutionProperty", "execution_id", 0, "executions"),
         NodeTables("context", "Context", "ContextProperty", "context_id", 2, "contexts"))

def staging_select(table: str, alias: str = "") -> str:
    """SELECT of the mirrored columns of a staging table, in ``TABLES`` order."""
    prefix = f"{alias}." if alias else ""
    return "SELECT " + ", ".join(f"{prefix}`{c}`" for c, _ in TABLES[table]) + f" FROM `{table}`" + \
        (f" AS {alias}" if alias else "")


def changed_nodes_sql(node: NodeTables, since: Optional[int]) -> tuple[str, str, str, tuple]:
    """Staging queries for the nodes changed since ``since`` (all when None), their property
    rows and their read forms, each in id order, and their parameters.

    Since a time, the node table is read through its update-time index, named: seeing the
    ORDER BY id, SQLite's planner otherwise scans the whole table in id order, so every
    mirror cost time in proportion to the projection's size (6-9 ms per query at 49k nodes
    for a few changed ones)."""
    if since is None:
        nodes, where, params = f"`{node.table}` AS N", "", ()
    else:
        index = f"idx_{node.kind}_last_update_time_since_epoch"
        nodes, where, params = (f"`{node.table}` AS N INDEXED BY `{index}`",
                                " WHERE N.`last_update_time_since_epoch` >= ?", (since,))
    node_columns = ", ".join(f"N.`{c}`" for c, _ in TABLES[node.table])
    prop_columns = ", ".join(f"P.`{c}`" for c, _ in TABLES[node.prop_table])
    return (f"SELECT {node_columns} FROM {nodes}{where} ORDER BY N.`id`",
            f"SELECT {prop_columns} FROM {nodes} CROSS JOIN `{node.prop_table}` AS P ON P.`{node.owner}` = N.`id`"
            f"{where} ORDER BY P.`{node.owner}`, P.`name`, P.`is_custom_property`",
            f"SELECT F.`id`, F.`pb` FROM {nodes} CROSS JOIN `mlmdlog_{node.kind}_pb` AS F ON F.`id` = N.`id`"
            f"{where} ORDER BY F.`id`",
            params)


# Append-only tables with a monotonically assigned key: (table, key column).
APPEND_BY_KEY = (("Event", "id"), ("Attribution", "id"), ("Association", "id"), ("mlmdlog_outcome", "log_offset"))
SMALL_TABLES = ("Type", "TypeProperty", "ParentType", "MLMDEnv")
SMALL_ORDER = {"Type": "`id`", "TypeProperty": "`type_id`, `name`", "ParentType": "`type_id`, `parent_type_id`",
               "MLMDEnv": "`schema_version`"}


@dataclass
class ApplyStats:
    """What one ``apply`` (or ``catch_up``) did."""

    records: int = 0  # log records applied to staging
    rejected: int = 0  # of which were rejected puts (an outcome row, no MLMD rows)
    applied_offset: int = 0  # the target's checkpoint after the call
    copied: dict[str, int] = field(default_factory=dict)  # rows written to the target per table
    seconds: float = 0.0

    def add(self, other: "ApplyStats") -> None:
        self.records += other.records
        self.rejected += other.rejected
        for table, n in other.copied.items():
            self.copied[table] = self.copied.get(table, 0) + n


class StagedProjection:
    """A staged projection over ``self.projector`` (staging) and ``mirror()`` (target): the
    log is followed into staging, and each batch mirrored (``StagedSink``)."""

    projector: Any
    target_name = "target"
    _follower: Optional[Follower] = None

    def _target_offset(self) -> int:
        raise NotImplementedError

    def mirror(self) -> dict[str, int]:
        raise NotImplementedError

    def follower(self, log: Log, batch_size: int = 20000) -> Follower:
        """The follower of ``log`` into this projection (one per log: it checks the log is
        staging's once, on its first step)."""
        if self._follower is None or self._follower.log is not log:
            self._follower = Follower(log, StagedSink(self), batch_size=batch_size, name=self.target_name,
                                      count_rejected=True)
        self._follower.batch_size = batch_size
        return self._follower

    def apply(self, log: Log, batch_size: int = 20000) -> ApplyStats:
        """Applies the next batch of ``log`` to staging, then mirrors staging into the target."""
        return self.follow(log, batch_size, lambda follower: follower.step())

    def catch_up(self, log: Log, batch_size: int = 20000) -> ApplyStats:
        """``apply`` until the target holds the whole log as it was when called."""
        end = log.end_offset()
        return self.follow(log, batch_size, lambda follower: follower.run(until=end, report_every=float("inf")))

    def follow(self, log: Log, batch_size: int, run: Callable[[Follower], Any]) -> ApplyStats:
        """Calls ``run`` with the follower of ``log`` (once staging has caught up with the
        target), then mirrors what staging still holds beyond the target; returns what that
        did."""
        started = time.monotonic()
        self._rebuild_staging(log, batch_size)
        follower = self.follower(log, batch_size)
        sink, status = follower.sink, follower.status
        records, rejected = status.records_applied, status.rejected
        sink.copied = {}
        run(follower)
        if sink.in_flight:
            sink.drain()
        return ApplyStats(status.records_applied - records, status.rejected - rejected, self._target_offset(),
                          sink.copied, time.monotonic() - started)

    def _rebuild_staging(self, log: Log, batch_size: int) -> None:
        """A lost or older staging file is replayed up to the target's offset (no mirroring)."""
        target = self._target_offset()
        if self.projector.next_offset >= target:
            return
        if log.end_offset() < target:
            raise errors.DataLossError(f"The {self.target_name} projection has applied offset {target}, beyond "
                                       f"the end of the log ({log.end_offset()})")
        LOG.info("%s: staging at offset %d is behind the target (%d); replaying it", self.target_name,
                 self.projector.next_offset, target)
        Follower(log, ProjectorSink(self.projector.db, projector=self.projector), batch_size).run(until=target)


class StagedSink:
    """A staged projection as a follower's sink: each batch is applied to staging, then
    mirrored into the target. Staging ahead of what this sink last mirrored (a crash between
    the two commits, or a batch applied to staging alone) is in flight: ``drain`` mirrors it."""

    def __init__(self, projection: StagedProjection):
        self.projection = projection
        self.copied: dict[str, int] = {}  # rows written to the target per table, since the caller reset it
        self._mirrored_at: Optional[int] = None  # staging's offset at this sink's last mirror

    @property
    def db(self) -> SqliteBackend:
        return self.projection.projector.db

    @property
    def infrastructure_errors(self) -> tuple:
        return self.projection.projector.db.infrastructure_errors

    @property
    def next_offset(self) -> int:
        return self.projection.projector.next_offset

    @property
    def in_flight(self) -> bool:
        return self._mirrored_at != self.projection.projector.next_offset

    def room(self) -> Optional[int]:
        return None

    def apply(self, batch: list[tuple[int, bytes]]) -> list:
        outcomes = self.projection.projector.apply_batch(batch)
        self.drain()
        return outcomes

    def drain(self, wait: bool = True) -> None:
        """Mirrors what staging holds beyond the target."""
        offset = self.projection.projector.next_offset
        for table, n in self.projection.mirror().items():
            self.copied[table] = self.copied.get(table, 0) + n
        self._mirrored_at = offset

    def restart(self) -> None:
        raise NotImplementedError("a staged projection is not retried")

    def close(self) -> None:
        pass

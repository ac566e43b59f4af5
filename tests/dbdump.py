"""Dumps every MLMD table of a SQLite projection, for comparing two projections."""
from __future__ import annotations

import sqlite3

MLMD_TABLES = ("Type", "TypeProperty", "ParentType", "Artifact", "ArtifactProperty", "Execution",
               "ExecutionProperty", "Context", "ContextProperty", "Event", "EventPath", "Association",
               "Attribution", "ParentContext", "MLMDEnv")
OUR_TABLES = ("mlmdlog_checkpoint", "mlmdlog_outcome")


def dump_tables(path: str, tables=MLMD_TABLES + OUR_TABLES) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {t: sorted(conn.execute(f"SELECT * FROM `{t}`").fetchall(), key=repr) for t in tables}
    finally:
        conn.close()

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


def normalise_value(value):
    """One cell as every backend would show it: BLOBs that hold text as text (MySQL and
    DuckDB return bytes where SQLite kept the text), booleans as 0/1 (DuckDB)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value)
    return value


def normalised(dump: dict) -> dict:
    """A table dump with normalised cells, rows sorted: comparable across backends."""
    return {t: sorted((tuple(normalise_value(v) for v in row) for row in rows), key=repr)
            for t, rows in dump.items()}

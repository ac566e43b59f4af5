"""Throwaway MySQL/MariaDB databases for projection tests, and their table dumps."""
from __future__ import annotations

import uuid

from mlmd_log.projections.mysql import MySqlBackend, MySqlTarget

from dbdump import MLMD_TABLES, OUR_TABLES, normalised

# The MySQL projection's binary collation (unique names that differ in case stay apart)
# also makes LIKE case-sensitive there; on SQLite it ignores ASCII case.
CASE_SENSITIVE_LIKE = {"uri LIKE '/DATA/%'": "LIKE is case-sensitive under the MySQL projection's binary "
                                            "collation, case-insensitive on SQLite"}


def fresh_database(url: str, prefix: str = "mlmdlog_test") -> MySqlTarget:
    """A target on the server of ``url`` with a new, unique database name (created on first open)."""
    return MySqlTarget.from_url(url).with_database(f"{prefix}_{uuid.uuid4().hex[:10]}")


def drop(target: MySqlTarget) -> None:
    db = MySqlBackend(target)
    db.execute(f"DROP DATABASE IF EXISTS `{target.database}`")
    db.close()


def dump_mysql(db: MySqlBackend, tables=MLMD_TABLES + OUR_TABLES) -> dict:
    """Every row of ``tables``, normalised to compare with a SQLite dump."""
    return normalised({t: db.rows(f"SELECT * FROM `{t}`") for t in tables})

"""Runs under the reference interpreter: writes an ml-metadata SQLite database through a
seeded random call history (the oracle generator's calls), a few ms apart so that create
and update times differ, for `mlmd-log import` to read.

    python write_mlmd_db.py PATH SEED N
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from oracle import calls as oracle_calls  # noqa: E402
from oracle import runner  # noqa: E402


def main(path: str, seed: int, n: int) -> None:
    history = oracle_calls.generate(seed, n, "ml_metadata")["calls"]
    lib = runner.load_library("ml_metadata")
    session = runner.Session(lib)
    config = lib.pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = lib.pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    session.store = lib.store_class(config)
    for call in history:
        session.call_raw(call)
        time.sleep(0.002)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))

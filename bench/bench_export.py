"""Export rate of ``mlmd-log export`` (producer/avro_export.py) in records/s, and the rate
an ``avro:///`` archive reads back at. The log is ``--steps`` pipeline steps (bench_mirror's
``pipeline_log``: ``put_execution`` with an input, a new Model and a run context), held in
memory so only the export is measured. Two exports: from the log alone (outcome columns
null), and with a SQLite projection of it (replayed first, not timed) filling the outcome
columns. Files roll at ``--max-file-mb``; each is fsynced. A benchmark prints numbers; it
asserts nothing (tests/test_avro_archive.py checks what the files hold).

    python bench/bench_export.py [--steps 50000] [--max-file-mb 64] [--dir /path/on/disk]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_mirror import pipeline_log  # noqa: E402
from mlmd_log.consumer.replay import replay  # noqa: E402
from mlmd_log.producer.avro_export import OutcomeSource, export_log  # noqa: E402
from mlmd_log.producer.avro_log import AvroLog  # noqa: E402
from mlmd_log.projections.backend import SqliteBackend  # noqa: E402


def directory_mb(path: str) -> float:
    return sum(os.path.getsize(os.path.join(path, name)) for name in os.listdir(path)) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000, help="pipeline steps in the log (records: 2 more)")
    parser.add_argument("--max-file-mb", type=float, default=64, help="file size at which export rolls")
    parser.add_argument("--dir", default=None, help="parent directory for the archives and the projection")
    args = parser.parse_args()
    log = pipeline_log(args.steps)
    records = log.end_offset()
    payload_mb = sum(len(payload) for _, payload in log.read(0)) / 2**20
    print(f"export of {records} records ({payload_mb:.1f} MB of payloads), files up to {args.max_file_mb:g} MB")
    with tempfile.TemporaryDirectory(dir=args.dir) as parent:
        db = SqliteBackend(os.path.join(parent, "projection.sqlite"))
        db.create_schema()
        replay(log, db)
        export_log(log, os.path.join(parent, "warm-up"), until=min(records, 2000))  # (imports, caches: not timed)
        for label, outcomes in (("log alone", None), ("with outcomes", OutcomeSource(db, "projection.sqlite"))):
            archive = os.path.join(parent, label.replace(" ", "-"))
            stats = export_log(log, archive, outcomes, max_file_bytes=int(args.max_file_mb * 2**20))
            print(f"  {label:<14}: {records / stats.seconds:>8,.0f} records/s  ({stats.seconds:.2f} s, "
                  f"{len(stats.files)} files, {directory_mb(archive):.1f} MB)")
        db.close()
        with AvroLog(archive) as archived:
            started = time.perf_counter()
            count = sum(1 for _ in archived.read(0))
            seconds = time.perf_counter() - started
        print(f"  read back     : {count / seconds:>8,.0f} records/s  ({seconds:.2f} s, avro:/// as a replay reads it)")


if __name__ == "__main__":
    main()

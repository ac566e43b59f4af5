"""Lower bounds: how fast could any projection of these workloads be on this machine?

The throughput targets of issues 2 and 5 are ratios against ml-metadata 1.17.1. This bench
measures, in the same run as the reference, what the unavoidable work alone costs: the
rows MLMD's schema requires, inserted by the database's own bulk path from rows built
before the clock starts (no validation, no id assignment, no Python per row beyond the
driver's parameter binding), and the log traffic the design requires. No implementation
that writes those rows can beat these numbers, so they bound the ratio a target can reach.

Part core (issue 2, batched ``put_artifacts``: 100 artifacts, 3 properties each):
  ref:   bench/core_workload.py put_batch under ml-metadata 1.17.1 (its own interpreter).
  floor: per call, BEGIN; one executemany into ``Artifact`` (100 rows) and one into
         ``ArtifactProperty`` (300 rows) of a SQLite file with MLMD's v10 tables and
         indexes only, WAL and synchronous=OFF (cheaper than any durable setting); COMMIT.
         Plus the durable log append a put needs: the serialized request written to a file
         and fdatasync'd. Floor per call = both; best ratio reachable = ref / floor.
Part scaleout (issue 5, pipeline steps: put_execution with 1 input, 1 output, 1 context):
  ref:   8 ml-metadata processes on one MariaDB database (bench/scaleout_worker.py, --seconds).
  floor: the 7 rows a step adds to MLMD's tables (Execution, ExecutionProperty, Artifact,
         ArtifactProperty, 2 Events, Attribution, Association; the input artifact's update
         time once per worker per transaction) inserted into a fresh MariaDB database with
         the official MySQL schema, 2,000 steps per transaction, multi-row INSERTs; the
         server's CPU is read from /proc. Then the step's log record (the real envelope)
         produced to and consumed from a fresh Kafka topic with kafka-python as KafkaLog
         does; the broker's CPU is read from /proc. The sum is the CPU a step costs at the
         very least; 2 cores divided by it bound the aggregate steps/s.

Needs the services of bench_scaleout.py (``compose/kafka.sh``, ``compose/mariadb.sh``) for
the scaleout part. Reports, asserts nothing.

    python bench/bench_floor.py [--only core|scaleout] [--steps 40000] [--calls 300] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from benchlib import ref_python, step_parts, step_request, time_calls  # noqa: E402

CORE_TARGET = 5.0  # issue 2: batched put_artifacts, ours/theirs
AGGREGATE_TARGET = 10.0  # issue 5: 8 writers' steps/s, ours/theirs
PROJECTOR_TARGET = 20_000  # issue 5: records/s into MySQL
STEPS_PER_TXN = 2_000
CORES = os.cpu_count() or 1
HZ = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (another one: the database server, the broker)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def own_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pid_of(pattern: str) -> int:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    if not out:
        raise SystemExit(f"no process matches {pattern!r}: start the services first (compose/*.sh start)")
    return int(out[0])


def measured(fn: Callable[[], Any], server_pid: int = 0) -> Dict[str, float]:
    """Wall seconds, this process's CPU seconds and (optionally) a server's CPU seconds of fn()."""
    s0 = process_cpu_s(server_pid) if server_pid else 0.0
    c0, t0 = own_cpu_s(), time.perf_counter()
    fn()
    wall, client = time.perf_counter() - t0, own_cpu_s() - c0
    server = process_cpu_s(server_pid) - s0 if server_pid else 0.0
    return {"wall_s": wall, "client_cpu_s": client, "server_cpu_s": server}


# ----------------------------------------------------------------------------- core (issue 2)

def artifact_rows(first_id: int, count: int, type_id: int, now: int) -> Tuple[list, list]:
    """The Artifact and ArtifactProperty rows of core_workload's batch (3 properties each)."""
    artifacts, props = [], []
    for n in range(first_id, first_id + count):
        artifacts.append((n, type_id, f"/data/bench/{n}", None, None, None, now, now))
        props.append((n, "p_int", 0, n, None, None, None, None, None))
        props.append((n, "p_str", 0, None, None, f"value-{n}", None, None, None))
        props.append((n, "p_double", 0, None, n * 0.5, None, None, None, None))
    return artifacts, props


def core_floor(calls: int, workdir: str) -> Dict[str, Any]:
    from mlmd_log.projections import ddl
    from mlmd_log.proto import metadata_store_service_pb2 as svc

    conn = sqlite3.connect(os.path.join(workdir, "floor.sqlite"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")  # 256 MiB: every page stays cached
    for statement in ddl.SQLITE_MLMD:
        conn.execute(statement)
    batches = [artifact_rows(1 + i * 100, 100, 1, 1_700_000_000_000 + i) for i in range(calls)]
    insert_artifact = ("INSERT INTO `Artifact` (`id`, `type_id`, `uri`, `state`, `name`, `external_id`, "
                       "`create_time_since_epoch`, `last_update_time_since_epoch`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
    insert_property = ("INSERT INTO `ArtifactProperty` (`artifact_id`, `name`, `is_custom_property`, `int_value`, "
                       "`double_value`, `string_value`, `byte_value`, `proto_value`, `bool_value`) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")

    def insert(i: int) -> None:
        artifacts, props = batches[i]
        conn.execute("BEGIN")
        conn.executemany(insert_artifact, artifacts)
        conn.executemany(insert_property, props)
        conn.execute("COMMIT")

    sql_ms = time_calls(insert, calls, budget_s=3600)["p50_ms"]
    conn.close()

    request = svc.PutArtifactsRequest()
    for n in range(1, 101):
        a = request.artifacts.add(type_id=1, uri=f"/data/bench/{n}")
        a.properties["p_int"].int_value = n
        a.properties["p_str"].string_value = f"value-{n}"
        a.properties["p_double"].double_value = n * 0.5
    payload = request.SerializeToString()
    fd = os.open(os.path.join(workdir, "floor.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def append(_: int) -> None:
        os.write(fd, payload)
        os.fdatasync(fd)

    log_ms = time_calls(append, calls, budget_s=3600)["p50_ms"]
    os.close(fd)
    return {"calls": calls, "sql_ms": round(sql_ms, 3), "log_ms": round(log_ms, 3),
            "floor_ms": round(sql_ms + log_ms, 3), "payload_bytes": len(payload)}


def core_side(impl: str, python: str) -> Dict[str, Any]:
    cmd = [python, os.path.join(HERE, "core_workload.py"), "--impl", impl, "--only", "put_batch"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"{impl}: core_workload failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])["workloads"]["put_batch"]


def part_core(args: argparse.Namespace) -> Dict[str, Any]:
    print("# core: reference put_batch", file=sys.stderr, flush=True)
    ref = core_side("ref", ref_python(args.ref_python))
    print("# core: ours put_batch", file=sys.stderr, flush=True)
    ours = core_side("ours", sys.executable)
    print("# core: floor", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="mlmd-floor-") as workdir:
        floor = core_floor(args.calls, workdir)
    ref_ms, ours_ms = 1000 / ref["ops_per_s"], 1000 / ours["ops_per_s"]
    return {"ref_ms": round(ref_ms, 3), "ours_ms": round(ours_ms, 3), **floor,
            "ours_ratio": round(ref_ms / ours_ms, 2), "best_ratio": round(ref_ms / floor["floor_ms"], 2),
            "sql_only_ratio": round(ref_ms / floor["sql_ms"], 2), "target": CORE_TARGET}


def print_core(c: Dict[str, Any]) -> str:
    lines = ["## core: put_artifacts, 100 artifacts with 3 properties per call (issue 2)", "",
             "| what | ms per call | ratio ref/this |", "|---|---|---|",
             f"| ml-metadata 1.17.1 (SQLite, its durable defaults) | {c['ref_ms']:.3f} | 1.00x |",
             f"| mlmd-log (FileLog fsync + SQLite projection) | {c['ours_ms']:.3f} | {c['ours_ratio']:.2f}x |",
             f"| floor: MLMD's rows alone, executemany, synchronous=OFF | {c['sql_ms']:.3f} | "
             f"{c['sql_only_ratio']:.2f}x |",
             f"| floor: those rows + the log append with fdatasync ({c['payload_bytes']:,} B) | {c['floor_ms']:.3f} | "
             f"{c['best_ratio']:.2f}x |", "",
             f"Target {c['target']:g}x needs at most {c['ref_ms'] / c['target']:.3f} ms per call; "
             f"the floor is {c['floor_ms']:.3f} ms, so the best reachable ratio on this machine is "
             f"{c['best_ratio']:.2f}x ({c['calls']} calls, medians)."]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- scale-out (issue 5)

def step_rows(steps: int, workers: int, now: int) -> List[Dict[str, list]]:
    """Per transaction of STEPS_PER_TXN steps, the rows each MLMD table gains.

    Ids as the projector assigns them: types 1-4, seed artifacts 1..workers, contexts
    1..workers; step s creates execution s, artifact workers+s, events 2s-1 and 2s,
    attribution workers+s (the seed's attribution to its run exists from the first step)
    and association s."""
    txns = []
    for base in range(0, steps, STEPS_PER_TXN):
        rows: Dict[str, list] = {name: [] for name in TABLES}
        for s in range(base + 1, min(steps, base + STEPS_PER_TXN) + 1):
            w = s % workers
            artifact = workers + s
            t = now + s
            rows["Execution"].append((s, 3, 3, None, None, t, t))
            rows["ExecutionProperty"].append((s, "step", 0, s, None, None, None, None, None))
            rows["Artifact"].append((artifact, 2, f"bench://w{w}/model/{s}", None, None, None, t, t))
            rows["ArtifactProperty"].append((artifact, "version", 0, s, None, None, None, None, None))
            rows["Event"].append((2 * s - 1, 1 + w, s, 3, t))
            rows["Event"].append((2 * s, artifact, s, 4, t))
            rows["Attribution"].append((workers + s, 1 + w, artifact))
            rows["Association"].append((s, 1 + w, s))
        rows["seed_update"] = [(now + base + 1, 1 + w) for w in range(workers)]
        txns.append(rows)
    return txns


_PROPS = "`name`, `is_custom_property`, `int_value`, `double_value`, `string_value`, `byte_value`, " \
         "`proto_value`, `bool_value`"
TABLES = {
    "Execution": "INSERT INTO `Execution` (`id`, `type_id`, `last_known_state`, `name`, `external_id`, "
                 "`create_time_since_epoch`, `last_update_time_since_epoch`) VALUES (%s, %s, %s, %s, %s, %s, %s)",
    "ExecutionProperty": f"INSERT INTO `ExecutionProperty` (`execution_id`, {_PROPS}) "
                         "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
    "Artifact": "INSERT INTO `Artifact` (`id`, `type_id`, `uri`, `state`, `name`, `external_id`, "
                "`create_time_since_epoch`, `last_update_time_since_epoch`) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
    "ArtifactProperty": f"INSERT INTO `ArtifactProperty` (`artifact_id`, {_PROPS}) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
    "Event": "INSERT INTO `Event` (`id`, `artifact_id`, `execution_id`, `type`, `milliseconds_since_epoch`) "
             "VALUES (%s, %s, %s, %s, %s)",
    "Attribution": "INSERT INTO `Attribution` (`id`, `context_id`, `artifact_id`) VALUES (%s, %s, %s)",
    "Association": "INSERT INTO `Association` (`id`, `context_id`, `execution_id`) VALUES (%s, %s, %s)",
}


def _fresh_step_database(env: Any, name: str, workers: int, now: int) -> Any:
    """A new database with the official schema, the seeds and runs the steps refer to; a connection."""
    from mlmd_log.locations import open_projection

    db = env.database(name)
    open_projection(env.projection_url(db)).close()  # creates the database and MLMD's tables
    conn = env.connect(db, autocommit=False, local_infile=True)
    with conn.cursor() as cur:
        cur.executemany(TABLES["Artifact"], [(1 + w, 1, f"bench://w{w}/examples", None, None, None, now, now)
                                             for w in range(workers)])
        cur.executemany("INSERT INTO `Context` (`id`, `type_id`, `name`, `create_time_since_epoch`, "
                        "`last_update_time_since_epoch`) VALUES (%s, 4, %s, %s, %s)",
                        [(1 + w, f"run-{w}", now, now) for w in range(workers)])
        cur.executemany("INSERT INTO `Attribution` (`id`, `context_id`, `artifact_id`) VALUES (%s, %s, %s)",
                        [(1 + w, 1 + w, 1 + w) for w in range(workers)])
    conn.commit()
    return conn


def _tsv_cell(value: Any) -> str:
    return "\\N" if value is None else str(value)  # (the step rows hold no tab, newline or backslash)


def mysql_floor(env: Any, steps: int, workers: int, workdir: str) -> Dict[str, Any]:
    """The step rows into fresh MariaDB databases with the official schema, two ways: multi-row
    INSERTs (what PyMySQL's executemany sends) and LOAD DATA LOCAL INFILE of tab-separated files
    written beforehand (the server's cheapest bulk path). Server + client CPU of each."""
    now = 1_700_000_000_000
    txns = step_rows(steps, workers, now)
    server = pid_of("mariadbd")
    out: Dict[str, Any] = {"steps": steps}

    conn = _fresh_step_database(env, "floor_insert", workers, now)

    def insert_all() -> None:
        with conn.cursor() as cur:
            for rows in txns:
                for table, sql in TABLES.items():
                    cur.executemany(sql, rows[table])  # PyMySQL sends one multi-row INSERT per call
                cur.executemany("UPDATE `Artifact` SET `last_update_time_since_epoch` = %s WHERE `id` = %s",
                                rows["seed_update"])
                conn.commit()

    out["insert"] = per_step(measured(insert_all, server), steps)
    conn.close()

    files = []
    for number, rows in enumerate(txns):
        paths = {}
        for table in TABLES:
            paths[table] = os.path.join(workdir, f"{number}-{table}.tsv")
            with open(paths[table], "w") as f:
                f.writelines("\t".join(map(_tsv_cell, row)) + "\n" for row in rows[table])
        files.append(paths)
    columns = {table: sql.split("(", 1)[1].split(")", 1)[0] for table, sql in TABLES.items()}
    conn = _fresh_step_database(env, "floor_load", workers, now)

    def load_all() -> None:
        with conn.cursor() as cur:
            for rows, paths in zip(txns, files):
                for table, path in paths.items():
                    cur.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE `{table}` ({columns[table]})")
                cur.executemany("UPDATE `Artifact` SET `last_update_time_since_epoch` = %s WHERE `id` = %s",
                                rows["seed_update"])
                conn.commit()

    out["load"] = per_step(measured(load_all, server), steps)
    conn.close()
    return out


def per_step(m: Dict[str, float], steps: int) -> Dict[str, float]:
    return {"steps_per_s": round(steps / m["wall_s"]), "client_us": round(m["client_cpu_s"] / steps * 1e6, 1),
            "server_us": round(m["server_cpu_s"] / steps * 1e6, 1),
            "cpu_us": round((m["client_cpu_s"] + m["server_cpu_s"]) / steps * 1e6, 1)}


def kafka_floor(env: Any, steps: int, workers: int) -> Dict[str, Any]:
    """The steps' real log records produced (acks=all, idempotent, batches of 2,000) and read back."""
    from mlmd_log.producer.kafka_log import KafkaLog
    from mlmd_log.producer.records import RecordFactory
    from mlmd_log.proto import metadata_store_pb2 as pb
    from mlmd_log.proto import metadata_store_service_pb2 as svc

    factory = RecordFactory("bench-floor")
    payloads = []
    for s in range(1, steps + 1):
        w = s % workers
        seed = pb.Artifact(id=1 + w, type_id=1, uri=f"bench://w{w}/examples")
        seed.properties["span"].int_value = 1
        request = step_request(pb, svc, step_parts(pb, s, w, model_type=2, trainer_type=3, run_type=4), seed)
        payloads.append(factory.payload("PutExecution", request)[0])
    broker = pid_of("kafka.Kafka")
    log = KafkaLog.from_url(env.topic_url("floor"), create=True)
    try:
        def produce() -> None:
            for base in range(0, steps, STEPS_PER_TXN):
                log.append(payloads[base:base + STEPS_PER_TXN])

        def consume() -> None:
            read = 0
            while read < steps:
                for _ in log.read(read, STEPS_PER_TXN):
                    read += 1

        produced = measured(produce, broker)
        consumed = measured(consume, broker)
    finally:
        log.close()
    return {"steps": steps, "record_bytes": round(sum(map(len, payloads)) / steps),
            "produce": per_step(produced, steps), "consume": per_step(consumed, steps)}


def part_scaleout(args: argparse.Namespace) -> Dict[str, Any]:
    import bench_scaleout as so

    env = so.Env(args.kafka, so.mysql_base_url(args.mysql_url))
    out: Dict[str, Any] = {}
    try:
        ref = ref_python(args.ref_python)
        db = env.database("floor_ref")
        ref_args = ["--impl", "ref", "--mysql", env.ref_spec(db)]
        print(f"# scaleout: {args.workers} x ml-metadata 1.17.1, {args.seconds:g} s", file=sys.stderr, flush=True)
        subprocess.run([ref, so.WORKER, "--worker", "99", "--start-at", "0", "--stop-at", "0", "--setup-only",
                        *ref_args], check=True, capture_output=True, cwd=ROOT)
        merged = so.run_workers(ref, ref_args, args.workers, args.seconds, warmup=8.0)
        out["ref"] = so.summarize("ref", merged, args.workers)
        print("# scaleout: MariaDB floor", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="mlmd-floor-") as workdir:
            out["mysql"] = mysql_floor(env, args.steps, args.workers, workdir)
        print("# scaleout: Kafka floor", file=sys.stderr, flush=True)
        out["kafka"] = kafka_floor(env, args.steps, args.workers)
    finally:
        if not args.keep:
            env.drop_databases()
            env.delete_topics()
    mysql_us = min(out["mysql"]["insert"]["cpu_us"], out["mysql"]["load"]["cpu_us"])  # the cheaper bulk path
    cpu_us = mysql_us + out["kafka"]["produce"]["cpu_us"] + out["kafka"]["consume"]["cpu_us"]
    out["floor_cpu_us_per_step"] = round(cpu_us, 1)
    out["max_steps_per_s"] = round(CORES * 1e6 / cpu_us)
    # The projector alone: reading the log and loading the rows, client and server, nothing else running.
    out["projector_cpu_us_per_step"] = round(mysql_us + out["kafka"]["consume"]["cpu_us"], 1)
    ref_rate = out["ref"]["steps_per_s"]
    out["best_ratio"] = round(out["max_steps_per_s"] / ref_rate, 2)
    out["targets"] = {"aggregate_ratio": AGGREGATE_TARGET, "projector_records_per_s": PROJECTOR_TARGET}
    return out


def print_scaleout(s: Dict[str, Any]) -> str:
    m, k = s["mysql"], s["kafka"]
    ref_rate = s["ref"]["steps_per_s"]
    projector_us = s["projector_cpu_us_per_step"]
    left_us = CORES * 1e6 / PROJECTOR_TARGET - projector_us
    row = "| {} | {:,} | {} | {} |"
    lines = ["## scale-out: pipeline steps, 8 writers, Kafka, MariaDB (issue 5)", "",
             "| what | steps/s (wall) | client CPU us/step | server CPU us/step |", "|---|---|---|---|",
             f"| ml-metadata 1.17.1, {s['ref']['workers']} processes, one MariaDB database | {ref_rate:,.0f} | | |",
             row.format(f"floor: MLMD's 7 rows per step into MariaDB, multi-row INSERTs, {STEPS_PER_TXN:,} steps per "
                        "transaction", m["insert"]["steps_per_s"], m["insert"]["client_us"], m["insert"]["server_us"]),
             row.format("floor: the same rows by LOAD DATA LOCAL INFILE of files written beforehand",
                        m["load"]["steps_per_s"], m["load"]["client_us"], m["load"]["server_us"]),
             row.format(f"floor: produce the step's record ({k['record_bytes']} B) to Kafka, acks=all",
                        k["produce"]["steps_per_s"], k["produce"]["client_us"], k["produce"]["server_us"]),
             row.format("floor: consume it (kafka-python, as the projector reads)",
                        k["consume"]["steps_per_s"], k["consume"]["client_us"], k["consume"]["server_us"]), "",
             f"- Projector target {PROJECTOR_TARGET:,} records/s into MySQL: reading the records and loading their "
             f"rows by the cheaper path cost {projector_us} us of CPU per step, client and server. At the target "
             f"rate {CORES} cores leave {left_us:.0f} us per record for everything else (validation, ids, staging, "
             f"formatting the rows, outcomes).",
             f"- Aggregate target {AGGREGATE_TARGET:g}x = {AGGREGATE_TARGET * ref_rate:,.0f} steps/s. The floor costs "
             f"{s['floor_cpu_us_per_step']} us of CPU per step (rows into MariaDB by the cheaper path + produce + "
             f"consume, client and server), so {CORES} cores carry at most {s['max_steps_per_s']:,} steps/s = "
             f"{s['best_ratio']:.2f}x the reference, with no validation, no staging and no outcome delivery."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["core", "scaleout"])
    parser.add_argument("--calls", type=int, default=300, help="core: batched calls timed for the floor")
    parser.add_argument("--steps", type=int, default=40_000, help="scaleout: pipeline steps for the floors")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0, help="scaleout: reference run")
    parser.add_argument("--kafka", default="127.0.0.1:9092")
    parser.add_argument("--mysql-url", default=None)
    parser.add_argument("--ref-python", default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    result: Dict[str, Any] = {"cores": CORES}
    text = [f"# Floors, {time.strftime('%Y-%m-%dT%H:%M:%S')}, {CORES} cores"]
    if args.only in (None, "core"):
        result["core"] = part_core(args)
        text.append(print_core(result["core"]))
    if args.only in (None, "scaleout"):
        result["scaleout"] = part_scaleout(args)
        text.append(print_scaleout(result["scaleout"]))
    print("\n\n".join(text))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

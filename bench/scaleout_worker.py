"""One pipeline-step writer process of ``bench/bench_scaleout.py`` (runs under either interpreter).

A step is MLMD's ``put_execution``: a new execution (``Trainer``, one INT property), the
previous step's output as INPUT (given with its id), a new ``Model`` artifact as OUTPUT,
and the worker's run context ``run-W`` reused (``reuse_context_if_already_exist``).

* ``--impl ref``: ml-metadata 1.17.1 in-process on a MariaDB database
  (``ConnectionConfig.mysql``). The client's own AbortedError retry (5 tries, about 2 s
  mean back-off) is turned off with ``retry_options.max_num_retries = 1``; this worker
  retries any failed step itself after a short random back-off (<= 200 ms) and counts
  the failures by error class. A step's latency runs until it succeeded.
* ``--impl ours --mode sync``: ``mlmd_log.MetadataStore(SharedLogConfig(kafka, mysql))``;
  each put returns once the projector applied it (read-your-writes).
* ``--impl ours --mode async``: ``store.async_puts()``; ``submit`` returns a Future.
  The step's INPUT is the worker's seed artifact (the previous output's id is not known
  until applied). With ``--rate`` the worker submits on a fixed schedule (steady state);
  without it, it keeps at most ``--window`` steps outstanding. A paced worker wakes at most
  every 5 ms and submits the steps due by then. It stops submitting at the
  deadline, then flushes; a step's latency runs from submit to its Future's result.
  At most ``--window`` steps are outstanding in both cases (bounded memory and a bounded
  final flush); with ``--rate``, a submit that finds the window full is a counted stall.

Every worker waits for the common ``--start-at`` instant (wall clock) and stops at
``--stop-at``. Prints one JSON document on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from typing import Any, Callable, Dict, List

from benchlib import pipeline_types, step_parts, step_request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# With --rate, the worker sleeps at least this long between submits (a sleep per step, at
# 600 steps/s, cost it more CPU than the steps themselves); the rate holds over any 5 ms.
PACING_TICK_S = 0.005


def open_store(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(store, metadata_store_pb2, the errors module) for the implementation asked for."""
    if args.impl == "ref":
        import ml_metadata as mlmd
        from ml_metadata import errors
        from ml_metadata.proto import metadata_store_pb2 as pb

        host, port, database, user, password = args.mysql.split(":", 4)
        config = pb.ConnectionConfig()
        config.mysql.host, config.mysql.port, config.mysql.database = host, int(port), database
        config.mysql.user, config.mysql.password = user, password
        config.retry_options.max_num_retries = 1  # retried (and counted) here instead
        return mlmd.MetadataStore(config), pb, errors
    sys.path.insert(0, ROOT)
    import mlmd_log
    from mlmd_log import errors
    from mlmd_log.proto import metadata_store_pb2 as pb
    from mlmd_log.client import SharedLogConfig

    store = mlmd_log.MetadataStore(SharedLogConfig(args.log, args.projection, wait_timeout_s=120.0))
    return store, pb, errors


class Worker:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.rng = random.Random(args.worker)
        self.store, self.pb, self.errors = open_store(args)
        self.retries: Dict[str, int] = {}
        self.setup_retries: Dict[str, int] = {}
        self.lat_us: List[int] = []
        pb = self.pb
        self.types = self.retrying(self._types, self.setup_retries)
        ex_type = self.types[0]
        seed = pb.Artifact(type_id=ex_type, uri=f"bench://w{args.worker}/examples")
        seed.properties["span"].int_value = 1
        [seed_id] = self.retrying(lambda: self.store.put_artifacts([seed]), self.setup_retries)
        self.seed = pb.Artifact(id=seed_id, type_id=ex_type, uri=seed.uri)
        self.seed.properties["span"].int_value = 1

    def _types(self) -> tuple:
        at, mt, et, ct = pipeline_types(self.pb)
        s = self.store
        return (s.put_artifact_type(at), s.put_artifact_type(mt), s.put_execution_type(et), s.put_context_type(ct))

    def retrying(self, fn: Callable[[], Any], counts: Dict[str, int]) -> Any:
        """Runs fn until it succeeds, counting failures by class, as a pipeline runner would."""
        for attempt in range(1000):
            try:
                return fn()
            except self.errors.StatusError as exc:
                counts[type(exc).__name__] = counts.get(type(exc).__name__, 0) + 1
                time.sleep(min(0.2, 0.005 * (attempt + 1)) * self.rng.random())
        raise SystemExit("gave up after 1000 attempts")

    def step_parts(self, step: int) -> tuple:
        _, model_type, trainer_type, run_type = self.types
        return step_parts(self.pb, step, self.args.worker, model_type, trainer_type, run_type)

    @staticmethod
    def wait_until(t: float) -> None:
        while True:
            left = t - time.time()
            if left <= 0:
                return
            time.sleep(min(left, 0.01))

    # -- synchronous: ref, or ours with each put waiting for the projector -----------
    def run_sync(self) -> Dict[str, Any]:
        pb = self.pb
        prev = self.seed
        step = 0
        self.wait_until(self.args.start_at)
        started = time.time()
        while time.time() < self.args.stop_at:
            step += 1
            execution, model, run = self.step_parts(step)
            t0 = time.perf_counter()
            _, artifact_ids, _ = self.retrying(lambda: self.store.put_execution(
                execution, [(prev, pb.Event(type=pb.Event.INPUT)), (model, pb.Event(type=pb.Event.OUTPUT))], [run],
                reuse_context_if_already_exist=True), self.retries)
            self.lat_us.append(round((time.perf_counter() - t0) * 1e6))
            model.id = artifact_ids[-1]
            prev = model
        return {"steps": len(self.lat_us), "started": started, "finished": time.time()}

    # -- asynchronous: ours, futures --------------------------------------------------
    def run_async(self) -> Dict[str, Any]:
        from mlmd_log.proto import metadata_store_service_pb2 as svc

        pb = self.pb
        puts = self.store.async_puts()
        lock = threading.Lock()
        failures: Dict[str, int] = {}
        outstanding = threading.Semaphore(self.args.window)

        def done_callback(t0: float) -> Callable[[Any], None]:
            def record(future: Any) -> None:
                elapsed = round((time.perf_counter() - t0) * 1e6)
                exc = future.exception()
                with lock:
                    if exc is None:
                        self.lat_us.append(elapsed)
                    else:
                        failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
                outstanding.release()
            return record

        step = 0
        stalls = 0
        self.wait_until(self.args.start_at)
        started = time.time()
        interval = 1.0 / self.args.rate if self.args.rate else 0.0
        while True:
            now = time.time()
            if now >= self.args.stop_at:
                break
            if interval:
                due = started + step * interval
                if due > now:  # (a wake-up every PACING_TICK_S at most: the steps due by then go at once)
                    time.sleep(min(max(due - now, PACING_TICK_S), 0.05))
                    continue
            if not outstanding.acquire(blocking=False):
                stalls += 1  # --window steps outstanding: the store is not keeping up with --rate
                outstanding.acquire()
            step += 1
            request = step_request(pb, svc, self.step_parts(step), self.seed)
            t0 = time.perf_counter()
            puts.submit("PutExecution", request).add_done_callback(done_callback(t0))
        submitted_until = time.time()
        puts.flush()
        finished = time.time()
        puts.close()
        for name, count in failures.items():
            self.retries[name] = self.retries.get(name, 0) + count
        return {"steps": len(self.lat_us), "submitted": step, "started": started, "finished": finished,
                "submit_stopped": submitted_until, "schedule_stalls": stalls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=["ref", "ours"], required=True)
    parser.add_argument("--mode", choices=["sync", "async"], default="sync")
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--start-at", type=float, required=True)
    parser.add_argument("--stop-at", type=float, required=True)
    parser.add_argument("--mysql", help="ref: HOST:PORT:DATABASE:USER:PASSWORD")
    parser.add_argument("--log", help="ours: kafka://HOST:PORT/TOPIC")
    parser.add_argument("--projection", help="ours: mysql://USER:PASSWORD@HOST:PORT/DATABASE")
    parser.add_argument("--rate", type=float, default=0.0, help="async: steps/s of this worker (0: windowed)")
    parser.add_argument("--window", type=int, default=200, help="async: most outstanding steps")
    parser.add_argument("--setup-only", action="store_true",
                        help="create the schema and types, then exit (run once before the workers)")
    args = parser.parse_args()
    ready_at = time.time()
    worker = Worker(args)
    ready = time.time() - ready_at
    if args.setup_only:
        print(json.dumps({"setup_errors": worker.setup_retries, "ready_s": round(ready, 2)}))
        return
    if args.mode == "async":
        if args.impl != "ours":
            raise SystemExit("--mode async is mlmd-log's (store.async_puts)")
        result = worker.run_async()
    else:
        result = worker.run_sync()
    result.update(lat_us=worker.lat_us, errors=worker.retries, setup_errors=worker.setup_retries,
                  ready_s=round(ready, 2), late_start=ready_at + ready > args.start_at)
    close = getattr(worker.store, "close", None)
    if close is not None:
        close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()

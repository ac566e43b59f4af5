"""``KafkaLog``: the scale-out log: one Kafka topic with one partition.

One partition is what keeps a total order, which the projector needs to assign ids
the way MLMD does; throughput comes from batching (many records per produce request),
not from partitions. Offsets are the partition's Kafka offsets, so they are 0-based
and consecutive like every ``Log``'s.

Writing (``append``):

* The producer is idempotent (kafka-python >= 3: ``enable_idempotence=True``) with
  ``acks='all'``, unlimited retries within ``delivery_timeout_ms`` and one request in
  flight per connection, so a retried batch is neither duplicated nor reordered by
  the broker. A record that was sent but whose outcome is unknown (the call raised
  ``UnavailableError``) may or may not be in the log; retrying the put is safe
  because every envelope carries a record id that the projector deduplicates.
* ``append`` returns the offsets from the broker's acknowledgements. Records of one
  call are queued under one lock, so they are contiguous among this process's
  appends; across processes a call's records are contiguous when they go in one
  produce request: they fit in one producer batch (``batch_size``) and the sender
  does not take the batch while the call is still adding to it (it waits ``linger_ms``
  for more, so only a call stalled for longer than that is split). Single-record puts
  always are; nothing here relies on more (outcomes are looked up by offset).
* ``linger_ms`` and ``batch_size`` trade a little latency for many records per
  request: concurrent callers (threads of a gRPC server, or a worker logging
  asynchronously) share produce requests, Kafka's form of group commit.

Durability: with ``durability="fsync"`` (the default) the topic is created with
``flush.messages=1``, so the broker fsyncs each appended batch before acknowledging
it, like ``FileLog``; this is what a single broker needs to survive power loss.
``"group"`` is accepted as a synonym (FileLog's name; Kafka groups anyway). With
``durability="replication"`` (or ``"none"``) the topic relies on replication instead
(use a replication factor of 3 and ``min.insync.replicas=2`` on a real cluster). The
policy is a topic setting, applied when the topic is created; an existing topic
keeps its own.

History: the topic is created with ``retention.ms=-1`` and ``retention.bytes=-1``
and ``cleanup.policy=delete``: nothing is ever deleted or compacted, because the
log is the only source of truth and a projection is rebuilt by replaying it from
offset 0. To keep the broker's disks bounded, copy old records to a FileLog archive
and drop them from the topic (``mlmd-log archive --trim``, producer/archive.py; readers
that start below the topic's first offset then read ``kafka://...?archive=DIR``), or
let the brokers move old segments to Kafka's tiered storage
(``remote.storage.enable=true``, KIP-405). A reader that asks for an offset the topic
no longer holds gets ``DataLossError``, never a silent gap.

Errors: a broker that cannot be reached, or does not answer within ``timeout_s``,
raises ``mlmd_log.errors.UnavailableError`` (retryable) with the address and what
was being done; kafka-python's exceptions never escape.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Iterator, Mapping, Sequence

from mlmd_log.errors import (
    DataLossError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    StatusError,
    UnavailableError,
)
from mlmd_log.producer.base import Log, check_read_args, check_records
from mlmd_log.urls import parse_log_url

try:  # optional dependency: pip install 'mlmd-log[kafka]'
    import kafka
    import kafka.errors as kafka_errors
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
except ImportError:  # pragma: no cover - exercised only without the extra
    kafka = None

logger = logging.getLogger(__name__)

PARTITION = 0
#: "fsync" (and "group", FileLog's name for the same guarantee): the broker fsyncs each
#: batch before acknowledging it. "replication" (and "none"): acknowledged once every
#: in-sync replica has it in memory; durable against power loss only through replicas.
DURABILITY_POLICIES = ("fsync", "group", "replication", "none")
#: Largest record accepted by default; the topic's max.message.bytes is set to match.
DEFAULT_MAX_RECORD_BYTES = 8 * 1024 * 1024
#: Room for Kafka's batch and record headers on top of the payload.
_BATCH_OVERHEAD = 64 * 1024
_POLL_MS = 500
_WAITED_RECORDS = 10_000  # most records wait_for_records keeps for the next read


def parse_kafka_url(url: str) -> tuple[str, str]:
    """``kafka://HOST:PORT[,HOST:PORT...]/TOPIC`` -> (bootstrap servers, topic); no options
    (``?archive=DIR`` names an archived log as well: locations.open_log opens that)."""
    where = parse_log_url(url)
    if where.kind != "kafka" or where.archive is not None:
        raise InvalidArgumentError(f"not a Kafka log URL: {url!r} (expected kafka://HOST:PORT/TOPIC)")
    return where.bootstrap, where.topic


class KafkaLog(Log):
    """A ``Log`` on one single-partition Kafka topic.

    ``bootstrap``: ``"host:port"`` (comma-separated for several brokers) or a list.
    ``create``: create the topic if it is absent (else ``NotFoundError``).
    ``timeout_s``: bound on connecting, on each append's acknowledgement and on reads
    before ``UnavailableError`` is raised.
    ``producer_config`` / ``consumer_config``: extra kafka-python settings, applied last.
    """

    def __init__(
        self,
        bootstrap: str | Sequence[str],
        topic: str,
        *,
        create: bool = True,
        durability: str = "fsync",
        replication_factor: int = -1,
        timeout_s: float = 30.0,
        linger_ms: int = 2,
        batch_size: int = 1024 * 1024,
        compression_type: str | None = None,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        client_id: str = "mlmd-log",
        topic_configs: Mapping[str, str] | None = None,
        producer_config: Mapping[str, Any] | None = None,
        consumer_config: Mapping[str, Any] | None = None,
    ) -> None:
        if kafka is None:
            raise FailedPreconditionError(
                "KafkaLog needs kafka-python: pip install 'mlmd-log[kafka]'"
            )
        if durability not in DURABILITY_POLICIES:
            raise InvalidArgumentError(
                f"durability must be one of {DURABILITY_POLICIES}, got {durability!r}"
            )
        if not topic:
            raise InvalidArgumentError("KafkaLog needs a topic name")
        self.bootstrap = bootstrap if isinstance(bootstrap, str) else ",".join(bootstrap)
        self.topic = topic
        self.durability = durability
        self.timeout_s = timeout_s
        self.max_record_bytes = max_record_bytes
        self._tp = TopicPartition(topic, PARTITION)
        timeout_ms = max(1, int(timeout_s * 1000))
        self._common = {
            "bootstrap_servers": self.bootstrap.split(","),
            "client_id": client_id,
            "bootstrap_timeout_ms": timeout_ms,
            "request_timeout_ms": max(1000, timeout_ms // 2),
            # Reconnect quickly once a broker is back, instead of backing off to 30 s.
            "reconnect_backoff_max_ms": 1000,
        }
        self._consumer_config = {
            **self._common,
            "group_id": None,  # offsets are ours to track (the projection's checkpoint)
            "enable_auto_commit": False,
            "auto_offset_reset": "none",  # an offset the topic no longer has is an error
            "max_partition_fetch_bytes": max_record_bytes + _BATCH_OVERHEAD,
            "fetch_max_bytes": max(52428800, max_record_bytes + _BATCH_OVERHEAD),
            "metrics_enabled": False,  # (we read none; their sensors cost CPU on every fetch)
            **dict(consumer_config or {}),
        }
        self._send_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._idle_consumers: list[Any] = []
        self._closed = False
        self._producer = None
        self._known_end = 0  # the highest end offset a request or fetch answer gave (see end_offset_beyond)
        # Records the last wait_for_records fetched, (first offset, records): the read from
        # that offset starts with them instead of fetching them again.
        self._waited: tuple[int, list[Any]] | None = None
        self._connect("connecting to", lambda: self._ensure_topic(
            create, replication_factor, dict(topic_configs or {})
        ))
        producer_settings = {
            **self._common,
            "acks": "all",
            "enable_idempotence": True,
            "retries": float("inf"),
            "max_in_flight_requests_per_connection": 1,
            "delivery_timeout_ms": timeout_ms + linger_ms + 1000,
            "max_block_ms": timeout_ms,
            "linger_ms": linger_ms,
            "batch_size": batch_size,
            "max_request_size": max_record_bytes + _BATCH_OVERHEAD,
            "compression_type": compression_type,
            "metrics_enabled": False,  # (we read none; their sensors cost CPU on every send)
            **dict(producer_config or {}),
        }
        self._producer = self._connect("connecting a producer to", lambda: KafkaProducer(**producer_settings))

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> "KafkaLog":
        """``KafkaLog.from_url("kafka://127.0.0.1:9092/mlmd")``."""
        bootstrap, topic = parse_kafka_url(url)
        return cls(bootstrap, topic, **kwargs)

    # ------------------------------------------------------------------ errors

    def _unavailable(self, doing: str, error: BaseException) -> UnavailableError:
        detail = str(error)
        name = type(error).__name__
        if not detail.startswith(name):
            detail = f"{name}: {detail}"
        return UnavailableError(
            f"Kafka log {self.topic!r} at {self.bootstrap}: failed {doing} "
            f"({detail}); the broker is down or unreachable, retry later"
        )

    def _connect(self, doing: str, fn: Any) -> Any:
        """Run ``fn``; turn any client or socket failure into UnavailableError."""
        try:
            return fn()
        except StatusError:
            raise
        except (kafka_errors.KafkaError, OSError) as e:
            raise self._unavailable(f"{doing} the broker", e) from None

    # ------------------------------------------------------------------ topic

    def _ensure_topic(self, create: bool, replication_factor: int, extra: dict[str, str]) -> None:
        """Create the topic (one partition, history kept) or check the one that exists."""
        admin = KafkaAdminClient(**self._common)
        try:
            described = admin.describe_topics([self.topic])[0]
            if described["error_code"] == kafka_errors.UnknownTopicOrPartitionError.errno:
                if not create:
                    raise NotFoundError(f"Kafka topic {self.topic!r} does not exist at {self.bootstrap}")
                self._create_topic(admin, replication_factor, extra)
                return
            if described["error_code"]:
                raise kafka_errors.for_code(described["error_code"])(
                    f"describing topic {self.topic!r}"
                )
            partitions = len(described["partitions"])
            if partitions != 1:
                raise FailedPreconditionError(
                    f"Kafka topic {self.topic!r} has {partitions} partitions; an MLMD log needs "
                    "exactly one (the total order of writes decides ids)"
                )
        finally:
            admin.close()

    def _create_topic(self, admin: Any, replication_factor: int, extra: dict[str, str]) -> None:
        configs = {
            "retention.ms": "-1",
            "retention.bytes": "-1",
            "cleanup.policy": "delete",
            "max.message.bytes": str(self.max_record_bytes + _BATCH_OVERHEAD),
        }
        if self.durability in ("fsync", "group"):
            configs["flush.messages"] = "1"
        configs.update(extra)
        spec = {self.topic: {
            "num_partitions": 1, "replication_factor": replication_factor, "configs": configs,
        }}
        try:
            admin.create_topics(spec, timeout_ms=int(self.timeout_s * 1000), wait_for_metadata=True)
            logger.info("created Kafka topic %r at %s with %s", self.topic, self.bootstrap, configs)
        except kafka_errors.TopicAlreadyExistsError:
            pass  # another process created it first: fine, it made the same settings

    # ------------------------------------------------------------------ writing

    def append(self, records: Sequence[bytes]) -> list[int]:
        """Send ``records`` in order and return their offsets once the broker acknowledged all.

        Raises ``UnavailableError`` if any is not acknowledged within ``timeout_s``;
        records of the call may then be in the log or not (see module docstring).
        """
        payloads = check_records(records)
        for i, payload in enumerate(payloads):
            if len(payload) > self.max_record_bytes:
                raise InvalidArgumentError(
                    f"record {i} is {len(payload)} bytes, larger than this Kafka log's "
                    f"limit {self.max_record_bytes} (max_record_bytes)"
                )
        self._check_open()
        if not payloads:
            return []
        futures = []
        error: BaseException | None = None
        with self._send_lock:  # one call's records go into the accumulator together
            try:
                for payload in payloads:
                    futures.append(self._producer.send(self.topic, value=payload, partition=PARTITION))
            except kafka_errors.KafkaError as e:
                error = e
        offsets = []
        for future in futures:  # wait for all, even after a failure: none left dangling
            try:
                offsets.append(future.get(timeout=self.timeout_s + 5).offset)
            except kafka_errors.KafkaError as e:
                error = error or e
        if error is not None:
            n_acked = len(offsets)
            raise self._unavailable(
                f"appending {len(payloads)} record(s) ({n_acked} acknowledged)", error
            ) from None
        return offsets

    def flush(self) -> None:
        """Wait until everything sent so far is acknowledged (or failed)."""
        self._check_open()
        try:
            self._producer.flush(timeout=self.timeout_s)
        except kafka_errors.KafkaError as e:
            raise self._unavailable("flushing", e) from None

    # ------------------------------------------------------------------ reading

    def end_offset(self) -> int:
        """The partition's high watermark: the offset after the last acknowledged record."""
        return self._asking(self._end_offset_with)

    def _asking(self, request: Any) -> Any:
        """``request(consumer)`` on a consumer from the pool; one that failed is not reused."""
        self._check_open()
        consumer = self._take_consumer()
        try:
            answer = request(consumer)
        except BaseException:
            self._discard_consumer(consumer)
            raise
        self._give_back(consumer)
        return answer

    def end_offset_beyond(self, offset: int, ask: bool = True) -> int:
        """Every fetch answer carries the high watermark: a reader that is behind needs no
        request of its own to learn that it is."""
        known = self._known_end
        if known > offset:
            return known
        return self.end_offset() if ask else offset

    def _learn_end(self, end: int) -> int:
        if end > self._known_end:  # (a race between threads only leaves a lower bound)
            self._known_end = end
        return end

    def read(self, start: int, max_records: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Validate now (a request for the end offset, unless a fetch told it already); the
        generator streams fetches."""
        end = self.end_offset_beyond(start)
        check_read_args(start, max_records, end)
        return self._iter_records(start, max_records, end)

    def _take_waited(self, start: int) -> list[Any]:
        """The records wait_for_records fetched, if they begin at ``start`` (forgotten either way)."""
        with self._pool_lock:
            waited, self._waited = self._waited, None
        return waited[1] if waited is not None and waited[0] == start else []

    def _iter_records(
        self, start: int, max_records: int | None, end: int
    ) -> Iterator[tuple[int, bytes]]:
        if max_records == 0 or start == end:
            return
        offset, emitted = start, 0
        records = self._take_waited(start)  # (what a wait fetched from ``start``, if anything)
        consumer = None
        try:
            while max_records is None or emitted < max_records:
                if not records:
                    if offset >= end:  # include what arrived meanwhile
                        if self._known_end > offset:
                            end = self._known_end
                        elif consumer is None and offset > start:
                            break  # (all came with the wait, and the end it told: no request)
                        else:
                            consumer = consumer or self._seeking_consumer(offset)
                            end = self._end_offset_with(consumer)
                        if offset >= end:
                            break
                    consumer = consumer or self._seeking_consumer(offset)
                    want = end - offset if max_records is None else min(end - offset, max_records - emitted)
                    records = self._fetch(consumer, offset, min(want, 10000))
                for record in records:
                    if record.offset < offset:
                        continue
                    if record.offset != offset:
                        raise self._gap(offset, record.offset)
                    # A record with no value (a tombstone another producer wrote) is an empty
                    # payload: one rejected outcome, like any record that carries no request.
                    yield offset, record.value if record.value is not None else b""
                    offset += 1
                    emitted += 1
                    if max_records is not None and emitted >= max_records:
                        break
                records = []
        except GeneratorExit:  # the caller stopped early: the consumer is fine (seek resets it)
            if consumer is not None:
                self._give_back(consumer)
            raise
        except BaseException:  # a broken connection may leave it in any state
            if consumer is not None:
                self._discard_consumer(consumer)
            raise
        if consumer is not None:
            self._give_back(consumer)

    def _seeking_consumer(self, offset: int) -> Any:
        consumer = self._take_consumer()
        consumer.seek(self._tp, offset)
        return consumer

    def _gap(self, expected: int, got: int) -> DataLossError:
        return DataLossError(
            f"Kafka log {self.topic!r}: expected offset {expected}, got {got} "
            "(records missing: was the topic compacted or written transactionally?)"
        )

    waits_for_records = True

    def wait_for_records(self, offset: int, timeout_s: float) -> bool:
        """In a fetch the broker holds open: a follower of a quiet log costs nothing and
        wakes as soon as a record is appended. The records that fetch brought (and the end
        it told) are kept for a ``read`` from ``offset``: a follower that is caught up gets
        its next records with one request, not three."""
        self._check_open()
        consumer = self._take_consumer()
        try:
            consumer.seek(self._tp, offset)
            batches = consumer.poll(timeout_ms=max(1, int(timeout_s * 1000)), max_records=_WAITED_RECORDS)
        except kafka_errors.OffsetOutOfRangeError:
            self._discard_consumer(consumer)
            raise self._out_of_range(offset) from None
        except kafka_errors.KafkaError as e:
            self._discard_consumer(consumer)
            raise self._unavailable(f"waiting for records from offset {offset}", e) from None
        except BaseException:
            self._discard_consumer(consumer)
            raise
        records = batches.get(self._tp)
        if records:  # (kept for the read that follows, with the end the fetch answer gave)
            self._learn_end(consumer.highwater(self._tp) or 0)
            with self._pool_lock:
                self._waited = (offset, records) if records[0].offset == offset else None
        self._give_back(consumer)
        return bool(records)

    def _fetch(self, consumer: Any, offset: int, max_records: int) -> list[Any]:
        """Records from ``offset`` on (at least one), waiting at most ``timeout_s``."""
        waited_ms = 0
        while True:
            try:
                batches = consumer.poll(timeout_ms=_POLL_MS, max_records=max_records)
            except kafka_errors.OffsetOutOfRangeError:
                raise self._out_of_range(offset) from None
            except kafka_errors.KafkaError as e:
                raise self._unavailable(f"reading from offset {offset}", e) from None
            records = batches.get(self._tp, [])
            if records:
                self._learn_end(consumer.highwater(self._tp) or 0)
                return records
            waited_ms += _POLL_MS
            if waited_ms >= self.timeout_s * 1000:
                raise UnavailableError(
                    f"Kafka log {self.topic!r} at {self.bootstrap}: no records from offset {offset} "
                    f"within {self.timeout_s:g}s although the log ends later; the broker is "
                    "down or unreachable, retry later"
                )

    def start_offset(self) -> int:
        """The partition's first offset: 0 unless records were dropped (``drop_records_before``)."""
        def ask(consumer: Any) -> int:
            try:
                return consumer.beginning_offsets([self._tp], timeout_ms=int(self.timeout_s * 1000))[self._tp]
            except (kafka_errors.KafkaError, OSError) as e:
                raise self._unavailable("asking for the first offset", e) from None

        return self._asking(ask)

    def _out_of_range(self, offset: int) -> StatusError:
        """The error for an offset the broker refused: past the end (OutOfRangeError: the
        topic was deleted and created again?) or below the first (DataLossError: trimmed)."""
        end = self.end_offset()
        if offset > end:
            return OutOfRangeError(f"Kafka log {self.topic!r}: offset {offset} is past its end ({end}); was the "
                                   "topic deleted and created again?")
        try:
            start = str(self.start_offset())
        except UnavailableError:
            start = "an offset the broker did not tell"
        return DataLossError(f"Kafka log {self.topic!r} no longer holds offset {offset} (it starts at {start}): "
                             "if its older records were archived (mlmd-log archive), read "
                             "kafka://HOST:PORT/TOPIC?archive=DIR")

    def drop_records_before(self, offset: int) -> None:
        """Deletes the topic's records below ``offset`` (Kafka's DeleteRecords). Only for
        records kept elsewhere: ``mlmd-log archive --trim`` calls it up to where its archive
        ends, once that is on disk."""
        end = self.end_offset()
        if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= end:
            raise InvalidArgumentError(f"cannot drop records below offset {offset!r}: the log ends at {end}")
        admin = self._connect("connecting an admin client to", lambda: KafkaAdminClient(**self._common))
        try:
            admin.delete_records({self._tp: offset}, timeout_ms=int(self.timeout_s * 1000))
        except (kafka_errors.KafkaError, OSError) as e:
            raise self._unavailable(f"dropping the records below offset {offset}", e) from None
        finally:
            admin.close()

    def _end_offset_with(self, consumer: Any) -> int:
        try:
            return self._learn_end(consumer.end_offsets([self._tp], timeout_ms=int(self.timeout_s * 1000))[self._tp])
        except (kafka_errors.KafkaError, OSError) as e:
            raise self._unavailable("asking for the end offset", e) from None

    # ------------------------------------------------------------------ consumer pool

    def _take_consumer(self) -> Any:
        """An idle consumer assigned to the partition, or a new one (not thread-safe: one user at a time)."""
        with self._pool_lock:
            if self._idle_consumers:
                return self._idle_consumers.pop()

        def make() -> Any:
            consumer = KafkaConsumer(**self._consumer_config)
            consumer.assign([self._tp])
            return consumer

        return self._connect("connecting a consumer to", make)

    def _give_back(self, consumer: Any) -> None:
        with self._pool_lock:
            if not self._closed:
                self._idle_consumers.append(consumer)
                return
        consumer.close()

    @staticmethod
    def _discard_consumer(consumer: Any) -> None:
        try:
            consumer.close()
        except Exception:  # noqa: BLE001 - closing a broken consumer must not hide the real error
            logger.debug("error closing a Kafka consumer", exc_info=True)

    # ------------------------------------------------------------------ closing

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPreconditionError(f"Kafka log {self.topic!r} at {self.bootstrap} is closed")

    def close(self) -> None:
        """Deliver what was sent (bounded by ``timeout_s``), then close the clients. Idempotent."""
        with self._pool_lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle_consumers = self._idle_consumers, []
        for consumer in idle:
            self._discard_consumer(consumer)
        if self._producer is not None:
            try:
                self._producer.close(timeout=self.timeout_s)
            except Exception:  # noqa: BLE001
                logger.warning("error closing the Kafka producer for %r", self.topic, exc_info=True)

    def __repr__(self) -> str:
        return f"KafkaLog({self.bootstrap!r}, {self.topic!r}, durability={self.durability})"

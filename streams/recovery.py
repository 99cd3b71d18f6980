"""Bringing entity state up to the decisions topic after a crash or a rebalance.

Decisions for events of content partition ``p`` go to decisions partition ``p``, and the state
they cause is written (to the table and its changelog) only after they are acknowledged. So
after a crash the state can lag the decisions topic but never lead it. Before a worker
processes a partition it has just been given, it reads that decisions partition from the
offset the state last recorded (``o:<p>``) to its end and applies what is missing. Re-delivered
events then find their decision (``v:<event_id>``) and are not decided twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from resolution.entities import EntityStore
from resolution.model import Decision
from settings import KafkaSettings
from streams.kafka import client_config
from streams.topics import AvroSchema

log = logging.getLogger(__name__)


def marker_key(partition: int) -> str:
    return f"o:{partition}"


def read_partition(
    kafka: KafkaSettings, topic: str, partition: int, start: int, schema: AvroSchema
) -> tuple[list[dict[str, Any]], int]:
    """Decoded records of one partition from ``start`` to its current end, and that end."""
    consumer = Consumer(
        {
            **client_config(kafka),
            "group.id": f"resolver-recovery-{topic}-{partition}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        tp = TopicPartition(topic, partition)
        _low, high = consumer.get_watermark_offsets(tp, timeout=10)
        if start >= high:
            return [], high
        consumer.assign([TopicPartition(topic, partition, start)])
        out = []
        while True:
            msg = consumer.poll(1.0)
            if msg is None:
                if consumer.position([tp])[0].offset >= high:
                    break
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001 - librdkafka's public code, named with a leading underscore
                    break
                raise KafkaException(error)
            out.append(schema.decode(msg.value() or b""))
            if int(msg.offset() or 0) + 1 >= high:
                break
        return out, high
    finally:
        consumer.close()


class DecisionLogCatchUp:
    """Tracks which assigned partitions have been caught up since the last rebalance."""

    def __init__(self, kafka: KafkaSettings, schema: AvroSchema) -> None:
        self._kafka = kafka
        self._schema = schema
        self._caught_up: set[int] = set()
        self.applied_total = 0

    def forget(self) -> None:
        self._caught_up.clear()

    async def ensure(
        self,
        partition: int,
        store: EntityStore,
        table_get: Callable[[str], Any],
        table_set: Callable[[str, Any], None],
    ) -> int:
        """Applies the decisions of ``partition`` that the state does not have yet; returns how many."""
        if partition in self._caught_up:
            return 0
        start = int(table_get(marker_key(partition)) or 0)
        records, end = await asyncio.to_thread(
            read_partition, self._kafka, self._kafka.decisions_topic, partition, start, self._schema
        )
        applied = 0
        for record in records:
            # By decision id: one event can cause several decisions (corrections share its id).
            if not store.applied(record["decision_id"]):
                store.apply(Decision.from_record(record), record["decision_id"])
                store.note_trace(record["decision_id"], record.get("trace_id") or "", record["event_id"])
                applied += 1
        table_set(marker_key(partition), end)
        self._caught_up.add(partition)
        self.applied_total += applied
        if applied:
            log.warning(
                "partition %d: applied %d decisions missing from the state (offsets %d..%d)",
                partition,
                applied,
                start,
                end,
            )
        return applied


class OffsetGaps:
    """Finds messages a worker was handed past but never got, so they can be read again.

    Faust can drop fetched messages while a rebalance suspends its flow and still move its read
    offset past them (seen here under SIGKILL chaos: one batch per partition skipped, the
    committed offset stuck behind it). Content topics are not transactional, so offsets within a
    partition are contiguous: a jump means lost messages. The caller seeks back to the first
    missing offset; what comes again is recognised as a duplicate.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next: dict[tuple[str, int], int] = {}
        self._rewinding: dict[tuple[str, int], int] = {}
        self._since: dict[tuple[str, int], float] = {}

    def forget(self) -> None:
        """After a rebalance Faust seeks to the committed offsets itself: start tracking afresh."""
        self._next.clear()
        self._rewinding.clear()
        self._since.clear()

    def observe(
        self, positions: list[tuple[str, int, int]], committed: Callable[[str, int], int | None]
    ) -> list[tuple[str, int, int]]:
        """Takes (topic, partition, offset) of a batch in order; returns (topic, partition, first
        missing offset) for each partition that jumped. The first message seen of a partition is
        checked against ``committed`` (the offset reading resumed from)."""
        gaps: dict[tuple[str, int], int] = {}
        for topic, partition, offset in positions:
            key = (topic, partition)
            rewind_to = self._rewinding.get(key)
            if rewind_to is not None:
                # Messages fetched before the seek still drain; the rewind is done when it arrives.
                if offset <= rewind_to:
                    del self._rewinding[key]
                    self._since.pop(key, None)
                    self._next[key] = offset + 1
                continue
            expected = self._next.get(key)
            if expected is None:
                expected = committed(topic, partition)
            if expected is not None and offset > expected and key not in gaps:
                gaps[key] = expected
            self._next[key] = offset + 1 if expected is None else max(expected, offset + 1)
        for key, start in gaps.items():
            self._rewinding[key] = start
            self._since[key] = self._clock()
        return [(topic, partition, start) for (topic, partition), start in gaps.items()]

    def overdue(self, after_s: float) -> list[tuple[str, int, int]]:
        """Rewinds whose first message has not come back within ``after_s``: seek again.

        Faust's fetch loop can still be iterating messages it fetched before the seek and move
        its read offset past the rewound ones, which it then drops; a second seek, once that
        batch is drained, gets them."""
        now = self._clock()
        due = []
        for key, start in self._rewinding.items():
            if now - self._since[key] >= after_s:
                self._since[key] = now
                due.append((key[0], key[1], start))
        return due


def group_lag(kafka: KafkaSettings, group_id: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """Messages between the group's committed offset and the log end, per input partition."""
    consumer = Consumer({**client_config(kafka), "group.id": group_id, "enable.auto.commit": False})
    try:
        lag: dict[tuple[str, int], int] = {}
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None:
                continue
            tps = [TopicPartition(topic, p) for p in meta.partitions]
            for tp in consumer.committed(tps, timeout=10):
                _low, high = consumer.get_watermark_offsets(tp, timeout=10)
                start = tp.offset if tp.offset >= 0 else _low
                lag[(topic, tp.partition)] = max(0, high - start)
        return lag
    finally:
        consumer.close()


class ProgressWatch:
    """Tells a worker that has input waiting but decides nothing apart from an idle one.

    Faust can hang after a crash and restart (its table recovery or its flow control; upstream
    reports hangs in both) while the process looks healthy. Such a worker holds its partitions
    forever. Held batches during a dependency outage are not a stall: the caller says so."""

    def __init__(self, stall_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._stall_after_s = stall_after_s
        self._clock = clock
        self._batches = -1
        self._since = clock()

    def check(self, batches: int, lag: int, waiting_on_dependency: bool) -> float:
        """Seconds the worker has been stalled (0 when it is not)."""
        now = self._clock()
        if batches != self._batches or lag == 0 or waiting_on_dependency:
            self._batches = batches
            self._since = now
            return 0.0
        stalled = now - self._since
        return stalled if stalled >= self._stall_after_s else 0.0

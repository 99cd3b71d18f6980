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
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from content_resolver.settings import KafkaSettings
from resolution.entities import EntityStore
from resolution.model import Decision
from streams.kafka import client_config
from streams.topics import AvroSchema

log = logging.getLogger(__name__)


def marker_key(partition: int) -> str:
    return f"o:{partition}"


def decision_from_record(record: dict[str, Any]) -> Decision:
    return Decision.from_record(record)


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
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    break
                raise KafkaException(msg.error())
            out.append(schema.decode(msg.value()))
            if msg.offset() + 1 >= high:
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
                store.apply(decision_from_record(record), record["decision_id"])
                store.note_trace(record["decision_id"], record.get("trace_id") or "", record["event_id"])
                applied += 1
        table_set(marker_key(partition), end)
        self._caught_up.add(partition)
        self.applied_total += applied
        if applied:
            log.warning("partition %d: applied %d decisions missing from the state (offsets %d..%d)",
                        partition, applied, start, end)
        return applied

"""confluent-kafka clients for admin and tools: topic creation, producing, reading decisions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from settings import KafkaSettings
from streams.topics import TopicNames


def client_config(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection settings shared by every client, security included."""
    conf: dict[str, Any] = {"bootstrap.servers": kafka.bootstrap_servers}
    if kafka.security_protocol != "PLAINTEXT":
        conf["security.protocol"] = kafka.security_protocol
    if kafka.sasl_mechanism:
        conf["sasl.mechanism"] = kafka.sasl_mechanism
        conf["sasl.username"] = kafka.sasl_username
        conf["sasl.password"] = kafka.sasl_password
    if kafka.ssl_cafile:
        conf["ssl.ca.location"] = kafka.ssl_cafile
    return conf


def topic_names(kafka: KafkaSettings) -> TopicNames:
    return TopicNames(
        content=kafka.content_topic,
        decisions=kafka.decisions_topic,
        dlq=kafka.dlq_topic,
        feedback=kafka.feedback_topic,
    )


def ensure_topics(kafka: KafkaSettings, timeout_s: float = 30.0) -> list[str]:
    """Creates the resolver's topics explicitly (idempotent); returns those it created."""
    admin = AdminClient(client_config(kafka))
    names = topic_names(kafka)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [
        NewTopic(name, num_partitions=kafka.partitions, replication_factor=1)
        for name in names.all()
        if name not in existing
    ]
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, request_timeout=timeout_s).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created


def delete_topics(kafka: KafkaSettings, names: list[str], timeout_s: float = 30.0) -> None:
    admin = AdminClient(client_config(kafka))
    for future in admin.delete_topics(names, request_timeout=timeout_s).values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise


def make_producer(kafka: KafkaSettings, **extra: Any) -> Producer:
    conf = {**client_config(kafka), "enable.idempotence": True, "linger.ms": 5, "acks": "all", **extra}
    return Producer(conf)


@dataclass(frozen=True)
class ConsumedRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    timestamp_ms: int


# The header type confluent-kafka's producer takes.
KafkaHeaders = list[tuple[str, str | bytes | None]]


def kafka_headers(headers: list[tuple[str, bytes]]) -> KafkaHeaders:
    return [(k, v) for k, v in headers]


def read_topic(
    kafka: KafkaSettings,
    topic: str,
    follow: bool = False,
    idle_timeout_s: float = 5.0,
    from_beginning: bool = True,
) -> Iterator[ConsumedRecord]:
    """Reads a topic with read_committed isolation; without ``follow``, stops once caught up."""
    consumer = Consumer(
        {
            **client_config(kafka),
            "group.id": f"resolver-reader-{time.time_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "isolation.level": "read_committed",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions) if topic in metadata.topics else []
        tps = [TopicPartition(topic, p) for p in partitions]
        # The end each partition must reach to count as caught up (the last stable offset).
        ends = {}
        for tp in tps:
            _low, high = consumer.get_watermark_offsets(tp, timeout=10)
            ends[tp.partition] = high
        consumer.assign([TopicPartition(topic, p, 0 if from_beginning else -1) for p in partitions])
        last_seen = time.monotonic()
        while True:
            msg = consumer.poll(0.5)
            if msg is None:
                # Position, not the last offset seen: transaction markers take offsets too.
                positions = {tp.partition: tp.offset for tp in consumer.position(tps)}
                caught_up = all(positions[p] >= ends[p] for p in partitions)
                if not follow and (caught_up or time.monotonic() - last_seen > idle_timeout_s):
                    return
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001 - librdkafka's public code, named with a leading underscore
                    continue
                raise KafkaException(error)
            last_seen = time.monotonic()
            # A message without an error has its topic, partition, offset and value.
            yield ConsumedRecord(
                topic=str(msg.topic()),
                partition=int(msg.partition() or 0),
                offset=int(msg.offset() or 0),
                key=msg.key(),
                value=msg.value() or b"",
                # A consumer gets headers as a list of (str, bytes) pairs.
                headers=cast(list[tuple[str, bytes]], list(msg.headers() or [])),
                timestamp_ms=msg.timestamp()[1],
            )
    finally:
        consumer.close()

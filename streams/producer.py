"""Producing content events: Avro single-object encoded, keyed by a blocking key, traced."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from confluent_kafka import Producer
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer

from resolution.model import ContentItem
from resolution.normalise import normalise
from settings import KafkaSettings
from streams.kafka import kafka_headers, make_producer
from streams.topics import AvroSchema
from telemetry import inject_headers, trace_id_hex


def blocking_key(item: ContentItem) -> bytes:
    """Items that may be duplicates or versions share a normalised core title, so a partition."""
    core = normalise(item).title_core
    return (core or item.content_id).encode()


class ContentProducer:
    def __init__(self, kafka: KafkaSettings, schema: AvroSchema, tracer: Tracer) -> None:
        self._producer: Producer = make_producer(kafka)
        self._topic = kafka.content_topic
        self._schema = schema
        self._tracer = tracer
        self.errors: list[str] = []

    def _delivered(self, err: object, _msg: object) -> None:
        if err is not None:
            self.errors.append(str(err))

    def send(self, item: ContentItem) -> str:
        """Produces one event; returns its trace id."""
        stamped = ContentItem(**{**item.__dict__, "produced_at_ms": int(time.time() * 1000)})
        with self._tracer.start_as_current_span(
            "produce content-event",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.operation.name": "send",
                "messaging.destination.name": self._topic,
                "resolver.event_id": item.event_id,
                "resolver.content_id": item.content_id,
            },
        ) as span:
            value = self._schema.encode(stamped.to_record())
            key = blocking_key(item)
            span.set_attribute("messaging.kafka.message.key", key.decode("utf-8", "replace"))
            span.set_attribute("messaging.message.body.size", len(value))
            self._producer.produce(
                self._topic,
                key=key,
                value=value,
                headers=kafka_headers(inject_headers(trace.set_span_in_context(span))),
                on_delivery=self._delivered,
            )
            self._producer.poll(0)
            return trace_id_hex(span)

    def send_raw(self, value: bytes, key: bytes = b"raw") -> None:
        """Sends bytes as they are: for tests of the dead-letter path."""
        self._producer.produce(self._topic, key=key, value=value, on_delivery=self._delivered)
        self._producer.poll(0)

    def stream(self, items: Iterable[ContentItem], rate: float | None = None) -> Iterator[tuple[ContentItem, str]]:
        """Sends items, paced at ``rate`` events/s when given; yields each with its trace id."""
        start = time.monotonic()
        for n, item in enumerate(items):
            if rate:
                due = start + n / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield item, self.send(item)

    def flush(self, timeout_s: float = 30.0) -> None:
        remaining = self._producer.flush(timeout_s)
        if remaining:
            raise RuntimeError(f"{remaining} events not delivered after {timeout_s}s")
        if self.errors:
            raise RuntimeError(f"delivery failed: {self.errors[:3]}")

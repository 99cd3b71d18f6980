"""Sending curator feedback to ``resolution-feedback``.

The worker reads feedback in the same agent as content events, so a constraint is applied in
order with the events around it. Feedback for an item must reach the worker that owns the item's
state: records are keyed like content events (``streams.producer.blocking_key``, the normalised
core title) when the curator names the title, and by the left content id otherwise. With one
worker (tests, the demo) every partition is local and the key does not matter; with several,
a pair whose items have different blocking keys can only be applied where both are known
(the limitation is the same as for cross-partition duplicates).
"""

from __future__ import annotations

import time
import uuid

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer

from resolution.corrections import VERDICTS, Feedback
from resolution.model import ContentItem
from settings import KafkaSettings
from streams.kafka import make_producer
from streams.producer import blocking_key
from streams.topics import AvroSchema
from telemetry import inject_headers, trace_id_hex


def feedback_key(feedback: Feedback, title: str | None = None) -> bytes:
    if title:
        probe = ContentItem(event_id="", content_id=feedback.left, source="", kind="recording", title=title, artists=())
        return blocking_key(probe)
    return feedback.left.encode()


def new_feedback(left: str, right: str, verdict: str, curator: str, note: str = "") -> Feedback:
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}")
    return Feedback(f"fb-{uuid.uuid4().hex}", left, right, verdict, curator, note, int(time.time() * 1000))


def send_feedback(
    kafka: KafkaSettings, schema: AvroSchema, tracer: Tracer, feedback: list[Feedback], title: str | None = None
) -> list[str]:
    """Produces the feedback records (traced); returns their trace ids."""
    producer = make_producer(kafka)
    errors: list[str] = []
    traces = []
    for fb in feedback:
        with tracer.start_as_current_span(
            "produce curator-feedback",
            kind=SpanKind.PRODUCER,
            attributes={"messaging.destination.name": kafka.feedback_topic, "resolver.feedback_id": fb.feedback_id},
        ) as span:
            producer.produce(
                kafka.feedback_topic,
                key=feedback_key(fb, title),
                value=schema.encode(fb.to_record()),
                headers=inject_headers(trace.set_span_in_context(span)),
                on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
            )
            traces.append(trace_id_hex(span))
    if producer.flush(30.0) or errors:
        raise RuntimeError(f"feedback not delivered: {errors[:3]}")
    return traces

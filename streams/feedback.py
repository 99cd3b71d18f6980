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
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer

from resolution.feedback import VERDICTS, Feedback
from resolution.model import ContentItem
from settings import KafkaSettings
from streams.kafka import kafka_headers, make_producer, read_topic
from streams.producer import blocking_key
from streams.topics import AvroSchema, CodecError, Schemas
from streams.validation import InvalidEvent
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
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.operation.name": "send",
                "messaging.destination.name": kafka.feedback_topic,
                "resolver.feedback_id": fb.feedback_id,
            },
        ) as span:
            producer.produce(
                kafka.feedback_topic,
                key=feedback_key(fb, title),
                value=schema.encode(fb.to_record()),
                headers=kafka_headers(inject_headers(trace.set_span_in_context(span))),
                on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
            )
            traces.append(trace_id_hex(span))
    if producer.flush(30.0) or errors:
        raise RuntimeError(f"feedback not delivered: {errors[:3]}")
    return traces


@dataclass
class ReplayedFeedback:
    """Curator verdicts as read back from the feedback topic, with the items they name.

    ``items``: the named items found on the content topic (their latest event); ``evidence``:
    the comparison signals of a named pair as a decision recorded them (a candidate of one item
    when the other was decided), for pairs whose items are not on the content topic any more.
    Invalid records are counted, not used (the worker dead-letters them)."""

    feedback: list[Feedback]
    items: dict[str, ContentItem] = field(default_factory=dict)
    evidence: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    invalid: int = 0
    topics: dict[str, int] = field(default_factory=dict)  # records read per topic


def replay_feedback(kafka: KafkaSettings, schemas: Schemas) -> ReplayedFeedback:
    """Every verdict on ``kafka.feedback_topic`` (read_committed, from the beginning), then the
    items they name from the content topic and the decisions' evidence."""
    from streams.handler import parse_feedback

    replay = ReplayedFeedback([])
    count = 0
    for rec in read_topic(kafka, kafka.feedback_topic, idle_timeout_s=3.0):
        count += 1
        try:
            replay.feedback.append(parse_feedback(schemas.feedback, rec.value))
        except InvalidEvent:
            replay.invalid += 1
    replay.topics[kafka.feedback_topic] = count
    named = {fb.left for fb in replay.feedback} | {fb.right for fb in replay.feedback}
    if not named:
        return replay
    count = 0
    for rec in read_topic(kafka, kafka.content_topic, idle_timeout_s=3.0):
        count += 1
        try:
            item = ContentItem.from_record(schemas.content_event.decode(rec.value))
        except (CodecError, KeyError, TypeError):
            continue  # bad input is the worker's to dead-letter
        if item.content_id in named:
            replay.items[item.content_id] = item
    replay.topics[kafka.content_topic] = count
    pairs = {_pair_key(fb.left, fb.right) for fb in replay.feedback}
    count = 0
    for rec in read_topic(kafka, kafka.decisions_topic, idle_timeout_s=3.0):
        count += 1
        decision = schemas.decision.decode(rec.value)
        for candidate in decision.get("candidates") or ():
            key = _pair_key(decision["content_id"], candidate["content_id"])
            if key in pairs and candidate.get("signals"):
                replay.evidence[key] = dict(candidate["signals"])
    replay.topics[kafka.decisions_topic] = count
    return replay


def _pair_key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)

"""One batch of raw messages in, decisions and dead letters out, each step traced.

Kept apart from Faust so the same code is driven by the agent and by tests.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Tracer

from resolution.drift import DriftMonitor, decision_signals
from resolution.feedback import VERDICTS, Feedback
from resolution.model import ContentItem, Decision
from resolution.resolver import BatchResolver
from streams.metrics import ResolverMetrics
from streams.topics import AvroSchema, CodecError, Schemas, TopicNames
from streams.validation import EventValidator, InvalidEvent
from telemetry import extract_context, inject_headers, trace_id_hex


@dataclass(frozen=True)
class InboundMessage:
    value: bytes | None
    key: bytes | None
    headers: list[tuple[str, bytes]]
    topic: str
    partition: int
    offset: int
    timestamp_ms: int


class EventScope:
    """Which source partition each event id of the batch in flight came from.

    State writes are tagged with it, so that they land in that partition's changelog."""

    def __init__(self, tag: Callable[[int | None], AbstractContextManager[Any]]) -> None:
        self._tag = tag
        self._partitions: dict[str, int] = {}

    def bind(self, partitions: dict[str, int]) -> None:
        self._partitions = partitions

    def scope(self, event_id: str) -> AbstractContextManager[Any]:
        return self._tag(self._partitions.get(event_id))


@dataclass(frozen=True)
class OutboundRecord:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    # The source event's partition: decisions of content partition p go to partition p, so one
    # partition of the decisions topic replays the state of one partition of content events.
    partition: int


# Sends every record and returns, in order, the offset each was written at.
Send = Callable[[list[OutboundRecord]], Awaitable[list[int]]]

# Which worker process decided: a header of every decision (``host/pid``), so that a consumer of
# the decisions topic can tell one worker's writes from another's (the multi-worker test measures
# how often an item another worker wrote moments ago was not found).
WORKER_HEADER = "resolver-worker"

STAGES = ("normalise", "media", "embed", "search", "score", "decide", "index")
SPAN_NAMES = {"re-resolution": "correct", "curator-feedback": "apply-feedback", "media-link-back": "link-back"}


def consumed_attributes(msg: InboundMessage, operation: str) -> dict[str, str | int]:
    """OpenTelemetry messaging attributes of a record read from Kafka (semantic conventions 1.27+)."""
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": msg.topic,
        "messaging.destination.partition.id": str(msg.partition),
        "messaging.kafka.offset": msg.offset,
        "messaging.kafka.message.key": (msg.key or b"").decode("utf-8", "replace"),
        "messaging.message.body.size": len(msg.value or b""),
    }


def produced_attributes(record: OutboundRecord, offset: int) -> dict[str, str | int]:
    """OpenTelemetry messaging attributes of a record written to Kafka."""
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": record.topic,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.kafka.offset": offset,
        "messaging.kafka.message.key": record.key.decode("utf-8", "replace"),
        "messaging.message.body.size": len(record.value),
    }


def parse_feedback(schema: AvroSchema, value: bytes | None) -> Feedback:
    """A CuratorFeedback record, or InvalidEvent (so it is dead-lettered with the reason)."""
    try:
        fb = Feedback.from_record(schema.decode(value or b""))
    except CodecError as exc:
        raise InvalidEvent(exc.reason, exc.detail, exc.field) from exc
    if fb.verdict not in VERDICTS:
        raise InvalidEvent("invalid_field", f"verdict {fb.verdict!r} is not one of {', '.join(VERDICTS)}", "verdict")
    if not fb.left or not fb.right or fb.left == fb.right:
        raise InvalidEvent("invalid_field", "feedback needs two different content ids", "left_content_id")
    return fb


def decision_record(decision: Decision, model_version: str, trace_id: str, produced_at_ms: int) -> dict:
    return {
        "decision_id": decision.decision_id,
        "event_id": decision.event_id,
        "content_id": decision.content_id,
        "action": decision.action.value,
        "entity_id": decision.entity_id,
        "work_id": decision.work_id,
        "related_entity_id": decision.related_entity_id,
        "relation": decision.relation.value if decision.relation else None,
        "confidence": float(decision.confidence),
        "candidates": [
            {
                "content_id": c.candidate.content_id,
                "entity_id": c.candidate.entity_id,
                "score": float(c.score),
                "relation": c.relation.value,
                "signals": {k: float(v) for k, v in c.signals.items()},
                "p_same": float(c.probabilities.get("same", -1.0)),
            }
            for c in decision.candidates
        ],
        "signals": {k: float(v) for k, v in decision.signals.items()},
        "reason": decision.reason,
        "previous_entity_ids": list(decision.previous_entity_ids),
        "members": list(decision.members),
        "model_version": model_version,
        "trace_id": trace_id,
        "event_produced_at_ms": int(produced_at_ms),
        "decided_at_ms": int(time.time() * 1000),
        "trigger": decision.trigger,
        "new_entity_ids": list(decision.new_entity_ids),
        "verdict": decision.verdict,
        "sequence": int(decision.sequence),
    }


class EventBatchHandler:
    def __init__(
        self,
        resolver: BatchResolver,
        validator: EventValidator,
        schemas: Schemas,
        topics: TopicNames,
        tracer: Tracer,
        metrics: ResolverMetrics,
        scope: EventScope | None = None,
        drift: DriftMonitor | None = None,
        worker_id: str = "",
    ) -> None:
        self._scope = scope
        self._worker_header = [(WORKER_HEADER, worker_id.encode())] if worker_id else []
        self._drift = drift
        self._resolver = resolver
        self._validator = validator
        self._schemas = schemas
        self._topics = topics
        self._tracer = tracer
        self._metrics = metrics

    async def handle(self, messages: list[InboundMessage], send: Send) -> dict[int, int]:
        """Decides every valid message and dead-letters the rest; ``send`` is awaited once.

        Returns, per source partition, the decisions-topic offset after its last decision."""
        m = self._metrics
        m.events_in.inc(len(messages))
        m.batch_size.observe(len(messages))
        consume_start = time.time_ns()
        out: list[OutboundRecord] = []
        items: list[ContentItem] = []
        origin: dict[str, InboundMessage] = {}
        produced_at: dict[str, int] = {}
        feedback: list[Feedback] = []
        for msg in messages:
            try:
                if msg.topic == self._topics.feedback:
                    fb = parse_feedback(self._schemas.feedback, msg.value)
                    feedback.append(fb)
                    key, at_ms = fb.feedback_id, fb.created_at_ms
                else:
                    item = self._validator.parse(msg.value)
                    items.append(item)
                    key, at_ms = item.event_id, item.produced_at_ms
            except InvalidEvent as exc:
                out.append(self._dead_letter(msg, exc))
                m.dead_letters.labels(exc.reason).inc()
                continue
            origin.setdefault(key, msg)
            produced_at.setdefault(key, at_ms)
        consume_end = time.time_ns()
        if self._scope is not None:
            self._scope.bind({eid: msg.partition for eid, msg in origin.items()})

        with self._tracer.start_as_current_span(
            "resolve-batch", kind=SpanKind.INTERNAL, attributes={"batch.size": len(messages)}
        ) as batch_span:
            result = await self._resolver.resolve(items, feedback)
        m.stage_seconds.labels("consume").observe((consume_end - consume_start) / 1e9)
        for stage, intervals in result.stages.items():
            m.stage_seconds.labels(stage).observe(sum(end - start for start, end in intervals) / 1e9)
        m.duplicates.inc(len(result.duplicates))
        if result.decisions:
            m.candidates.observe(result.candidates_considered / len(result.decisions))
        for count in result.reexamined:
            m.reexamined.observe(count)

        spans = []
        model_version = self._resolver.model_version
        for decision in result.in_applied_order():
            msg = origin[decision.event_id]
            parent = extract_context(msg.headers)
            # One trace per event: its producer's span is the parent of the resolve span.
            span = self._tracer.start_span(
                SPAN_NAMES.get(decision.trigger, "resolve"),
                context=parent,
                kind=SpanKind.CONSUMER,
                start_time=consume_start,
                links=[Link(batch_span.get_span_context())],
                attributes={
                    **consumed_attributes(msg, "process"),
                    "resolver.event_id": decision.event_id,
                    "resolver.content_id": decision.content_id,
                    "resolver.action": decision.action.value,
                    "resolver.entity_id": decision.entity_id,
                    "resolver.confidence": float(decision.confidence),
                    "resolver.model_version": model_version,
                    "resolver.batch_size": len(messages),
                    **({"resolver.relation": decision.relation.value} if decision.relation else {}),
                    **(
                        {"resolver.related_entity_id": decision.related_entity_id} if decision.related_entity_id else {}
                    ),
                },
            )
            ctx = trace.set_span_in_context(span)
            self._tracer.start_span(
                "consume",
                context=ctx,
                kind=SpanKind.CONSUMER,
                start_time=consume_start,
                attributes={**consumed_attributes(msg, "receive"), "messaging.batch.message_count": len(messages)},
            ).end(end_time=consume_end)
            for stage in STAGES:
                for start, end in result.stages.get(stage, ()):
                    self._tracer.start_span(stage, context=ctx, start_time=start).end(end_time=end)
            record = decision_record(decision, model_version, trace_id_hex(span), produced_at[decision.event_id])
            self._resolver.note_trace(decision, record["trace_id"])
            value = self._schemas.decision.encode(record)
            out.append(
                OutboundRecord(
                    self._topics.decisions,
                    decision.content_id.encode(),
                    value,
                    inject_headers(ctx) + self._worker_header,
                    msg.partition,
                )
            )
            spans.append((span, ctx, decision, len(out) - 1))
            m.decisions.labels(decision.action.value).inc()
            top = max((c.score for c in decision.candidates), default=0.0)
            m.score.labels(decision.action.value).observe(top)
        if self._drift is not None and result.decisions:
            closed = self._drift.observe([decision_signals(d) for d in result.decisions], time.monotonic())
            if closed is not None:
                m.observe_drift(closed)

        produce_start = time.time_ns()
        offsets = await send(out)
        produce_end = time.time_ns()
        m.stage_seconds.labels("produce").observe((produce_end - produce_start) / 1e9)
        for sent in out:
            m.events_out.labels("decision" if sent.topic == self._topics.decisions else "dead_letter").inc()
        ends: dict[int, int] = {}
        for sent, offset in zip(out, offsets, strict=True):
            if sent.topic == self._topics.decisions:
                ends[sent.partition] = max(ends.get(sent.partition, 0), offset + 1)
        now_ms = time.time() * 1000
        for span, ctx, decision, index in spans:
            self._tracer.start_span(
                "produce",
                context=ctx,
                kind=SpanKind.PRODUCER,
                start_time=produce_start,
                attributes=produced_attributes(out[index], offsets[index]),
            ).end(end_time=produce_end)
            span.end(end_time=produce_end)
            if produced_at[decision.event_id] > 0:
                m.latency_seconds.observe(max(0.0, now_ms - produced_at[decision.event_id]) / 1000)
        return ends

    async def reject(self, msg: InboundMessage, reason: str, detail: str, send: Send) -> None:
        """Dead-letters one message that could not be processed for a reason other than its shape."""
        self._metrics.dead_letters.labels(reason).inc()
        await send([self._dead_letter(msg, InvalidEvent(reason, detail))])

    def _dead_letter(self, msg: InboundMessage, exc: InvalidEvent) -> OutboundRecord:
        record = {
            "reason": exc.reason,
            "detail": exc.detail[:2000],
            "field": exc.field,
            "topic": msg.topic,
            "partition": msg.partition,
            "offset": msg.offset,
            "original": msg.value or b"",
            "failed_at_ms": int(time.time() * 1000),
        }
        key = f"{msg.topic}:{msg.partition}:{msg.offset}".encode()
        return OutboundRecord(
            self._topics.dlq, key, self._schemas.dead_letter.encode(record), list(msg.headers), msg.partition
        )

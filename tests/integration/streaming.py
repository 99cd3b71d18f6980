"""Producing to and reading from a test worker's topics."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Sequence

from evaluation.sample_catalogue import generate_catalogue
from resolution.entities import rebuild_state
from resolution.model import ContentItem
from settings import Settings
from streams.kafka import read_topic
from streams.producer import ContentProducer
from streams.topics import Schemas
from telemetry import tracer_provider

SCHEMAS = Schemas.load()


def produce(settings: Settings, items: list[ContentItem], raw: Sequence[bytes] = ()) -> dict[str, str]:
    """Sends the items (and raw byte strings, in between), returns event id -> trace id."""
    tracing = tracer_provider("test-producer", settings.worker.otlp_endpoint)
    producer = ContentProducer(settings.kafka, SCHEMAS.content_event, tracing.get_tracer("tests"))
    traces = {}
    for n, item in enumerate(items):
        if n < len(raw):
            producer.send_raw(raw[n])
        traces[item.event_id] = producer.send(item)
    for extra in raw[len(items) :]:
        producer.send_raw(extra)
    producer.flush()
    tracing.shutdown()
    return traces


def decisions(settings: Settings) -> list[dict]:
    return [SCHEMAS.decision.decode(r.value) for r in read_topic(settings.kafka, settings.kafka.decisions_topic)]


def dead_letters(settings: Settings) -> list[dict]:
    return [SCHEMAS.dead_letter.decode(r.value) for r in read_topic(settings.kafka, settings.kafka.dlq_topic)]


def wait_decisions(
    settings: Settings, event_ids: set[str], timeout_s: float = 90.0, corrections: bool = False
) -> dict[str, list[dict]]:
    """The decisions per event id, once all the given ids have one (or the time is up).

    Only the decision each content event gets (trigger ``content-event``), unless ``corrections``:
    a later SPLIT, REASSIGN or entity MERGE that an event caused carries the same event id."""
    deadline = time.monotonic() + timeout_s
    while True:
        by_event: dict[str, list[dict]] = {}
        for d in decisions(settings):
            if corrections or d.get("trigger", "content-event") == "content-event":
                by_event.setdefault(d["event_id"], []).append(d)
        if event_ids <= by_event.keys() or time.monotonic() > deadline:
            return by_event
        time.sleep(1.0)


def jaeger_trace(settings: Settings, trace_id: str, want_spans: int, timeout_s: float = 30.0) -> dict | None:
    url = f"{settings.worker.jaeger_query_url}/api/traces/{trace_id}"
    deadline = time.monotonic() + timeout_s
    trace = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                data = json.load(resp).get("data") or []
                if data:
                    trace = data[0]
                    if len(trace["spans"]) >= want_spans:
                        return trace
        except OSError:
            pass
        time.sleep(1.0)
    return trace


def live_state(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/state", timeout=30) as resp:
        return json.load(resp)


def replayed_state(records: list[dict]) -> dict:
    """The state rebuilt from the decisions topic alone, in the order they were applied."""
    return rebuild_state(records)


def assignment(state: dict) -> dict[str, str]:
    """Partition-owned part of the state: content -> entity and event -> decision."""
    return {k: v for k, v in state.items() if k.startswith(("c:", "v:"))}


def chaos_items(n: int) -> list:
    items, _truth = generate_catalogue(seed=11, songs=n // 3)
    run = time.time_ns()
    return [type(i)(**{**i.__dict__, "event_id": f"{i.event_id}#{run}"}) for i in items][:n]

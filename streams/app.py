"""The Faust application: the resolve agent, the entity table, and the worker's web views."""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import faust
from faust.streams import _current_event
from faust.web import Request, Response, View

from content_resolver.settings import Settings
from resolution.entities import EntityStore
from streams.handler import EventBatchHandler, EventScope, InboundMessage, OutboundRecord
from streams.kafka import topic_names
from streams.metrics import ResolverMetrics

log = logging.getLogger(__name__)

HandlerFactory = Callable[[EntityStore, EventScope], EventBatchHandler]
HealthCheck = Callable[[], Any]


def _headers(raw: Any) -> list[tuple[str, bytes]]:
    items = raw.items() if isinstance(raw, dict) else (raw or [])
    return [
        (k.decode() if isinstance(k, bytes) else str(k), v if isinstance(v, bytes) else str(v).encode())
        for k, v in items
    ]


@contextmanager
def _as_current_event(event: Any) -> Iterator[None]:
    """Makes ``event`` Faust's current event, so table writes go to its changelog partition."""
    token = _current_event.set(weakref.ref(event)) if event is not None else None
    try:
        yield
    finally:
        if token is not None:
            _current_event.reset(token)


def faust_broker_credentials(settings: Settings) -> Any:
    k = settings.kafka
    if k.sasl_mechanism:
        import ssl

        context = ssl.create_default_context(cafile=k.ssl_cafile or None)
        return faust.SASLCredentials(
            username=k.sasl_username, password=k.sasl_password, mechanism=k.sasl_mechanism, ssl_context=context
        )
    return None


def create_app(
    settings: Settings,
    build_handler: HandlerFactory,
    metrics: ResolverMetrics,
    health: HealthCheck | None = None,
) -> faust.App:
    k = settings.kafka
    w = settings.worker
    names = topic_names(k)
    app = faust.App(
        w.app_id,
        broker=[f"kafka://{server}" for server in k.bootstrap_servers.split(",")],
        broker_credentials=faust_broker_credentials(settings),
        processing_guarantee=w.processing_guarantee,
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        topic_partitions=k.partitions,
        topic_replication_factor=1,
        table_standby_replicas=0,
        web_host="127.0.0.1",
        web_port=w.web_port,
        web_in_thread=False,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=w.commit_interval_s,
        stream_buffer_maxsize=max(w.batch_size * 4, 256),
        producer_linger=0.005,
        autodiscover=False,
    )
    content = app.topic(names.content, key_type=bytes, value_type=bytes, partitions=k.partitions)
    table: MutableMapping[str, Any] = app.Table(
        "entity-state", default=None, partitions=k.partitions, key_type=str, value_type=None
    )
    scope = EventScope(_as_current_event)
    handler = build_handler(EntityStore(table, scope.scope), scope)
    out_topics = {name: app.topic(name, key_type=bytes, value_type=bytes) for name in (names.decisions, names.dlq)}

    async def send(records: list[OutboundRecord]) -> None:
        futures = [await out_topics[r.topic].send(key=r.key, value=r.value, headers=r.headers) for r in records]
        for fut in futures:
            await fut

    @app.agent(content, name="resolve")
    async def resolve(stream: faust.StreamT) -> None:
        async for events in stream.take_events(w.batch_size, within=w.batch_window_s):
            messages = [
                InboundMessage(
                    value=e.message.value,
                    key=e.message.key,
                    headers=_headers(e.message.headers),
                    topic=e.message.topic,
                    partition=e.message.partition,
                    offset=e.message.offset,
                    timestamp_ms=int((e.message.timestamp or 0) * 1000),
                    source=e,
                )
                for e in events
            ]
            await handler.handle(messages, send)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(metrics.exposition(), content_type="text/plain; version=0.0.4")

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            status = await health() if health is not None else {"healthy": True}
            return self.json(status, status=200 if status.get("healthy") else 503)

    @app.page("/entity/{entity_id}")
    class Entity(View):
        async def get(self, request: Request, entity_id: str) -> Response:
            store = EntityStore(table)
            record = store.entity(entity_id)
            if record is None:
                return self.json({"error": f"unknown entity {entity_id}"}, status=404)
            return self.text(json.dumps(record, indent=2), content_type="application/json")

    return app

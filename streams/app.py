"""The Faust application: the resolve agent over content events and feedback, wired.

The pieces live in their own modules: the batch checkpoint (``checkpoint``), the error policy
(``error_policy``), rebalance handling (``rebalance``), the stall check (``stall``), the web
views (``views``), and every use of Faust internals (``faust_adapter``).
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from contextlib import AbstractContextManager
from typing import Any

import faust
from faust.types import TP

from resolution.entities import EntityStore
from settings import Settings
from streams import faust_adapter
from streams.checkpoint import BatchCheckpoint, BatchProcessor, DecisionSender
from streams.error_policy import BatchErrorPolicy, HoldOutagesIsolateDefects
from streams.handler import EventBatchHandler, EventScope, InboundMessage, OutboundRecord
from streams.kafka import topic_names
from streams.metrics import ResolverMetrics
from streams.rebalance import RebalanceHandler
from streams.recovery import DecisionLogCatchUp, OffsetGaps
from streams.stall import StallSupervisor
from streams.state import StagedTable
from streams.status import WorkerStatus
from streams.topics import Schemas
from streams.views import HealthCheck, register_views
from streams.web_access import WebAccess, client_host

HandlerFactory = Callable[[EntityStore, EventScope], EventBatchHandler]


def _headers(raw: Any) -> list[tuple[str, bytes]]:
    items = raw.items() if isinstance(raw, dict) else (raw or [])
    return [
        (k.decode() if isinstance(k, bytes) else str(k), v if isinstance(v, bytes) else str(v).encode())
        for k, v in items
    ]


def table_store(settings: Settings) -> tuple[str, dict[str, Any]]:
    """The Faust store URL for the entity table and the options it is opened with."""
    w = settings.worker
    if w.table_store == "memory":
        # Faust's memory store, but recovery keeps the newest copy of a key (faust_adapter).
        return f"{faust_adapter.NEWEST_COPY_MEMORY_STORE}://", {}
    if w.table_store == "rocksdb":
        mib = 1024 * 1024
        return "rocksdb://", {
            "driver": "rocksdict",
            "block_cache_size": w.table_cache_mb * mib,
            "block_cache_compressed_size": 0,
            "write_buffer_size": w.table_write_buffer_mb * mib,
            "max_write_buffer_number": 2,
        }
    raise ValueError(f"RESOLVER_WORKER_TABLE_STORE={w.table_store!r}: expected 'rocksdb' or 'memory'")


def inbound(event: Any) -> InboundMessage:
    m = event.message
    return InboundMessage(
        value=m.value,
        key=m.key,
        headers=_headers(m.headers),
        topic=m.topic,
        partition=m.partition,
        offset=m.offset,
        timestamp_ms=int((m.timestamp or 0) * 1000),
    )


def partition_scope(events: list[Any]) -> Callable[[int | None], AbstractContextManager[Any]]:
    """State of source partition p is written as Faust's current event of p (its changelog
    partition); state not tied to a partition goes with the batch's first event."""
    by_partition: dict[int, Any] = {}
    for e in events:
        by_partition.setdefault(e.message.partition, e)

    def scope(partition: int | None) -> AbstractContextManager[Any]:
        return faust_adapter.as_current_event(by_partition.get(partition) if partition is not None else events[0])

    return scope


def record_lag(app: faust.App, metrics: ResolverMetrics, events: list[Any]) -> None:
    """Consumer lag per partition of the batch, from the highwater the consumer last fetched."""
    last: dict[Any, int] = {}
    for e in events:
        last[e.message.tp] = max(last.get(e.message.tp, -1), e.message.offset)
    for tp, offset in last.items():
        try:
            highwater = app.consumer.highwater(tp)
        except Exception:  # no fetch yet for this partition: nothing to report
            continue
        metrics.observe_lag(tp.partition, highwater, offset + 1)


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
    error_policy: BatchErrorPolicy | None = None,
) -> faust.App:
    faust_adapter.install_gap_policy()
    faust_adapter.install_stores()
    k = settings.kafka
    w = settings.worker
    names = topic_names(k)
    store_url, store_options = table_store(settings)
    settings.table_dir().mkdir(parents=True, exist_ok=True)
    access = WebAccess(w.web_host, w.web_token)  # refuses to expose the entity views without a token
    app = faust.App(
        w.app_id,
        broker=[f"kafka://{server}" for server in k.bootstrap_servers.split(",")],
        broker_credentials=faust_broker_credentials(settings),
        processing_guarantee="at_least_once",
        key_serializer="raw",
        value_serializer="raw",
        store=store_url,
        datadir=str(settings.table_dir()),
        topic_partitions=k.partitions,
        topic_replication_factor=1,
        table_standby_replicas=0,
        web_host=client_host(w.web_host),
        web_bind=w.web_host,
        web_port=w.web_port,
        web_in_thread=False,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=w.commit_interval_s,
        broker_session_timeout=w.session_timeout_s,
        broker_heartbeat_interval=max(1.0, w.session_timeout_s / 4),
        broker_request_timeout=max(40.0, w.session_timeout_s * 2),
        stream_buffer_maxsize=max(w.batch_size * 4, 256),
        producer_linger=0.005,
        autodiscover=False,
    )
    # Curator feedback shares the agent (and so the order of state changes) with content events.
    content = app.topic(names.content, names.feedback, key_type=bytes, value_type=bytes, partitions=k.partitions)
    table: MutableMapping[str, Any] = app.Table(
        "entity-state", default=None, partitions=k.partitions, options=store_options or None
    )
    out_topics = {name: app.topic(name, key_type=bytes, value_type=bytes) for name in (names.decisions, names.dlq)}
    status = WorkerStatus()
    # Reads take the newest copy of a key among every partition held (streams/state.py).
    copies = faust_adapter.partition_copies(table)
    staged = StagedTable(table, copies)
    scope = EventScope(staged.writing_for)
    handler = build_handler(EntityStore(staged, scope.scope), scope)
    catch_up = DecisionLogCatchUp(k, Schemas.load().decision)

    async def produce(r: OutboundRecord) -> Any:
        return await out_topics[r.topic].send(key=r.key, value=r.value, headers=r.headers, partition=r.partition)

    checkpoint = BatchCheckpoint(staged, catch_up, handler, DecisionSender(produce, status, metrics), status)
    batches = BatchProcessor(checkpoint, error_policy or HoldOutagesIsolateDefects(), status, metrics, partition_scope)

    async def seek(topic: str, partition: int, offset: int) -> None:
        await app.consumer.seek(TP(topic, partition), offset)

    rebalance = RebalanceHandler(
        catch_up, OffsetGaps(), lambda t, p: faust_adapter.committed_offset(app, t, p), seek, metrics
    )
    app.on_partitions_revoked.connect(rebalance.on_partitions_revoked)
    app.on_partitions_assigned.connect(rebalance.on_partitions_assigned)

    @app.agent(content, name="resolve")
    async def resolve(stream: faust.StreamT) -> None:
        # take_events is public on faust.Stream, missing from its StreamT protocol.
        async for events in stream.take_events(w.batch_size, within=w.batch_window_s):  # type: ignore[attr-defined]
            # Faust acknowledges the taken events once this body returns, whatever happened:
            # process() only returns when every event has a decision or a dead letter.
            await batches.process(list(events), [inbound(e) for e in events])
            record_lag(app, metrics, events)
            await rebalance.after_batch([(e.message.topic, e.message.partition, e.message.offset) for e in events])

    app.timer(interval=3.0)(rebalance.reread_overdue)
    app.timer(interval=10.0)(StallSupervisor(app, settings, [names.content, names.feedback], status, metrics).tick)
    register_views(app, metrics, table, copies, status, health, access)
    return app

"""The Faust application: the resolve agent, the entity table, and the worker's web views."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sys
import weakref
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import faust
from confluent_kafka import KafkaError, KafkaException
from faust.streams import _current_event
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP
from faust.web import Request, Response, View

from resolution.entities import EntityStore
from resolution.errors import DependencyUnavailable
from settings import Settings
from streams.handler import EventBatchHandler, EventScope, InboundMessage, OutboundRecord
from streams.kafka import topic_names
from streams.metrics import ResolverMetrics
from streams.recovery import DecisionLogCatchUp, OffsetGaps, ProgressWatch, group_lag, marker_key
from streams.state import StagedTable
from streams.topics import Schemas
from streams.web_access import WebAccess, client_host

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


async def _never_ack_a_gap(self: Any, tp: TP, offset_from: int, offset_to: int) -> None:
    """Replaces Faust's gap handling: it counts offsets it never delivered as acknowledged.

    That is meant for compacted or transactional topics; our content topics are neither, so a gap
    means messages Faust dropped (it does while a rebalance suspends its flow). Counting them as
    done would commit past them and lose them; left unacknowledged they hold the commit back and
    ``OffsetGaps`` reads them again.
    """


@contextmanager
def _no_current_event() -> Iterator[None]:
    """Faust's RocksDB store reads only the current event's partition when there is one; the
    resolver reads the state of every partition this worker holds, as with the memory store."""
    token = _current_event.set(None)
    try:
        yield
    finally:
        _current_event.reset(token)


def table_store(settings: Settings) -> tuple[str, dict[str, Any]]:
    """The Faust store URL for the entity table and the options it is opened with."""
    w = settings.worker
    if w.table_store == "memory":
        return "memory://", {}
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


FaustConsumer._add_gap = _never_ack_a_gap  # type: ignore[method-assign]


def _flow_state(app: faust.App) -> str:
    """Faust's flow-control state and every task's stack, for the log of a stall."""
    consumer = app.consumer
    lines = [
        f"rebalancing={app.rebalancing} flow_control_active={app.flow_control.is_active()} "
        f"consumer_flow_active={getattr(consumer, 'flow_active', '?')}",
        f"read_offset={dict(getattr(consumer, '_read_offset', {}))}",
        f"committed_offset={dict(getattr(consumer, '_committed_offset', {}))}",
        f"paused={sorted(str(tp) for tp in getattr(consumer, '_paused_partitions', ()))}",
    ]
    for task in asyncio.all_tasks():
        out = io.StringIO()
        try:
            task.print_stack(limit=6, file=out)
        except Exception as exc:  # frames of native code have no line numbers
            out.write(f"{task!r}: stack unavailable ({exc!r})")
        lines.append(out.getvalue().strip())
    return "\n".join(lines)


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
    staged = StagedTable(table, _no_current_event)
    scope = EventScope(staged.writing_for)
    handler = build_handler(EntityStore(staged, scope.scope), scope)
    catch_up = DecisionLogCatchUp(k, Schemas.load().decision)
    out_topics = {name: app.topic(name, key_type=bytes, value_type=bytes) for name in (names.decisions, names.dlq)}
    status: dict[str, Any] = {"degraded": {}, "batches": 0, "recovered_decisions": 0}

    gaps = OffsetGaps()

    def committed_offset(topic: str, partition: int) -> int | None:
        # Faust keeps the offsets it resumed reading from; there is no public accessor.
        return app.consumer._committed_offset.get(TP(topic, partition))

    @app.on_partitions_revoked.connect
    async def on_revoked(app: faust.App, revoked: Any, **kwargs: Any) -> None:
        catch_up.forget()
        gaps.forget()

    @app.on_partitions_assigned.connect
    async def on_assigned(app: faust.App, assigned: Any, **kwargs: Any) -> None:
        catch_up.forget()
        gaps.forget()

    async def send(records: list[OutboundRecord]) -> list[int]:
        """Sends all records and waits for every acknowledgement; failed ones are sent again,
        so a batch is never half-published and never acknowledged before its decisions."""
        offsets: list[int | None] = [None] * len(records)
        delay = 0.2
        while True:
            pending = [i for i, off in enumerate(offsets) if off is None]
            if not pending:
                return [int(o) for o in offsets if o is not None]
            futures = []
            for i in pending:
                r = records[i]
                futures.append(
                    await out_topics[r.topic].send(key=r.key, value=r.value, headers=r.headers, partition=r.partition)
                )
            results = await asyncio.gather(*futures, return_exceptions=True)
            failed = 0
            for i, result in zip(pending, results, strict=True):
                if isinstance(result, BaseException):
                    failed += 1
                else:
                    offsets[i] = result.offset
            if failed:
                metrics.retries.labels("kafka").inc(failed)
                status["degraded"]["kafka"] = f"{failed} sends failed; retrying"
                log.warning("%d of %d sends failed; retrying in %.1fs", failed, len(pending), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                status["degraded"].pop("kafka", None)

    def anchors(events: list[Any]) -> dict[int, Any]:
        """One event per source partition: the current event under which its state is written."""
        out: dict[int, Any] = {}
        for e in events:
            out.setdefault(e.message.partition, e)
        return out

    async def process(events: list[Any], messages: list[InboundMessage]) -> None:
        by_partition = anchors(events)

        def under_partition(partition: int | None) -> Any:
            return _as_current_event(by_partition.get(partition) if partition is not None else events[0])

        delay = 0.5
        while True:
            try:
                for partition in sorted(by_partition):
                    with staged.writing_for(partition):
                        replay_store = EntityStore(staged)
                        status["recovered_decisions"] += await catch_up.ensure(
                            partition, replay_store, staged.get, staged.__setitem__
                        )
                ends = await handler.handle(messages, send)
                for partition, end in ends.items():
                    with staged.writing_for(partition):
                        staged[marker_key(partition)] = end
                staged.flush(under_partition)
                status["degraded"].pop("processing", None)
                for dep in ("triton", "milvus"):
                    status["degraded"].pop(dep, None)
                status["batches"] += 1
                return
            except DependencyUnavailable as exc:
                staged.discard()
                metrics.errors.labels(exc.dependency).inc()
                status["degraded"][exc.dependency] = str(exc)[:300]
                log.warning("batch held: %s unavailable (%s); retrying in %.1fs", exc.dependency, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            except (KafkaError, KafkaException) as exc:
                staged.discard()
                metrics.errors.labels("kafka").inc()
                status["degraded"]["kafka"] = str(exc)[:300]
                log.warning("batch held: Kafka error (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            except Exception as exc:  # a defect or an input nobody foresaw: isolate it, keep going
                staged.discard()
                log.exception("batch of %d failed; retrying one message at a time", len(messages))
                if len(messages) == 1:
                    status["degraded"]["processing"] = repr(exc)[:300]
                    await handler.reject(messages[0], "processing_error", f"{type(exc).__name__}: {exc}", send)
                    staged.flush(under_partition)
                    return
                for event, message in zip(events, messages, strict=True):
                    await process([event], [message])
                return

    def record_lag(events: list[Any]) -> None:
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
                )
                for e in events
            ]
            # Faust acknowledges the taken events once this body returns, whatever happened:
            # process() only returns when every event has a decision or a dead letter.
            await process(list(events), messages)
            record_lag(events)
            positions = [(e.message.topic, e.message.partition, e.message.offset) for e in events]
            for topic, partition, start in gaps.observe(positions, committed_offset):
                metrics.offset_gaps.inc()
                log.warning("%s[%d]: messages from offset %d were skipped; reading them again", topic, partition, start)
                await app.consumer.seek(TP(topic, partition), start)

    @app.timer(interval=3.0)
    async def reread_skipped() -> None:
        for topic, partition, start in gaps.overdue(after_s=3.0):
            log.warning("%s[%d]: offset %d has not come back yet; seeking again", topic, partition, start)
            await app.consumer.seek(TP(topic, partition), start)

    watch = ProgressWatch(w.stall_after_s)
    input_topics = [names.content, names.feedback]

    @app.timer(interval=10.0)
    async def watch_progress() -> None:
        try:
            await check_progress()
        except Exception:  # a watchdog must never be what takes the worker down
            log.exception("progress check failed")

    retries_seen = [metrics.retries_total()]

    async def check_progress() -> None:
        assigned = {(tp.topic, tp.partition) for tp in app.consumer.assignment() if tp.topic in input_topics}
        # A batch inside its retry budget (Triton, Milvus or Kafka retried since the last check) is
        # waiting on a dependency, like one held after the budget ran out.
        retries = metrics.retries_total()
        retrying = retries != retries_seen[0]
        retries_seen[0] = retries
        if not assigned:
            stalled = watch.check(status["batches"], 0, False)
        else:
            try:
                lag = await asyncio.to_thread(group_lag, k, w.app_id, input_topics)
            except (KafkaError, KafkaException) as exc:
                log.debug("lag unknown: %s", exc)
                return
            waiting = sum(n for tp, n in lag.items() if tp in assigned)
            stalled = watch.check(status["batches"], waiting, retrying or bool(status["degraded"]))
        metrics.stalled_seconds.set(stalled)
        if not stalled:
            status.pop("stalled_s", None)
            return
        first = "stalled_s" not in status
        status["stalled_s"] = round(stalled)
        if first:
            log.error("stalled: input waiting and no batch decided for %.0fs\n%s", stalled, _flow_state(app))
        if w.stall_restart_s and stalled >= w.stall_restart_s:
            # Crash-only: nothing is lost by restarting (decisions are acknowledged before offsets
            # are committed), and a fresh interpreter gets a fresh Faust recovery. exec keeps the
            # pid, so whoever supervises the worker (or kills it) still holds the right process.
            log.critical("stalled for %.0fs: restarting the worker in place", stalled)
            logging.shutdown()
            os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(metrics.exposition(), content_type="text/plain; version=0.0.4")

    @app.page("/state")
    class State(View):
        """The whole entity state of this worker (for audits and the replay check); not for hot paths."""

        async def get(self, request: Request) -> Response:
            if not access.allows(request.headers.get("Authorization")):
                return _unauthorized(self)
            body = {str(key): value for key, value in table.items() if not str(key).startswith("o:")}
            return self.json(body)

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            live = await health() if health is not None else {"healthy": True}
            healthy = bool(live.get("healthy")) and not status["degraded"] and "stalled_s" not in status
            metrics.healthy.set(1 if healthy else 0)
            body = {**live, **status, "healthy": healthy}
            return self.json(body, status=200 if healthy else 503)

    @app.page("/entity/{entity_id}")
    class Entity(View):
        async def get(self, request: Request, entity_id: str) -> Response:
            if not access.allows(request.headers.get("Authorization")):
                return _unauthorized(self)
            store = EntityStore(table)
            record = store.describe(entity_id)
            if record is None:
                return self.json({"error": f"unknown entity {entity_id}"}, status=404)
            return self.text(json.dumps(record, indent=2), content_type="application/json")

    return app


def _unauthorized(view: View) -> Response:
    return view.json(
        {"error": "this view asks for the worker's web token (Authorization: Bearer ...)"},
        status=401,
        headers={"WWW-Authenticate": "Bearer"},
    )

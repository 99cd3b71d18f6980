"""The worker's batch path without Kafka: the checkpoint order, the error policy, the sender,
the staged state, the event scope, the decisions-log catch-up and the batch handler, with fakes
of the Kafka side (records sent are kept in a list; the table is a dict)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import KafkaException
from opentelemetry.trace import NoOpTracer

from resolution.candidates import CandidateFinder, InMemoryVectorIndex
from resolution.entities import EntityStore
from resolution.errors import DependencyUnavailable
from resolution.matcher import RuleScorer
from resolution.model import ContentItem, Decision
from resolution.policy import DecisionPolicy, Thresholds
from resolution.resolver import BatchResolver
from settings import REPO_ROOT, KafkaSettings, WorkerSettings
from streams import faust_adapter, recovery
from streams.checkpoint import BatchCheckpoint, BatchProcessor, DecisionSender
from streams.error_policy import HoldOutagesIsolateDefects
from streams.handler import WORKER_HEADER, EventBatchHandler, EventScope, InboundMessage, OutboundRecord
from streams.kafka import topic_names
from streams.metrics import ResolverMetrics
from streams.recovery import DecisionLogCatchUp, marker_key
from streams.state import StagedTable, value_of, version_of
from streams.status import WorkerStatus
from streams.topics import Schemas
from streams.validation import EventLimits, EventValidator
from tests.unit.text_fakes import BOW_DIM, BagOfWordsEncoder

SCHEMAS = Schemas.load()
TOPICS = topic_names(KafkaSettings())
FAST = HoldOutagesIsolateDefects(initial_delay_s=0.001, max_delay_s=0.002)


def item(n: int, title: str = "Silver and Gold") -> ContentItem:
    return ContentItem(
        event_id=f"e{n}", content_id=f"c{n}", source="store", kind="recording", title=title,
        artists=("Little Big Town",), duration_ms=215_000, produced_at_ms=1,
    )  # fmt: skip


def message(value: bytes | None, partition: int = 0, offset: int = 0, topic: str = TOPICS.content) -> InboundMessage:
    return InboundMessage(value, b"k", [], topic, partition, offset, 0)


def content_message(i: ContentItem, partition: int = 0, offset: int = 0) -> InboundMessage:
    return message(SCHEMAS.content_event.encode(i.to_record()), partition, offset)


class RecordingTable(dict[str, Any]):
    """The Faust table's stand-in: remembers each write and the scope it was made under."""

    def __init__(self) -> None:
        super().__init__()
        self.scope: Any = None
        self.writes: list[tuple[str, Any]] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes.append((key, self.scope))
        super().__setitem__(key, value)


def scope_of(table: RecordingTable) -> Any:
    @contextmanager
    def scope(partition: int | None) -> Any:
        previous, table.scope = table.scope, partition
        try:
            yield
        finally:
            table.scope = previous

    return scope


@dataclass
class Acked:
    offset: int


class FakeProducer:
    """Kafka's acknowledgements: offsets counted per topic; ``fail`` sends fail once each."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.sent: list[OutboundRecord] = []
        self.offsets: dict[str, int] = {}

    async def __call__(self, record: OutboundRecord) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.fail:
            self.fail -= 1
            future.set_exception(KafkaException("broker away"))
        else:
            self.sent.append(record)
            offset = self.offsets.get(record.topic, 0)
            self.offsets[record.topic] = offset + 1
            future.set_result(Acked(offset))
        return future


class NoCatchUp:
    def __init__(self) -> None:
        self.partitions: list[int] = []

    async def ensure(self, partition: int, store: Any, get: Any, set_: Any) -> int:
        self.partitions.append(partition)
        return 0


def handler(staged: StagedTable, scope: EventScope | None = None, worker_id: str = "") -> EventBatchHandler:
    store = EntityStore(staged, scope.scope) if scope else EntityStore(staged)
    finder = CandidateFinder(InMemoryVectorIndex(BOW_DIM), 10, 100_000, BOW_DIM)
    resolver = BatchResolver(
        BagOfWordsEncoder(), finder, RuleScorer(), DecisionPolicy(Thresholds()), store, max_candidates=10
    )
    validator = EventValidator(SCHEMAS.content_event, EventLimits.from_settings(WorkerSettings()))
    return EventBatchHandler(
        resolver, validator, SCHEMAS, TOPICS, NoOpTracer(), ResolverMetrics(), scope, worker_id=worker_id
    )


class Worker:
    """The checkpoint and processor wired as create_app wires them, on fakes."""

    def __init__(self, produce: FakeProducer | None = None, batch_handler: Any = None) -> None:
        self.table = RecordingTable()
        self.staged = StagedTable(self.table)
        self.scope = EventScope(self.staged.writing_for)
        self.produce = produce or FakeProducer()
        self.status = WorkerStatus()
        self.metrics = ResolverMetrics()
        self.catch_up = NoCatchUp()
        self.handler = batch_handler or handler(self.staged, self.scope)
        sender = DecisionSender(self.produce, self.status, self.metrics)
        self.checkpoint = BatchCheckpoint(self.staged, self.catch_up, self.handler, sender, self.status)
        self.processor = BatchProcessor(
            self.checkpoint, FAST, self.status, self.metrics, lambda _e: scope_of(self.table)
        )

    def process(self, messages: list[InboundMessage]) -> None:
        asyncio.run(self.processor.process(list(range(len(messages))), messages))

    def sent(self, topic: str) -> list[dict[str, Any]]:
        schema = SCHEMAS.decision if topic == TOPICS.decisions else SCHEMAS.dead_letter
        return [schema.decode(r.value) for r in self.produce.sent if r.topic == topic]


# ---- the checkpoint -----------------------------------------------------------------------


def test_decisions_are_acknowledged_before_any_state_is_written() -> None:
    order: list[str] = []
    w = Worker()
    original_send = w.checkpoint._sender.send

    async def send(records: list[OutboundRecord]) -> list[int]:
        order.append(f"send, {len(w.table.writes)} table writes so far")
        return await original_send(records)

    w.checkpoint._sender.send = send  # type: ignore[method-assign]
    w.process([content_message(item(1), 0, 0), content_message(item(2, "Other Song"), 1, 0)])
    assert order == ["send, 0 table writes so far"]
    assert {d["event_id"] for d in w.sent(TOPICS.decisions)} == {"e1", "e2"}
    assert w.staged[marker_key(0)] == 1 and w.staged[marker_key(1)] == 2, "decisions offset reached, per partition"
    assert w.staged.pending == 0 and w.status.batches == 1
    assert w.catch_up.partitions == [0, 1], "each partition caught up before deciding"
    # Every state key is written under its source partition's scope.
    assert dict(w.table.writes)["v:e2"] == 1


def test_each_decision_names_the_worker_that_made_it_and_dead_letters_keep_their_headers() -> None:
    staged = StagedTable(RecordingTable())
    scope = EventScope(staged.writing_for)
    w = Worker(batch_handler=handler(staged, scope, worker_id="host-a/123"))
    w.process([content_message(item(1), 0, 0), InboundMessage(b"not avro", b"k", [], "content-events", 0, 1, 0)])
    decisions = [r for r in w.produce.sent if r.topic == TOPICS.decisions]
    dead = [r for r in w.produce.sent if r.topic == TOPICS.dlq]
    assert len(decisions) == 1 and (WORKER_HEADER, b"host-a/123") in decisions[0].headers
    assert len(dead) == 1 and WORKER_HEADER not in dict(dead[0].headers), "a dead letter keeps the event's headers"


def test_an_outage_holds_the_batch_discards_its_state_and_retries_until_it_passes() -> None:
    class TritonDown(DependencyUnavailable):
        dependency = "triton"

    class FlakyHandler:
        def __init__(self, inner: EventBatchHandler) -> None:
            self.inner, self.calls = inner, 0

        async def handle(self, messages: list[InboundMessage], send: Any) -> dict[int, int]:
            self.calls += 1
            ends = await self.inner.handle(messages, send) if self.calls == 3 else None
            if ends is None:
                w.staged["half-done"] = True  # state written before the failure must not survive it
                raise TritonDown("triton down")
            return ends

    w = Worker()
    w.handler = flaky = FlakyHandler(w.handler)
    w.checkpoint._handler = flaky  # type: ignore[assignment]
    w.process([content_message(item(1))])
    assert flaky.calls == 3
    assert "half-done" not in w.table
    assert [d["event_id"] for d in w.sent(TOPICS.decisions)] == ["e1"], "one decision, no duplicate"
    assert w.status.degraded == {}, "recovered after the outage"
    assert w.metrics.errors.labels("triton")._value.get() == 2


def test_a_defect_is_isolated_to_its_message_which_is_dead_lettered() -> None:
    class Defect:
        def __init__(self, inner: EventBatchHandler) -> None:
            self.inner = inner

        async def handle(self, messages: list[InboundMessage], send: Any) -> dict[int, int]:
            if any(m.offset == 1 for m in messages):
                raise ZeroDivisionError("nobody foresaw this")
            return await self.inner.handle(messages, send)

        async def reject(self, *args: Any) -> None:
            await self.inner.reject(*args)

    w = Worker()
    w.checkpoint._handler = Defect(w.handler)  # type: ignore[assignment]
    w.process([content_message(item(1), 0, 0), content_message(item(2, "Another"), 0, 1)])
    assert [d["event_id"] for d in w.sent(TOPICS.decisions)] == ["e1"]
    dead = w.sent(TOPICS.dlq)
    assert [(d["reason"], d["offset"]) for d in dead] == [("processing_error", 1)]
    assert "ZeroDivisionError" in dead[0]["detail"]
    assert "processing" in w.status.degraded, "/health says a message could not be processed"


def test_failed_sends_are_sent_again_until_all_are_acknowledged() -> None:
    w = Worker(produce=FakeProducer(fail=2))
    w.process([content_message(item(1), 0, 0), content_message(item(2, "Other"), 0, 1), message(b"junk", 0, 2)])
    assert len(w.sent(TOPICS.decisions)) == 2 and len(w.sent(TOPICS.dlq)) == 1
    assert w.metrics.retries.labels("kafka")._value.get() >= 2
    assert "kafka" not in w.status.degraded


# ---- the error policy ---------------------------------------------------------------------


def test_the_error_policy_holds_outages_and_isolates_everything_else() -> None:
    class MilvusDown(DependencyUnavailable):
        dependency = "milvus"

    policy = HoldOutagesIsolateDefects()
    assert policy.outage(MilvusDown("x")) == "milvus"
    assert policy.outage(KafkaException("x")) == "kafka"
    assert policy.outage(ValueError("x")) is None
    assert policy.outage(KeyError("x")) is None


def test_an_injected_policy_decides_what_is_an_outage() -> None:
    class EverythingIsAnOutage:
        initial_delay_s, max_delay_s = 0.001, 0.001

        def outage(self, exc: BaseException) -> str | None:
            return "flaky"

    calls = []

    class FailsTwice:
        async def handle(self, messages: list[InboundMessage], send: Any) -> dict[int, int]:
            calls.append(1)
            if len(calls) < 3:
                raise ValueError("transient")
            return {}

    w = Worker(batch_handler=FailsTwice())
    w.processor._policy = EverythingIsAnOutage()
    w.process([message(b"x")])
    assert len(calls) == 3 and w.status.batches == 1 and not w.sent(TOPICS.dlq)


# ---- StagedTable and EventScope -----------------------------------------------------------


def test_staged_table_reads_its_writes_and_applies_them_only_on_flush() -> None:
    table = RecordingTable()
    table["kept"] = 1
    table["gone"] = 2
    staged = StagedTable(table)
    with staged.writing_for(3):
        staged["new"] = "n"
        del staged["gone"]
    assert staged["new"] == "n" and staged.get("gone") is None and "gone" not in staged
    assert sorted(staged) == ["kept", "new"] and len(staged) == 2
    assert "new" not in table and "gone" in table, "nothing reaches the table before the flush"
    with pytest.raises(KeyError):
        staged["gone"]
    staged.flush(scope_of(table))
    assert {k: value_of(v) for k, v in table.items() if value_of(v) is not None} == {"kept": 1, "new": "n"}
    assert value_of(table["gone"]) is None and version_of(table["gone"]) > 0, "a deletion is a versioned tombstone"
    assert sorted(staged) == ["kept", "new"] and staged.get("gone") is None
    assert set(table.writes[-2:]) == {("new", 3), ("gone", 3)}, "written under its origin's scope"
    with staged.writing_for(0):
        staged["dropped"] = 1
    staged.discard()
    assert staged.pending == 0 and "dropped" not in staged


def test_event_scope_tags_each_event_with_its_source_partition() -> None:
    seen = []

    @contextmanager
    def tag(partition: int | None) -> Any:
        seen.append(partition)
        yield

    scope = EventScope(tag)
    scope.bind({"a": 2, "b": 0})
    for event_id in ("a", "b", "unknown"):
        with scope.scope(event_id):
            pass
    assert seen == [2, 0, None]


# ---- DecisionLogCatchUp -------------------------------------------------------------------


def test_catch_up_applies_missing_decisions_once_per_assignment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Decisions as the topic holds them, from a resolver that ran elsewhere.
    elsewhere = Worker()
    elsewhere.process([content_message(item(1)), content_message(item(2, "Different Title"))])
    log = elsewhere.sent(TOPICS.decisions)
    reads: list[int] = []

    def read_partition(kafka: Any, topic: str, partition: int, start: int, schema: Any) -> Any:
        reads.append(start)
        return log[start:], len(log)

    monkeypatch.setattr(recovery, "read_partition", read_partition)
    table: dict[str, Any] = {marker_key(0): 1}  # the state already has the first decision
    store = EntityStore(table)
    first = log[0]
    store.apply(Decision.from_record(first), first["decision_id"])
    catch_up = DecisionLogCatchUp(KafkaSettings(), SCHEMAS.decision)
    assert asyncio.run(catch_up.ensure(0, store, table.get, table.__setitem__)) == 1
    assert table[marker_key(0)] == 2 and store.applied(log[1]["decision_id"])
    assert asyncio.run(catch_up.ensure(0, store, table.get, table.__setitem__)) == 0
    assert reads == [1], "caught up once until the next rebalance"
    catch_up.forget()
    table[marker_key(0)] = 0  # even from an older marker, nothing is applied twice
    assert asyncio.run(catch_up.ensure(0, store, table.get, table.__setitem__)) == 0
    assert reads == [1, 0]


# ---- EventBatchHandler --------------------------------------------------------------------


def test_handler_decides_valid_events_dead_letters_the_rest_and_sends_once() -> None:
    table: dict[str, Any] = {}
    h = handler(StagedTable(table))
    sends: list[list[OutboundRecord]] = []

    async def send(records: list[OutboundRecord]) -> list[int]:
        sends.append(records)
        return list(range(10, 10 + len(records)))

    a, b = item(1), item(2)  # the same song twice: one NEW, one MERGE
    messages = [content_message(a, 1, 5), message(b"\x00not avro", 1, 6), content_message(b, 2, 7)]
    ends = asyncio.run(h.handle(messages, send))
    assert len(sends) == 1
    decisions = [SCHEMAS.decision.decode(r.value) for r in sends[0] if r.topic == TOPICS.decisions]
    dead = [SCHEMAS.dead_letter.decode(r.value) for r in sends[0] if r.topic == TOPICS.dlq]
    assert [d["action"] for d in decisions] == ["NEW", "MERGE"]
    assert [(d["partition"], d["offset"]) for d in dead] == [(1, 6)] and dead[0]["original"] == b"\x00not avro"
    assert {r.partition for r in sends[0] if r.topic == TOPICS.decisions} == {1, 2}, "decisions keep the partition"
    offsets = {r.partition: off for r, off in zip(sends[0], range(10, 13), strict=True) if r.topic == TOPICS.decisions}
    assert ends == {p: off + 1 for p, off in offsets.items()}


# ---- the Faust adapter --------------------------------------------------------------------


def test_faust_still_has_what_the_adapter_relies_on() -> None:
    """Fails loudly on a Faust upgrade that moves any internal the delivery guarantee rests on."""
    assert faust_adapter.missing_internals() == []


def test_importing_the_app_changes_nothing_in_faust_building_it_does() -> None:
    code = (
        "import streams.app; from streams import faust_adapter as f; assert not f.gap_policy_installed(), 'at import';"
        " from settings import Settings; from content_resolver.composition import build_worker;"
        " build_worker(Settings.from_env()); assert f.gap_policy_installed(), 'not at construction'"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]

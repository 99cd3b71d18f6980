"""The topics against independent Avro implementations: Java's reference library and the Python `avro` package.

Each writes ContentEvents with the current schema and with evolved ones (one more optional field, one
field fewer), the worker decides them, and each reads back and decodes every decision, dead letter and
feedback record. The evolved writer schemas reach the worker as a producer's would: a folder in
RESOLVER_KAFKA_SCHEMA_DIRS."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.worker import WorkerProcess, isolated_namespace
from streams.feedback import new_feedback, send_feedback
from streams.kafka import ensure_topics, read_topic
from streams.topics import RELEASED_DIR, SCHEMA_DIR
from telemetry import tracer_provider
from tests.integration.streaming import SCHEMAS, produce, wait_decisions
from tests.interop import python_avro
from tests.interop.evolved import write_evolved
from tests.interop.java_program import JavaInterop, JavaUnavailable
from tests.workers import drop_namespace, worker_process

pytestmark = pytest.mark.integration

TAGS = ("current", "added", "removed")
PER_SCHEMA = 3  # three songs: one NEW and two MERGEs each, across the three writer schemas
GARBAGE = b"not an avro record at all"  # no single-object marker


@pytest.fixture(scope="module")
def evolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("evolved-schemas")
    return {"current": SCHEMA_DIR / "ContentEvent.avsc", **write_evolved(folder)}


@pytest.fixture(scope="module")
def interop_worker(stack, evolved: dict[str, Path], tmp_path_factory) -> Iterator[WorkerProcess]:
    settings, env = isolated_namespace(
        "interop",
        "test",
        {"RESOLVER_WORKER_BATCH_WINDOW_S": "0.05", "RESOLVER_KAFKA_SCHEMA_DIRS": str(evolved["added"].parent)},
    )
    ensure_topics(settings.kafka)
    handle = worker_process(settings, env, tmp_path_factory.mktemp("worker") / "worker.log")
    handle.start()
    yield handle
    handle.stop()
    drop_namespace(settings)


@pytest.fixture(scope="module")
def java(stack) -> JavaInterop:
    try:
        return JavaInterop.build(stack.stack.cache_dir)
    except JavaUnavailable as exc:
        pytest.skip(f"Java interop skipped: {exc}")


def released(name: str) -> list[Path]:
    return sorted((RELEASED_DIR / name).glob("*.avsc"))


def feedback_and_garbage(worker: WorkerProcess, left: str, right: str) -> None:
    """A curator verdict (feedback topic) and a broken record (to the DLQ), both from our own code."""
    tracing = tracer_provider("test-interop", worker.settings.worker.otlp_endpoint)
    fb = new_feedback(left, right, "same", "interop-test")
    send_feedback(worker.settings.kafka, SCHEMAS.feedback, tracing.get_tracer("tests"), [fb])
    tracing.shutdown()
    produce(worker.settings, [], raw=[GARBAGE])


def assert_decided_once(decisions: list[dict], event_ids: set[str]) -> dict[str, dict]:
    content = [d for d in decisions if d["trigger"] == "content-event"]
    counts = Counter(d["event_id"] for d in content)
    assert {e: counts[e] for e in event_ids} == dict.fromkeys(event_ids, 1), "every event decided exactly once"
    return {d["event_id"]: d for d in content if d["event_id"] in event_ids}


def test_java_reference_implementation_round_trip(interop_worker: WorkerProcess, java: JavaInterop, evolved) -> None:
    k = interop_worker.settings.kafka
    produced = {tag: java.produce(k.bootstrap_servers, k.content_topic, evolved[tag], tag, PER_SCHEMA) for tag in TAGS}
    assert produced["current"][0]["header"] == "c301" + SCHEMAS.content_event.fingerprint.hex()
    event_ids = {p["event_id"] for rows in produced.values() for p in rows}
    feedback_and_garbage(interop_worker, "java:current:0", "java:added:0")
    assert event_ids <= wait_decisions(interop_worker.settings, event_ids).keys(), "every event decided"

    topics = {
        "decisions": (k.decisions_topic, "ResolutionDecision"),
        "dlq": (k.dlq_topic, "DeadLetter"),
        "feedback": (k.feedback_topic, "CuratorFeedback"),
    }
    read: dict[str, list[dict]] = {}
    for label, (topic, schema) in topics.items():
        expect = sum(1 for _ in read_topic(k, topic))
        records, summary = java.read(
            k.bootstrap_servers, topic, expect, SCHEMA_DIR / f"{schema}.avsc", released(schema)
        )
        print(f"[interop] java {label}: {json.dumps(summary)}")
        assert summary["read"] == expect and summary["decoded"] == expect, [r for r in records if not r["ok"]]
        read[label] = [r["record"] for r in records]

    decided = assert_decided_once(read["decisions"], event_ids)
    # The same song from the three writer schemas is one entity: the evolved events were resolved.
    for i in range(PER_SCHEMA):
        entities = {decided[f"java-{tag}-{i}"]["entity_id"] for tag in TAGS}
        assert len(entities) == 1, {tag: decided[f"java-{tag}-{i}"] for tag in TAGS}
    print("[interop] a decision decoded by Java:", json.dumps(decided["java-added-1"])[:1500])
    assert "malformed_avro" in [d["reason"] for d in read["dlq"]]
    assert [(f["left_content_id"], f["verdict"]) for f in read["feedback"]] == [("java:current:0", "same")]
    assert any(d["action"] == "CONSTRAIN" for d in read["decisions"])


def test_python_avro_package_round_trip(interop_worker: WorkerProcess, evolved) -> None:
    from confluent_kafka import Producer

    k = interop_worker.settings.kafka
    writers = {tag: python_avro.load(path) for tag, path in evolved.items()}
    producer = Producer({"bootstrap.servers": k.bootstrap_servers, "enable.idempotence": True})
    event_ids: set[str] = set()
    for tag, schema in writers.items():
        names = {f.name for f in schema.fields}
        for i in range(PER_SCHEMA):
            title = ("Lanterns Over Hollow Creek", "Saltwater Letters", "The Orchard in November")[i]
            event_id = f"pyavro-{tag}-{i}"
            record = {
                "event_id": event_id,
                "content_id": f"pyavro:{tag}:{i}",
                "source": f"pyavro-{tag}",
                "kind": "recording",
                "title": title,
                "artists": ["Nell Harrow"],
                "duration_ms": 190_000 + 1000 * i,
                "produced_at_ms": int(time.time() * 1000),
                **({"language": "en"} if "language" in names else {}),
                **({"mood": "wistful"} if "mood" in names else {}),
            }
            defaults = {f.name: f.default for f in schema.fields if f.has_default and f.name not in record}
            producer.produce(
                k.content_topic, key=title.lower().encode(), value=python_avro.encode(schema, {**defaults, **record})
            )
            event_ids.add(event_id)
    # A writer schema the resolver does not know (title removed, never released): dead-lettered.
    unknown = python_avro.load(evolved["current"])
    unknown_raw = json.loads(str(unknown))
    unknown_raw["fields"] = [f for f in unknown_raw["fields"] if f["name"] != "title"]
    stranger = python_avro.record_schema(json.dumps(unknown_raw))
    stray = python_avro.encode(
        stranger,
        {f.name: f.default if f.has_default else "x" for f in stranger.fields} | {"artists": [], "produced_at_ms": 1},
    )
    producer.produce(k.content_topic, key=b"stray", value=stray)
    assert producer.flush(30) == 0
    assert event_ids <= wait_decisions(interop_worker.settings, event_ids).keys(), "every event decided"

    for topic, name in (
        (k.decisions_topic, "ResolutionDecision"),
        (k.dlq_topic, "DeadLetter"),
        (k.feedback_topic, "CuratorFeedback"),
    ):
        reader = python_avro.SingleObjectReader(
            python_avro.load(SCHEMA_DIR / f"{name}.avsc"), [python_avro.load(p) for p in released(name)]
        )
        raw = [r.value for r in read_topic(k, topic)]
        decoded = [reader.decode(v) for v in raw]
        assert len(decoded) == len(raw)
        if name == "DeadLetter":
            assert [d["reason"] for d in decoded if d["original"] == stray] == ["unknown_fingerprint"]
        if name == "ResolutionDecision":
            decided = assert_decided_once(decoded, event_ids)
            for i in range(PER_SCHEMA):
                assert len({decided[f"pyavro-{tag}-{i}"]["entity_id"] for tag in TAGS}) == 1

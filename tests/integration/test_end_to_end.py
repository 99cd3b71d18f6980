"""The walking skeleton on real services: Kafka, Triton, Milvus, Jaeger and a worker process."""

from __future__ import annotations

import pytest

from resolution.model import ContentItem
from streams.topics import MAGIC
from tests.integration.streaming import SCHEMAS, dead_letters, jaeger_trace, produce, wait_decisions

pytestmark = pytest.mark.integration


def item(event_id: str, content_id: str, title: str, artist: str, duration_s: int, **kw: object) -> ContentItem:
    return ContentItem(
        event_id=event_id,
        content_id=content_id,
        source=str(kw.pop("source", "store-a")),
        kind=str(kw.pop("kind", "recording")),
        title=title,
        artists=(artist,),
        duration_ms=duration_s * 1000,
        **kw,  # type: ignore[arg-type]
    )


CATALOGUE = [
    item("ev-1", "a:100", "Silver and Gold", "Little Big Town", 215, isrc="USUM71400001"),
    item("ev-2", "a:200", "Quiet Harbour Lights", "Marla Quinn", 244),
    item("ev-3", "b:100", "Silver And Gold", "Little Big Town", 216, source="store-b", isrc="USUM71400001"),
    item("ev-4", "b:300", "Thunder Over Velvet Hills", "The Copper Foxes", 187, source="store-b"),
]


def test_duplicate_is_merged_and_distinct_songs_are_new(worker) -> None:
    settings = worker.settings
    produce(settings, CATALOGUE)
    found = wait_decisions(settings, {i.event_id for i in CATALOGUE})
    assert set(found) == {i.event_id for i in CATALOGUE}
    assert all(len(v) == 1 for v in found.values()), "exactly one decision per event"
    d = {eid: v[0] for eid, v in found.items()}
    assert d["ev-1"]["action"] == "NEW"
    assert d["ev-2"]["action"] == "NEW"
    assert d["ev-4"]["action"] == "NEW"
    assert d["ev-3"]["action"] == "MERGE"
    assert d["ev-3"]["entity_id"] == d["ev-1"]["entity_id"]
    assert len({d["ev-1"]["entity_id"], d["ev-2"]["entity_id"], d["ev-4"]["entity_id"]}) == 3
    # Evidence travels with the decision.
    merge = d["ev-3"]
    assert merge["candidates"] and merge["candidates"][0]["content_id"] == "a:100"
    assert merge["signals"]["isrc_equal"] == 1.0
    assert merge["model_version"] and len(merge["trace_id"]) == 32


def test_trace_covers_producer_and_every_stage(worker) -> None:
    settings = worker.settings
    one = item("ev-trace", "t:1", "Lanterns in the Rain", "Ada Mireles", 201)
    traces = produce(settings, [one])
    found = wait_decisions(settings, {"ev-trace"})
    decision = found["ev-trace"][0]
    assert decision["trace_id"] == traces["ev-trace"], "the decision continues the producer's trace"
    trace = jaeger_trace(settings, decision["trace_id"], want_spans=10)
    assert trace is not None, "Jaeger returned no trace"
    spans = {s["spanID"]: s for s in trace["spans"]}
    by_name = {s["operationName"]: s for s in trace["spans"]}
    for stage in ("produce content-event", "resolve", "consume", "embed", "search", "score", "decide", "produce"):
        assert stage in by_name, f"span {stage!r} missing; have {sorted(by_name)}"

    def parent(span: dict) -> str | None:
        refs = [r["spanID"] for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
        return spans[refs[0]]["operationName"] if refs and refs[0] in spans else None

    assert parent(by_name["resolve"]) == "produce content-event"
    for stage in ("consume", "embed", "search", "score", "decide", "produce"):
        assert parent(by_name[stage]) == "resolve"


def test_bad_input_goes_to_the_dlq_and_the_worker_goes_on(worker) -> None:
    settings = worker.settings
    garbage = b"not avro at all"
    wrong_fp = MAGIC + b"\x00" * 8 + b"\x02"
    too_long = SCHEMAS.content_event.encode(
        {**item("ev-bad", "x:1", "x" * 5000, "Somebody", 100).to_record(), "produced_at_ms": 1}
    )
    good = [
        item("ev-after-1", "g:1", "Morning Ferry", "Isla Trent", 199),
        item("ev-after-2", "g:2", "Paper Comets", "Juno Vale", 231),
    ]
    produce(settings, good, raw=[garbage, wrong_fp, too_long])
    found = wait_decisions(settings, {"ev-after-1", "ev-after-2"})
    assert {"ev-after-1", "ev-after-2"} <= found.keys()
    letters = dead_letters(settings)
    reasons = sorted(x["reason"] for x in letters)
    assert reasons == ["field_too_long", "malformed_avro", "unknown_fingerprint"], letters
    originals = {bytes(x["original"]) for x in letters}
    assert garbage in originals and wrong_fp in originals
    assert all(x["topic"] == settings.kafka.content_topic and x["offset"] >= 0 for x in letters)
    assert worker.proc is not None and worker.proc.poll() is None, "the worker is still running"

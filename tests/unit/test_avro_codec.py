"""The single-object codec against the Apache Avro Python package, schema resolution and old records."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
import pytest

from streams.metrics import ResolverMetrics
from streams.topics import LEGACY_READS, MAGIC, SCHEMA_DIR, SCHEMA_NAMES, CodecError, Schemas, SchemaStore
from tests.interop.evolved import write_evolved

EVENT: dict[str, Any] = {
    "event_id": "e1",
    "content_id": "c1",
    "source": "label",
    "kind": "recording",
    "title": "Silver and Gold",
    "artists": ["Little Big Town"],
    "release": None,
    "duration_ms": 215000,
    "isrc": None,
    "year": 2020,
    "language": "en",
    "audio_ref": None,
    "image_ref": None,
    "extra": {},
    "produced_at_ms": 1,
}


def reference_schema(raw: dict) -> avro.schema.Schema:
    return avro.schema.parse(json.dumps(raw))


def reference_encode(raw: dict, record: dict) -> bytes:
    """Single-object encoding written with the reference package's fingerprint and encoder, not ours."""
    schema = reference_schema(raw)
    buf = io.BytesIO()
    avro.io.DatumWriter(schema).write(record, avro.io.BinaryEncoder(buf))
    return MAGIC + schema.fingerprint("CRC-64-AVRO") + buf.getvalue()


def reference_decode(raw: dict, data: bytes) -> dict:
    schema = reference_schema(raw)
    assert data[:2] == MAGIC
    assert data[2:10] == schema.fingerprint("CRC-64-AVRO"), "header is not the spec's fingerprint"
    decoded = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(data[10:])))
    assert isinstance(decoded, dict)
    return decoded


def current(name: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_header_is_the_reference_fingerprint(name: str) -> None:
    store = SchemaStore.load()
    ours = next(v for v in store.versions if v.name == name and v.version == "current")
    assert ours.fingerprint == reference_schema(current(name)).fingerprint("CRC-64-AVRO")


def test_the_issue_reports_this_content_event_fingerprint() -> None:
    # What Java's BinaryMessageEncoder writes for ContentEvent.avsc (the issue quotes it).
    assert Schemas.load().content_event.fingerprint.hex() == "65b297306c5be9ff"


def test_round_trip_with_the_reference_package() -> None:
    codec = Schemas.load().content_event
    assert codec.decode(reference_encode(current("ContentEvent"), EVENT)) == EVENT
    assert reference_decode(current("ContentEvent"), codec.encode(EVENT)) == EVENT


def test_old_byte_order_still_reads_and_is_counted() -> None:
    codec = Schemas.load().content_event
    new = codec.encode(EVENT)
    old = new[:2] + new[2:10][::-1] + new[10:]
    before = LEGACY_READS["ContentEvent"]
    assert codec.decode(old) == EVENT
    assert LEGACY_READS["ContentEvent"] == before + 1
    codec.decode(new)
    assert LEGACY_READS["ContentEvent"] == before + 1
    exposition = ResolverMetrics().exposition().decode()
    assert f'resolver_legacy_fingerprint_records_total{{schema="ContentEvent"}} {before + 1}.0' in exposition


def test_released_decision_v1_resolves_to_the_current_schema() -> None:
    v1 = json.loads((SCHEMA_DIR / "released" / "ResolutionDecision" / "1.avsc").read_text())
    record: dict[str, Any] = {
        "decision_id": "d1",
        "event_id": "e1",
        "content_id": "c1",
        "action": "NEW",
        "entity_id": "n1",
        "work_id": None,
        "related_entity_id": None,
        "relation": None,
        "confidence": 1.0,
        "candidates": [{"content_id": "c0", "entity_id": "n0", "score": 0.1, "relation": "none", "signals": {}}],
        "signals": {},
        "reason": "",
        "previous_entity_ids": [],
        "members": [],
        "model_version": "m",
        "trace_id": "t",
        "event_produced_at_ms": 1,
        "decided_at_ms": 2,
    }
    decoded = Schemas.load().decision.decode(reference_encode(v1, record))
    assert decoded["trigger"] == "content-event" and decoded["sequence"] == 0 and decoded["new_entity_ids"] == []
    assert decoded["candidates"][0]["p_same"] == -1.0


def test_evolved_writers_resolve_when_their_schema_is_known(tmp_path: Path) -> None:
    evolved = write_evolved(tmp_path)
    schemas = Schemas.load([tmp_path])
    added = json.loads(evolved["added"].read_text())
    removed = json.loads(evolved["removed"].read_text())
    decoded = schemas.content_event.decode(reference_encode(added, {**EVENT, "mood": "calm"}))
    assert decoded == EVENT
    without = {k: v for k, v in EVENT.items() if k != "language"}
    assert schemas.content_event.decode(reference_encode(removed, without)) == {**EVENT, "language": None}
    # Without the folder the same bytes are an unknown writer schema.
    with pytest.raises(CodecError) as err:
        Schemas.load().content_event.decode(reference_encode(added, {**EVENT, "mood": "calm"}))
    assert err.value.reason == "unknown_fingerprint"


def test_unresolvable_writer_schema_is_refused_with_that_reason(tmp_path: Path) -> None:
    broken = current("ContentEvent")
    broken["fields"] = [{**f, "type": "long"} if f["name"] == "title" else f for f in broken["fields"]]
    (tmp_path / "broken.avsc").write_text(json.dumps(broken))
    with pytest.raises(CodecError) as err:
        Schemas.load([tmp_path]).content_event.decode(reference_encode(broken, {**EVENT, "title": 7}))
    assert err.value.reason == "schema_resolution_failed"
    assert "broken.avsc" in err.value.detail


def test_another_schemas_record_is_named_in_the_refusal() -> None:
    schemas = Schemas.load()
    feedback = schemas.feedback.encode(
        {
            "feedback_id": "f",
            "left_content_id": "a",
            "right_content_id": "b",
            "verdict": "same",
            "curator": "c",
            "note": "",
            "created_at_ms": 1,
        }
    )
    with pytest.raises(CodecError) as err:
        schemas.content_event.decode(feedback)
    assert err.value.reason == "unknown_fingerprint" and "CuratorFeedback" in err.value.detail

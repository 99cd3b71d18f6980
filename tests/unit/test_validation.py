"""Every hostile event is refused with a specific reason; valid events pass."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from settings import WorkerSettings
from streams.validation import EventLimits, EventValidator, InvalidEvent
from tests.hostile_events import SCHEMA, hostile_event

VALIDATOR = EventValidator(SCHEMA, EventLimits.from_settings(WorkerSettings()))


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(hostile_event)
def test_hostile_events_are_refused_with_their_reason(case: tuple[bytes, set[str]]) -> None:
    data, reasons = case
    try:
        VALIDATOR.parse(data)
    except InvalidEvent as exc:
        assert exc.reason in reasons, (exc.reason, exc.detail)
        assert exc.detail
    else:
        raise AssertionError(f"accepted a hostile event: {data[:80]!r}")


def test_a_valid_event_passes() -> None:
    record: dict[str, Any] = {
        "event_id": "e1",
        "content_id": "c1",
        "source": "store-a",
        "kind": "recording",
        "title": "Yesterday",
        "artists": ["The Beatles"],
        "release": None,
        "duration_ms": 125_000,
        "isrc": "GBAYE0601498",
        "year": 1965,
        "language": "en",
        "audio_ref": None,
        "image_ref": None,
        "extra": {},
        "produced_at_ms": 5,
    }
    item = VALIDATOR.parse(SCHEMA.encode(record))
    assert item.title == "Yesterday" and item.artists == ("The Beatles",) and item.duration_ms == 125_000


def test_empty_message_is_refused() -> None:
    try:
        VALIDATOR.parse(None)
    except InvalidEvent as exc:
        assert exc.reason == "empty_message"
    else:
        raise AssertionError("accepted an empty message")

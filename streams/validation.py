"""Turns raw Kafka bytes into a valid ContentItem, or says exactly why not.

Every refusal carries a machine-readable reason (for the dead-letter record and metrics),
the offending field and a human-readable detail.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from resolution.model import ContentItem
from settings import WorkerSettings
from streams.topics import CONTENT_KINDS, AvroSchema, CodecError

MAX_ID_CHARS = 256
MAX_EXTRA_ENTRIES = 50


class InvalidEvent(CodecError):
    """An event refused for its content; same shape as a decoding error, so one DLQ path serves both."""


@dataclass(frozen=True)
class EventLimits:
    max_title_chars: int
    max_field_chars: int
    max_artists: int
    max_duration_ms: int
    min_year: int = WorkerSettings.min_year
    max_year: int = WorkerSettings.max_year

    @classmethod
    def from_settings(cls, worker: WorkerSettings) -> EventLimits:
        return cls(
            worker.max_title_chars,
            worker.max_field_chars,
            worker.max_artists,
            worker.max_duration_ms,
            worker.min_year,
            worker.max_year,
        )


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\t" for ch in text)


def _check_text(name: str, value: object, limit: int, required: bool = True) -> None:
    if value is None:
        if required:
            raise InvalidEvent("missing_field", f"{name} is required", name)
        return
    if not isinstance(value, str):
        raise InvalidEvent("wrong_type", f"{name} must be a string, got {type(value).__name__}", name)
    if required and not value.strip():
        raise InvalidEvent("missing_field", f"{name} is empty", name)
    if len(value) > limit:
        raise InvalidEvent("field_too_long", f"{name} has {len(value)} characters (limit {limit})", name)
    if _has_control(value):
        raise InvalidEvent("control_characters", f"{name} contains control characters", name)


class EventValidator:
    def __init__(self, schema: AvroSchema, limits: EventLimits) -> None:
        self._schema = schema
        self._limits = limits

    def parse(self, raw: bytes | None) -> ContentItem:
        if raw is None:
            raise InvalidEvent("empty_message", "the message has no value")
        try:
            record = self._schema.decode(raw)
        except CodecError as exc:
            raise InvalidEvent(exc.reason, exc.detail, exc.field) from exc
        return self.validate(record)

    def validate(self, record: dict) -> ContentItem:
        lim = self._limits
        _check_text("event_id", record.get("event_id"), MAX_ID_CHARS)
        _check_text("content_id", record.get("content_id"), MAX_ID_CHARS)
        _check_text("source", record.get("source"), lim.max_field_chars)
        kind = record.get("kind")
        if kind not in CONTENT_KINDS:
            raise InvalidEvent(
                "unknown_kind", f"kind {str(kind)[:50]!r} is not one of {', '.join(CONTENT_KINDS)}", "kind"
            )
        _check_text("title", record.get("title"), lim.max_title_chars)
        artists = record.get("artists")
        if not isinstance(artists, list):
            raise InvalidEvent("wrong_type", "artists must be a list of strings", "artists")
        if len(artists) > lim.max_artists:
            raise InvalidEvent("too_many_artists", f"{len(artists)} artists (limit {lim.max_artists})", "artists")
        for artist in artists:
            _check_text("artists[]", artist, lim.max_field_chars)
        for name in ("release", "isrc", "language", "audio_ref", "image_ref"):
            _check_text(name, record.get(name), lim.max_field_chars, required=False)
        duration = record.get("duration_ms")
        if duration is not None and not (0 < duration <= lim.max_duration_ms):
            raise InvalidEvent(
                "absurd_value", f"duration_ms={duration} outside (0, {lim.max_duration_ms}]", "duration_ms"
            )
        year = record.get("year")
        if year is not None and not (lim.min_year <= year <= lim.max_year):
            raise InvalidEvent("absurd_value", f"year={year} outside [{lim.min_year}, {lim.max_year}]", "year")
        extra = record.get("extra") or {}
        if len(extra) > MAX_EXTRA_ENTRIES:
            raise InvalidEvent("field_too_long", f"extra has {len(extra)} entries (limit {MAX_EXTRA_ENTRIES})", "extra")
        for key, value in extra.items():
            _check_text("extra key", key, MAX_ID_CHARS)
            _check_text(f"extra[{key[:40]}]", value, lim.max_field_chars, required=False)
        produced = record.get("produced_at_ms")
        if produced is None or produced < 0:
            raise InvalidEvent("absurd_value", f"produced_at_ms={produced} must be >= 0", "produced_at_ms")
        return ContentItem.from_record(record)

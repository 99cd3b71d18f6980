"""The resolver's vocabulary: content items, candidates, decisions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    MERGE = "MERGE"
    LINK = "LINK"
    NEW = "NEW"
    SPLIT = "SPLIT"
    REASSIGN = "REASSIGN"
    # A curator's constraint recorded as it arrives, so that replaying decisions rebuilds it too.
    CONSTRAIN = "CONSTRAIN"


# The trigger of a LINK that a recording's decision makes for an earlier music video
# (``Corrector.media_link_back``): ``previous_entity_ids`` are the links it replaces.
MEDIA_LINK_BACK = "media-link-back"


class Relation(StrEnum):
    SAME = "same"
    VERSION_OF = "version_of"
    VIDEO_OF = "video_of"
    NONE = "none"


@dataclass(frozen=True)
class ContentItem:
    """One validated content event, with typed fields (raw feed parsing happens before this)."""

    event_id: str
    content_id: str
    source: str
    kind: str
    title: str
    artists: tuple[str, ...]
    release: str | None = None
    duration_ms: int | None = None
    isrc: str | None = None
    year: int | None = None
    language: str | None = None
    audio_ref: str | None = None
    image_ref: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    produced_at_ms: int = 0

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ContentItem:
        return cls(
            event_id=record["event_id"],
            content_id=record["content_id"],
            source=record["source"],
            kind=record["kind"],
            title=record["title"],
            artists=tuple(record["artists"]),
            release=record.get("release"),
            duration_ms=record.get("duration_ms"),
            isrc=record.get("isrc"),
            year=record.get("year"),
            language=record.get("language"),
            audio_ref=record.get("audio_ref"),
            image_ref=record.get("image_ref"),
            extra=dict(record.get("extra") or {}),
            produced_at_ms=int(record.get("produced_at_ms") or 0),
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "content_id": self.content_id,
            "source": self.source,
            "kind": self.kind,
            "title": self.title,
            "artists": list(self.artists),
            "release": self.release,
            "duration_ms": self.duration_ms,
            "isrc": self.isrc,
            "year": self.year,
            "language": self.language,
            "audio_ref": self.audio_ref,
            "image_ref": self.image_ref,
            "extra": dict(self.extra),
            "produced_at_ms": self.produced_at_ms,
        }


@dataclass(frozen=True)
class Candidate:
    """A known item that the new one may relate to, with the evidence for it."""

    content_id: str
    entity_id: str
    work_id: str
    similarity: float
    meta: dict[str, Any]
    via: str = "ann"  # ann | recent | key | batch


@dataclass(frozen=True)
class ScoredCandidate:
    candidate: Candidate
    relation: Relation
    score: float
    probabilities: dict[str, float]
    signals: dict[str, float]


@dataclass(frozen=True)
class Decision:
    event_id: str
    content_id: str
    action: Action
    entity_id: str
    work_id: str
    confidence: float
    related_entity_id: str | None = None
    relation: Relation | None = None
    candidates: tuple[ScoredCandidate, ...] = ()
    signals: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    previous_entity_ids: tuple[str, ...] = ()
    members: tuple[str, ...] = ()
    # Lineage of corrections: what caused it (content-event | re-resolution | curator-feedback),
    # the entity ids it created, and for CONSTRAIN the curator's verdict on ``members``.
    trigger: str = "content-event"
    new_entity_ids: tuple[str, ...] = ()
    verdict: str | None = None
    # Order in which decisions were applied to the state; replay sorts by it.
    sequence: int = 0

    @property
    def decision_id(self) -> str:
        # Deterministic, so that a replayed event yields the same decision id.
        key = f"{self.event_id}|{self.action.value}|{self.entity_id}|{','.join(self.previous_entity_ids)}"
        if self.members:
            key += "|" + ",".join(self.members)
        return "d-" + hashlib.sha1(key.encode()).hexdigest()[:20]

    @property
    def moves_members(self) -> bool:
        """An entity-level change (MERGE of entities, SPLIT, REASSIGN) rather than one item's placement."""
        return bool(self.members) and bool(self.previous_entity_ids) and self.action is not Action.CONSTRAIN

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Decision:
        """A decision as read back from the decisions topic: what replaying the state needs."""
        relation = record.get("relation")
        candidates = tuple(
            ScoredCandidate(
                Candidate(c["content_id"], c["entity_id"], "", 0.0, {}),
                Relation(c["relation"]) if c["relation"] in Relation._value2member_map_ else Relation.NONE,
                float(c["score"]),
                {"same": float(c.get("p_same", -1.0))},
                {},
            )
            for c in record.get("candidates") or ()
        )
        return cls(
            event_id=record["event_id"],
            content_id=record["content_id"],
            action=Action(record["action"]),
            entity_id=record["entity_id"],
            work_id=record.get("work_id") or record["entity_id"],
            confidence=float(record["confidence"]),
            related_entity_id=record.get("related_entity_id"),
            relation=Relation(relation) if relation else None,
            candidates=candidates,
            reason=record.get("reason", ""),
            previous_entity_ids=tuple(record.get("previous_entity_ids") or ()),
            members=tuple(record.get("members") or ()),
            trigger=record.get("trigger") or "content-event",
            new_entity_ids=tuple(record.get("new_entity_ids") or ()),
            verdict=record.get("verdict"),
            sequence=int(record.get("sequence") or 0),
        )


def stable_id(prefix: str, *parts: str) -> str:
    """An id derived from its inputs, so that a replay reproduces it exactly."""
    return f"{prefix}-" + hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:16]

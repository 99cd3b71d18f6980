"""A curator's verdict on two content items, as it travels on ``resolution-feedback``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from resolution.entities import APART_VERDICTS, SAME_VERDICTS

VERDICTS = (*SAME_VERDICTS, *APART_VERDICTS)


@dataclass(frozen=True)
class Feedback:
    """A curator's judgement on two content items (``CuratorFeedback.avsc``)."""

    feedback_id: str
    left: str
    right: str
    verdict: str
    curator: str
    note: str = ""
    created_at_ms: int = 0

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Feedback:
        return cls(
            feedback_id=record["feedback_id"],
            left=record["left_content_id"],
            right=record["right_content_id"],
            verdict=record["verdict"],
            curator=record["curator"],
            note=record.get("note", ""),
            created_at_ms=int(record.get("created_at_ms") or 0),
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "feedback_id": self.feedback_id,
            "left_content_id": self.left,
            "right_content_id": self.right,
            "verdict": self.verdict,
            "curator": self.curator,
            "note": self.note,
            "created_at_ms": self.created_at_ms,
        }

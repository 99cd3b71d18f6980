"""What a worker reports about itself: held dependencies, progress, a stall (``/health``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class WorkerStatus:
    # dependency (or "processing") -> why it is degraded; empty when all is well
    degraded: dict[str, str] = field(default_factory=dict)
    batches: int = 0
    recovered_decisions: int = 0
    stalled_s: int | None = None

    def degrade(self, what: str, reason: str) -> None:
        self.degraded[what] = reason[:300]

    def recover(self, *what: str) -> None:
        for name in what:
            self.degraded.pop(name, None)

    @property
    def healthy(self) -> bool:
        return not self.degraded and self.stalled_s is None

    def as_dict(self) -> dict[str, Any]:
        """The ``/health`` body's status part (same keys as before this was a class)."""
        body: dict[str, Any] = {
            "degraded": dict(self.degraded),
            "batches": self.batches,
            "recovered_decisions": self.recovered_decisions,
        }
        if self.stalled_s is not None:
            body["stalled_s"] = self.stalled_s
        return body

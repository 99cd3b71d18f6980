"""What the worker does when a batch fails: hold it through an outage, isolate anything else.

Injectable (``create_app(..., error_policy=...)``), so the choice is one object and a test can
drive it. Nothing is dropped under any policy: a held batch is retried until it succeeds, an
isolated message ends in the dead-letter topic with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import KafkaException

from resolution.errors import DependencyUnavailable


class BatchErrorPolicy(Protocol):
    @property
    def initial_delay_s(self) -> float:
        """The first wait before a held batch is tried again (doubling up to ``max_delay_s``)."""
        ...

    @property
    def max_delay_s(self) -> float: ...

    def outage(self, exc: BaseException) -> str | None:
        """The dependency whose outage ``exc`` shows (hold the batch and retry it), or None:
        a defect or an input nobody foresaw (retry message by message, dead-letter the culprit)."""
        ...


@dataclass(frozen=True)
class HoldOutagesIsolateDefects:
    initial_delay_s: float = 0.5
    max_delay_s: float = 10.0

    def outage(self, exc: BaseException) -> str | None:
        if isinstance(exc, DependencyUnavailable):
            return exc.dependency
        # confluent-kafka raises KafkaException (its KafkaError is the value inside, not raised).
        if isinstance(exc, KafkaException):
            return "kafka"
        return None

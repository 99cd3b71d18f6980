"""One batch's checkpoint: produce its decisions, have them acknowledged, stage its state, commit.

The order is the delivery guarantee (docs/architecture.md):

1. catch up: a partition given to this worker since the last rebalance first replays the
   decisions its state lacks (``DecisionLogCatchUp``), so re-delivered events find their decision;
2. produce: the handler decides the batch and sends decisions and dead letters; ``DecisionSender``
   returns only when Kafka has acknowledged every record (failed sends are sent again);
3. stage: the state changes made meanwhile are held in ``StagedTable`` with, per partition, the
   decisions offset they reach (``o:<p>``);
4. commit: the staged state is written to the Faust table (its changelog), each key under its
   source partition's event. Faust commits the input offsets only after the agent's body returns.

A failure anywhere before 4 discards the staged state: nothing runs ahead of the decisions topic.
What happens next is the ``BatchErrorPolicy``'s call: hold and retry, or isolate message by message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from resolution.entities import EntityStore
from resolution.errors import DependencyUnavailable, describe, with_backoff
from streams.error_policy import BatchErrorPolicy
from streams.handler import EventBatchHandler, InboundMessage, OutboundRecord
from streams.metrics import ResolverMetrics
from streams.recovery import DecisionLogCatchUp, marker_key
from streams.state import StagedTable
from streams.status import WorkerStatus

log = logging.getLogger(__name__)

# Sends one record; awaiting the result gives its metadata (``.offset``) or raises.
ProduceOne = Callable[[OutboundRecord], Awaitable[Awaitable[Any]]]
# The context under which a source partition's state is written (Faust's current event).
PartitionScope = Callable[[int | None], AbstractContextManager[Any]]


class SendsFailed(RuntimeError):
    """Some records of a send were not acknowledged; they are sent again."""

    def __init__(self, failed: int, total: int) -> None:
        super().__init__(f"{failed} of {total} sends failed")
        self.failed = failed


class KafkaSendUnavailable(DependencyUnavailable):
    dependency = "kafka"


class DecisionSender:
    """Sends all records and waits for every acknowledgement; failed ones are sent again, so a
    batch is never half-published and never acknowledged before its decisions."""

    def __init__(self, produce: ProduceOne, status: WorkerStatus, metrics: ResolverMetrics) -> None:
        self._produce = produce
        self._status = status
        self._metrics = metrics

    async def send(self, records: list[OutboundRecord]) -> list[int]:
        offsets: list[int | None] = [None] * len(records)

        async def attempt() -> list[int]:
            pending = [i for i, off in enumerate(offsets) if off is None]
            futures = [await self._produce(records[i]) for i in pending]
            results = await asyncio.gather(*futures, return_exceptions=True)
            for i, result in zip(pending, results, strict=True):
                if not isinstance(result, BaseException):
                    offsets[i] = result.offset
            failed = sum(1 for off in offsets if off is None)
            if failed:
                self._metrics.retries.labels("kafka").inc(failed)
                self._status.degrade("kafka", f"{failed} sends failed; retrying")
                raise SendsFailed(failed, len(pending))
            self._status.recover("kafka")
            return [int(o) for o in offsets if o is not None]

        return await with_backoff(
            attempt, unavailable=KafkaSendUnavailable, what="send", retryable=(SendsFailed,), max_delay_s=5.0
        )


class CatchUp(Protocol):
    async def ensure(
        self,
        partition: int,
        store: EntityStore,
        table_get: Callable[[str], Any],
        table_set: Callable[[str, Any], None],
    ) -> int: ...


class BatchCheckpoint:
    """Steps 1-4 above for one batch; ``run`` either completes all four or leaves no trace."""

    def __init__(
        self,
        staged: StagedTable,
        catch_up: CatchUp | DecisionLogCatchUp,
        handler: EventBatchHandler,
        sender: DecisionSender,
        status: WorkerStatus,
    ) -> None:
        self._staged = staged
        self._catch_up = catch_up
        self._handler = handler
        self._sender = sender
        self._status = status

    async def run(self, partitions: Sequence[int], messages: list[InboundMessage], scope: PartitionScope) -> None:
        try:
            for partition in sorted(partitions):
                with self._staged.writing_for(partition):
                    replay_store = EntityStore(self._staged)
                    self._status.recovered_decisions += await self._catch_up.ensure(
                        partition, replay_store, self._staged.get, self._staged.__setitem__
                    )
            ends = await self._handler.handle(messages, self._sender.send)
            for partition, end in ends.items():
                with self._staged.writing_for(partition):
                    self._staged[marker_key(partition)] = end
        except BaseException:
            self._staged.discard()
            raise
        self._staged.flush(scope)

    async def reject(self, message: InboundMessage, reason: str, detail: str, scope: PartitionScope) -> None:
        """Dead-letters one message (its own checkpoint: the dead letter is acknowledged first)."""
        try:
            await self._handler.reject(message, reason, detail, self._sender.send)
        except BaseException:
            self._staged.discard()
            raise
        self._staged.flush(scope)


class BatchProcessor:
    """Runs a batch's checkpoint until every message has a decision or a dead letter."""

    def __init__(
        self,
        checkpoint: BatchCheckpoint,
        policy: BatchErrorPolicy,
        status: WorkerStatus,
        metrics: ResolverMetrics,
        scope_for: Callable[[list[Any]], PartitionScope],
    ) -> None:
        self._checkpoint = checkpoint
        self._policy = policy
        self._status = status
        self._metrics = metrics
        # events of the batch -> the scope each source partition's state is written under
        self._scope_for = scope_for

    async def process(self, events: list[Any], messages: list[InboundMessage]) -> None:
        partitions = sorted({m.partition for m in messages})
        scope = self._scope_for(events)

        def held(exc: BaseException, delay: float) -> None:
            dependency = self._policy.outage(exc) or "unknown"
            self._metrics.errors.labels(dependency).inc()
            self._status.degrade(dependency, str(exc))
            log.warning("batch held: %s unavailable (%s); retrying in %.1fs", dependency, describe(exc), delay)

        try:
            await with_backoff(
                lambda: self._checkpoint.run(partitions, messages, scope),
                unavailable=DependencyUnavailable,
                what=f"batch of {len(messages)}",
                retry_if=lambda exc: self._policy.outage(exc) is not None,
                on_failure=held,
                initial_delay_s=self._policy.initial_delay_s,
                max_delay_s=self._policy.max_delay_s,
            )
        except Exception as exc:  # a defect or an input nobody foresaw: isolate it, keep going
            await self._isolate(events, messages, exc, scope)
            return
        self._status.recover("processing", "triton", "milvus")
        self._status.batches += 1

    async def _isolate(
        self, events: list[Any], messages: list[InboundMessage], exc: Exception, scope: PartitionScope
    ) -> None:
        log.error("batch of %d failed; retrying one message at a time", len(messages), exc_info=exc)
        if len(messages) == 1:
            self._status.degrade("processing", repr(exc))
            await self._checkpoint.reject(messages[0], "processing_error", f"{type(exc).__name__}: {exc}", scope)
            return
        for event, message in zip(events, messages, strict=True):
            await self.process([event], [message])

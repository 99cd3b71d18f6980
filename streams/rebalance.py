"""What the worker does when partitions move, and when Faust skipped messages around a move."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from streams.metrics import ResolverMetrics
from streams.recovery import DecisionLogCatchUp, OffsetGaps

log = logging.getLogger(__name__)

# (topic, partition) -> the offset reading resumed from; (topic, partition, offset) -> seek there.
CommittedOffset = Callable[[str, int], int | None]
Seek = Callable[[str, int, int], Awaitable[None]]


class RebalanceHandler:
    """After any rebalance, partitions are caught up again and offset tracking starts afresh;
    between rebalances, a batch that jumped past offsets makes the worker read them again."""

    def __init__(
        self,
        catch_up: DecisionLogCatchUp,
        gaps: OffsetGaps,
        committed: CommittedOffset,
        seek: Seek,
        metrics: ResolverMetrics,
        reread_after_s: float = 3.0,
    ) -> None:
        self._catch_up = catch_up
        self._gaps = gaps
        self._committed = committed
        self._seek = seek
        self._metrics = metrics
        self.reread_after_s = reread_after_s

    # Faust's signal receivers: (sender, partitions, signal=...).
    async def on_partitions_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self._forget()

    async def on_partitions_assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self._forget()

    def _forget(self) -> None:
        # Another worker may have decided on these partitions meanwhile: replay their decisions
        # log again before the next batch, and let Faust's own seek to the commits stand.
        self._catch_up.forget()
        self._gaps.forget()

    async def after_batch(self, positions: list[tuple[str, int, int]]) -> None:
        """``positions``: (topic, partition, offset) of the batch just done, in order."""
        for topic, partition, start in self._gaps.observe(positions, self._committed):
            self._metrics.offset_gaps.inc()
            log.warning("%s[%d]: messages from offset %d were skipped; reading them again", topic, partition, start)
            await self._seek(topic, partition, start)

    async def reread_overdue(self) -> None:
        for topic, partition, start in self._gaps.overdue(after_s=self.reread_after_s):
            log.warning("%s[%d]: offset %d has not come back yet; seeking again", topic, partition, start)
            await self._seek(topic, partition, start)

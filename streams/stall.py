"""The stall check: input waiting and nothing decided, with no outage to explain it."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable

import faust
from confluent_kafka import KafkaException

from settings import Settings
from streams.faust_adapter import flow_state
from streams.metrics import ResolverMetrics
from streams.recovery import ProgressWatch, group_lag
from streams.status import WorkerStatus

log = logging.getLogger(__name__)


def restart_in_place() -> None:
    """Crash-only: nothing is lost by restarting (decisions are acknowledged before offsets are
    committed), and a fresh interpreter gets a fresh Faust recovery. exec keeps the pid, so
    whoever supervises the worker (or kills it) still holds the right process."""
    logging.shutdown()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


class StallSupervisor:
    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        input_topics: list[str],
        status: WorkerStatus,
        metrics: ResolverMetrics,
        restart: Callable[[], None] = restart_in_place,
    ) -> None:
        self._app = app
        self._settings = settings
        self._input_topics = input_topics
        self._status = status
        self._metrics = metrics
        self._restart = restart
        self._watch = ProgressWatch(settings.worker.stall_after_s)
        self._retries_seen = metrics.retries_total()

    async def tick(self) -> None:
        try:
            await self.check()
        except Exception:  # a watchdog must never be what takes the worker down
            log.exception("progress check failed")

    async def check(self) -> None:
        w = self._settings.worker
        assigned = {
            (tp.topic, tp.partition) for tp in self._app.consumer.assignment() if tp.topic in self._input_topics
        }
        # A batch inside its retry budget (Triton, Milvus or Kafka retried since the last check) is
        # waiting on a dependency, like one held after the budget ran out.
        retries = self._metrics.retries_total()
        retrying = retries != self._retries_seen
        self._retries_seen = retries
        if not assigned:
            stalled = self._watch.check(self._status.batches, 0, False)
        else:
            try:
                lag = await asyncio.to_thread(group_lag, self._settings.kafka, w.app_id, self._input_topics)
            except KafkaException as exc:
                log.debug("lag unknown: %s", exc)
                return
            waiting = sum(n for tp, n in lag.items() if tp in assigned)
            stalled = self._watch.check(self._status.batches, waiting, retrying or bool(self._status.degraded))
        self._metrics.stalled_seconds.set(stalled)
        if not stalled:
            self._status.stalled_s = None
            return
        first = self._status.stalled_s is None
        self._status.stalled_s = round(stalled)
        if first:
            log.error("stalled: input waiting and no batch decided for %.0fs\n%s", stalled, flow_state(self._app))
        if w.stall_restart_s and stalled >= w.stall_restart_s:
            log.critical("stalled for %.0fs: restarting the worker in place", stalled)
            self._restart()

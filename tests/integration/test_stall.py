"""A worker that hangs with input waiting notices, restarts itself in place, and loses nothing."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.worker import WorkerProcess
from settings import Settings
from tests.integration.streaming import chaos_items, produce, wait_decisions
from tests.workers import drop_namespace, isolated_settings

pytestmark = pytest.mark.integration

HANGING_WORKER = Path(__file__).with_name("hanging_worker.py")


@pytest.fixture
def hanging_worker(stack: Settings, tmp_path: Path) -> Iterator[tuple[Settings, WorkerProcess, Path]]:
    from streams.kafka import ensure_topics

    settings, env = isolated_settings(stack, "stall")
    env |= {"RESOLVER_WORKER_STALL_AFTER_S": "10", "RESOLVER_WORKER_STALL_RESTART_S": "20"}
    ensure_topics(settings.kafka)
    marker = tmp_path / "hang-once"
    marker.touch()
    log = tmp_path / "worker.log"
    worker = WorkerProcess(
        settings, log, env, command=[sys.executable, str(HANGING_WORKER), str(marker), "worker", "--loglevel", "info"]
    )
    try:
        worker.start()
        yield settings, worker, log
    finally:
        worker.stop()
        drop_namespace(settings)


def test_stalled_worker_restarts_in_place_and_decides_everything_once(hanging_worker) -> None:
    settings, worker, log = hanging_worker
    items = chaos_items(300)
    ids = {i.event_id for i in items}
    produce(settings, items)
    found = wait_decisions(settings, ids, timeout_s=180)
    text = log.read_text(errors="replace")
    assert "stalled: input waiting and no batch decided" in text
    assert "restarting the worker in place" in text
    assert ids <= found.keys(), f"{len(ids - found.keys())} events without a decision"
    assert all(len(found[e]) == 1 for e in ids)
    assert worker.alive(), "the restart keeps the process (and its pid)"

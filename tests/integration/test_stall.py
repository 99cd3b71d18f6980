"""A worker that hangs with input waiting notices, restarts itself in place, and loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from content_resolver.demo import wait_worker_ready
from content_resolver.settings import Settings
from tests.conftest import drop_namespace, isolated_settings
from tests.integration.streaming import produce, wait_decisions
from tests.integration.test_delivery import chaos_items

pytestmark = pytest.mark.integration

HANGING_WORKER = Path(__file__).with_name("hanging_worker.py")


@pytest.fixture
def hanging_worker(stack: Settings, tmp_path: Path) -> Iterator[tuple[Settings, subprocess.Popen, Path]]:
    from streams.kafka import ensure_topics

    settings, env = isolated_settings(stack, "stall")
    env |= {"RESOLVER_WORKER_STALL_AFTER_S": "10", "RESOLVER_WORKER_STALL_RESTART_S": "20"}
    ensure_topics(settings.kafka)
    marker = tmp_path / "hang-once"
    marker.touch()
    log = tmp_path / "worker.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, str(HANGING_WORKER), str(marker), "worker", "--loglevel", "info"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )
    try:
        wait_worker_ready(settings, proc)
        yield settings, proc, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        drop_namespace(settings)


def test_stalled_worker_restarts_in_place_and_decides_everything_once(hanging_worker) -> None:
    settings, proc, log = hanging_worker
    items = chaos_items(300)
    ids = {i.event_id for i in items}
    produce(settings, items)
    found = wait_decisions(settings, ids, timeout_s=180)
    text = log.read_text(errors="replace")
    assert "stalled: input waiting and no batch decided" in text
    assert "restarting the worker in place" in text
    assert ids <= found.keys(), f"{len(ids - found.keys())} events without a decision"
    assert all(len(found[e]) == 1 for e in ids)
    assert proc.poll() is None, "the restart keeps the process (and its pid)"

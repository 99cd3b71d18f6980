"""Never lose, never duplicate: workers killed with SIGKILL mid-stream, on the real stack."""

from __future__ import annotations

import json
import random
import signal
import time
import urllib.request

import pytest
from confluent_kafka import Consumer, TopicPartition

from deploy.worker import WorkerProcess
from settings import Settings
from streams.kafka import client_config
from tests.integration.streaming import (
    assignment,
    chaos_items,
    decisions,
    live_state,
    produce,
    replayed_state,
    wait_decisions,
)

pytestmark = pytest.mark.integration

CHAOS_EVENTS = 3000
KILLS = 3


def worker_diagnosis(worker: WorkerProcess) -> str:
    """What a stalled run needs to be understood: is the worker alive, where are its offsets, and
    the last warnings of its log."""
    settings = worker.settings
    alive = worker.proc is not None and worker.proc.poll() is None
    lines = [f"worker alive: {alive}", f"content offsets (partition, committed, end): {group_offsets(settings)}"]
    if worker.log is not None and worker.log.exists():
        log = worker.log.read_text(errors="replace").splitlines()
        notable = [line for line in log if "[WARNING]" in line or "[ERROR]" in line or "Traceback" in line]
        lines += ["last warnings of the worker log:", *notable[-25:], "log tail:", *log[-15:]]
    return "\n".join(lines)


def group_offsets(settings: Settings) -> list[tuple[int, int, int]]:
    consumer = Consumer(
        {**client_config(settings.kafka), "group.id": settings.worker.app_id, "enable.auto.commit": False}
    )
    try:
        out = []
        for partition in range(settings.kafka.partitions):
            tp = TopicPartition(settings.kafka.content_topic, partition)
            _low, high = consumer.get_watermark_offsets(tp, timeout=10)
            committed = consumer.committed([tp], timeout=10)[0].offset
            out.append((partition, committed, high))
        return out
    finally:
        consumer.close()


def test_sigkill_three_times_loses_and_duplicates_nothing(worker) -> None:
    settings = worker.settings
    items = chaos_items(CHAOS_EVENTS)
    assert len(items) == CHAOS_EVENTS
    ids = {i.event_id for i in items}
    rng = random.Random(5)
    produce(settings, items)
    for _kill in range(KILLS):
        time.sleep(rng.uniform(2.0, 6.0))
        worker.stop(signal.SIGKILL)
        worker.start()
    found = wait_decisions(settings, ids, timeout_s=420)
    missing = ids - found.keys()
    duplicated = {eid: len(v) for eid, v in found.items() if len(v) > 1}
    print(
        f"\nchaos: events={len(ids)} kills={KILLS} decided={len(found.keys() & ids)} "
        f"missing={len(missing)} duplicated={len(duplicated)}"
    )
    assert not missing, (
        f"{len(missing)} events without a decision, e.g. {sorted(missing)[:5]}\n{worker_diagnosis(worker)}"
    )
    assert not duplicated, f"{len(duplicated)} events decided more than once, e.g. {list(duplicated.items())[:5]}"

    # The worker's state equals the state rebuilt from the decisions topic.
    time.sleep(settings.worker.commit_interval_s * 2)
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.worker.web_port}/health", timeout=10) as resp:
        print(f"worker health after recovery: {json.load(resp)}")
    live = live_state(settings.worker.web_port)
    rebuilt = replayed_state(decisions(settings))
    assert assignment(live) == assignment(rebuilt)


def test_redelivered_event_ids_get_no_second_decision(worker) -> None:
    settings = worker.settings
    items = chaos_items(30)[:10]
    produce(settings, items)
    wait_decisions(settings, {i.event_id for i in items})
    produce(settings, items)  # the same event ids again, as a producer retry would
    time.sleep(3)
    found = wait_decisions(settings, {i.event_id for i in items})
    assert all(len(found[i.event_id]) == 1 for i in items)

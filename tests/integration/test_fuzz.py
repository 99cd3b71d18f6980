"""Fuzz: ten thousand hostile events interleaved with valid ones, through the real worker."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings

from evaluation.sample_catalogue import generate_catalogue
from tests.hostile_events import hostile_event
from tests.integration.streaming import dead_letters, produce, wait_decisions

pytestmark = pytest.mark.integration

HOSTILE = 10_000
BATCHES = 40


def generate_hostile(n: int) -> list[tuple[bytes, set[str]]]:
    """Draws ``n`` hostile events with hypothesis (several runs of a collecting property)."""
    out: list[tuple[bytes, set[str]]] = []

    @settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(hostile_event)
    def collect(case: tuple[bytes, set[str]]) -> None:
        out.append(case)

    while len(out) < n:
        collect()
    return out[:n]


def test_ten_thousand_hostile_events_all_dead_lettered_valid_ones_decided(worker) -> None:
    settings_ = worker.settings
    hostile = generate_hostile(HOSTILE)
    items, _truth = generate_catalogue(seed=3, songs=400)
    run = time.time_ns()
    valid = [type(i)(**{**i.__dict__, "event_id": f"{i.event_id}~{run}"}) for i in items]
    rng = random.Random(9)
    # Interleave: valid events spread among hostile ones.
    raw = [h for h, _ in hostile]
    rng.shuffle(raw)
    produce(settings_, valid, raw=raw)

    found = wait_decisions(settings_, {i.event_id for i in valid}, timeout_s=300)
    assert {i.event_id for i in valid} <= found.keys(), "every valid event decided"
    assert all(len(found[i.event_id]) == 1 for i in valid)

    deadline = time.monotonic() + 120
    letters = dead_letters(settings_)
    while len(letters) < HOSTILE and time.monotonic() < deadline:
        time.sleep(2)
        letters = dead_letters(settings_)
    expected = Counter(raw)
    got = Counter(bytes(x["original"]) for x in letters)
    assert got == expected, f"dead letters: {sum(got.values())} of {HOSTILE}"
    allowed = {h: reasons for h, reasons in hostile}
    wrong = [(x["reason"], x["detail"]) for x in letters if x["reason"] not in allowed[bytes(x["original"])]]
    assert not wrong, wrong[:5]
    assert worker.proc is not None and worker.proc.poll() is None, "no worker crash"
    print(
        f"\nfuzz: hostile={HOSTILE} dead-lettered={len(letters)} valid={len(valid)} decided={len(found)} "
        f"reasons={dict(Counter(x['reason'] for x in letters))}"
    )

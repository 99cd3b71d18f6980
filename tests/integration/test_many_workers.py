"""Many workers in one consumer group, sharing one Milvus, give one worker's quality.

musicbrainz-20k's valid portion (2,929 records of 1,494 recordings, whole true clusters; the
portion ``resolver evaluate`` scores) is streamed in the seeded order ``resolver evaluate``
streams first, over six partitions, twice on the shared stack:

- **one worker**: the baseline. A real worker rather than the offline resolver: it runs the same
  resolver (``build_batch_resolver``), and also the same Triton models, Milvus index and Kafka
  batching as the many-worker run, so the difference between the two runs is the number of
  workers alone (offline with an exact index differs from the stack by itself by about the
  bound, docs/quality.md: shs100k 0.9204 exact, 0.9150 through the stack).
- **three workers**, one of which leaves (SIGTERM) while the first half is being decided, and a
  fourth joins before the second half is produced; then the reconciliation pass (what
  ``resolver reconcile`` runs: duplicates created in two partitions merged, their MERGE
  decisions published to the decisions topic).

Asserted, from the decisions topic (every worker's output, combined) and the dead-letter topic:

- every content id has exactly one content-event decision (none lost, none decided twice), no
  dead letter, and both the leaving and the joining worker decided some of them (the
  ``resolver-worker`` header of each decision names the process that made it);
- **no entity created twice after reconciliation**: replay the decisions topic with the
  reconciliation MERGEs applied; take every true recording whose items ended in two or more live
  entities. No two of those entities may have been created (decided NEW) in different
  partitions while a content-event decision of an item in one of them scored an item now in the
  other at p(same) >= the matcher's merge threshold: that pair is the evidence the workers
  recorded and reconciliation joins on, so such a split is an entity reconciliation should have
  joined and did not. Splits without that evidence (never a candidate of each other at the
  threshold: mostly two workers deciding the two items in overlapping batches) are left to
  reconciliation's second scoring of raced NEW items; they are counted and printed for both
  runs, and their cost is in the F1 bound, not asserted one by one;
- pairwise F1 of the many-worker clustering after reconciliation within 0.005 of the one
  worker's.

Measured and printed (``-s``): how often an item's earlier true duplicate was not among its
scored candidates, by whether the same worker or another one wrote it and by how long before
(the recent-writes overlay covers a worker's own writes only; another worker's are found once
Milvus' Bounded consistency makes them visible). ``MANY_WORKERS_SPLIT=all`` streams the whole
dataset (19,375 records, by hand: about six times longer).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deploy.worker import WorkerProcess, free_port, isolated_namespace
from evaluation.datasets import load_dataset
from evaluation.evaluate import split_ids
from evaluation.metrics import pairwise_prf
from evaluation.streaming import seeded_order
from resolution.entities import cluster_rows, rebuild_state
from resolution.matcher import PairScorer
from resolution.model import ContentItem
from settings import Settings
from streams.handler import WORKER_HEADER
from streams.kafka import ensure_topics, read_topic
from streams.reconciliation import CrossPartitionReconciler, PassResult, reconcile_once
from streams.topics import Schemas
from tests.integration.streaming import dead_letters, produce
from tests.shared_data import SHARED_DATA
from tests.workers import drop_namespace, worker_process

DATASET = SHARED_DATA / "musicbrainz-20k"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.dataset,
    # Before the stack fixture: a clone without the data starts no services for this test.
    pytest.mark.skipif(not DATASET.exists(), reason=f"{DATASET} is absent (a clone without ../shared/data)"),
]
SPLIT = os.environ.get("MANY_WORKERS_SPLIT", "valid")
PARTITIONS = 6
F1_BOUND = 0.005
GAP_BANDS_S = (1.0, 3.0, 10.0)  # the overlay keeps 10 s; Milvus' bounded staleness is seconds
SCHEMAS = Schemas.load()


@dataclass(frozen=True)
class Published:
    """One record of the decisions topic: its partition, the worker that wrote it, the decision."""

    partition: int
    worker: str
    record: dict[str, Any]

    @property
    def from_content_event(self) -> bool:
        return self.record.get("trigger", "content-event") == "content-event"


def published(settings: Settings) -> list[Published]:
    out = []
    for r in read_topic(settings.kafka, settings.kafka.decisions_topic):
        worker = dict(r.headers).get(WORKER_HEADER, b"").decode()
        out.append(Published(r.partition, worker, SCHEMAS.decision.decode(r.value)))
    return out


def dead_lettered(settings: Settings) -> Counter[str]:
    """Content ids of the events dead-lettered (their original bytes decoded), with counts."""
    out: Counter[str] = Counter()
    for r in read_topic(settings.kafka, settings.kafka.dlq_topic):
        record = SCHEMAS.dead_letter.decode(r.value)
        out[SCHEMAS.content_event.decode(record["original"])["content_id"]] += 1
    return out


def handled(settings: Settings) -> int:
    """Events with an answer: a content-event decision or a dead letter (an empty title is one)."""
    decided = sum(1 for p in published(settings) if p.from_content_event)
    return decided + sum(dead_lettered(settings).values())


def wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f}s")
        time.sleep(1.0)


class WorkerGroup:
    """Workers of one namespace (one consumer group, topics of six partitions, one Milvus
    collection), started as ``tests/workers.py`` starts a test worker, each with its web port."""

    def __init__(self, tag: str, logs: Path) -> None:
        self.settings, self.env = isolated_namespace(tag, "test", {"RESOLVER_KAFKA_PARTITIONS": str(PARTITIONS)})
        ensure_topics(self.settings.kafka)
        self.logs = logs
        self.workers: list[WorkerProcess] = []
        self.names: dict[str, str] = {}  # the resolver-worker header value -> worker-N

    def start(self, n: int) -> list[WorkerProcess]:
        started = []
        for _ in range(n):
            env = {**self.env, "RESOLVER_WORKER_WEB_PORT": str(free_port())}
            settings = Settings.from_env({**os.environ, **env})
            name = f"worker-{len(self.workers) + 1}"
            w = worker_process(settings, env, self.logs / f"{name}.log")
            w.start(wait=False)
            assert w.proc is not None
            self.names[f"{socket.gethostname()}/{w.proc.pid}"] = name  # as the worker names itself
            self.workers.append(w)
            started.append(w)
        for w in started:
            w.wait_ready()
        return started

    def name_of(self, worker: WorkerProcess) -> str:
        return f"worker-{self.workers.index(worker) + 1}"

    def stop_all(self) -> None:
        for w in self.workers:
            w.stop(signal.SIGTERM)

    def drop(self) -> None:
        drop_namespace(self.settings)


def stream_one_worker(group: WorkerGroup, items: list[ContentItem], timeout_s: float) -> None:
    try:
        group.start(1)
        produce(group.settings, items)
        wait_until(lambda: handled(group.settings) >= len(items), timeout_s, "one worker's answers")
    finally:
        group.stop_all()


def stream_many_workers(group: WorkerGroup, items: list[ContentItem], timeout_s: float) -> dict[str, Any]:
    """Three workers; while the first half is being decided one leaves (SIGTERM), a fourth
    joins, and once it answers the second half is produced."""
    half = len(items) // 2
    try:
        first = group.start(3)
        produce(group.settings, items[:half])
        wait_until(lambda: handled(group.settings) >= half // 3, timeout_s, "the first decisions")
        leaving = first[1]
        leaving.stop(signal.SIGTERM)
        decided_at_leave = handled(group.settings)
        joined = group.start(1)[0]
        decided_at_join = handled(group.settings)
        produce(group.settings, items[half:])
        wait_until(lambda: handled(group.settings) >= len(items), timeout_s, "the workers' answers")
    finally:
        group.stop_all()
    return {
        "left": group.name_of(leaving),
        "joined": group.name_of(joined),
        "decided_at_leave": decided_at_leave,
        "decided_at_join": decided_at_join,
    }


def served_matcher(settings: Settings) -> tuple[PairScorer, float]:
    """The matcher ``resolver reconcile`` scores with, and its merge threshold."""
    from content_resolver.composition import build_scorer

    scorer, thresholds = build_scorer(settings)
    return scorer, thresholds.merge


def reconcile_twice(settings: Settings, scorer: PairScorer, threshold: float) -> tuple[PassResult, PassResult]:
    """Two passes of what ``resolver reconcile`` runs (built as it builds them: Strong reads of
    the workers' collection); the first publishes its merges, the second must find nothing left."""
    from content_resolver.composition import build_milvus_index

    reconciler = CrossPartitionReconciler(threshold, settings.worker.conflict_threshold)
    index = build_milvus_index(settings, consistency="Strong")

    async def passes() -> tuple[PassResult, PassResult]:
        first = await reconcile_once(settings.kafka, reconciler, index, scorer)
        return first, await reconcile_once(settings.kafka, reconciler, index, scorer)

    return asyncio.run(passes())


@dataclass
class Outcome:
    f1: float
    precision: float
    recall: float
    entities: int
    decisions_per_content: Counter[str]
    dead_letters: Counter[str]
    by_worker: Counter[str]
    split_with_evidence: list[tuple[str, str, str]]  # (true recording, entity, entity)
    split_without_evidence: int
    records: list[Published]


def outcome(settings: Settings, truth: dict[str, str], threshold: float, names: dict[str, str]) -> Outcome:
    records = published(settings)
    state = rebuild_state([p.record for p in records])
    entity_of = {c: e for c, e, _w in cluster_rows(state) if c in truth}
    prf = pairwise_prf(entity_of, truth)
    content = [p for p in records if p.from_content_event]
    created_in = {p.record["entity_id"]: p.partition for p in content if p.record["action"] == "NEW"}
    # Evidence reconciliation acts on: a content event's candidate scored at the merge threshold,
    # between the live entities the two items are in now.
    evidence: set[frozenset[str]] = set()
    for p in content:
        mine = entity_of.get(p.record["content_id"])
        for c in p.record.get("candidates") or ():
            theirs = entity_of.get(c["content_id"])
            if mine and theirs and mine != theirs and float(c.get("p_same", -1.0)) >= threshold:
                evidence.add(frozenset((mine, theirs)))
    entities_of_truth: dict[str, set[str]] = {}
    for c, e in entity_of.items():
        entities_of_truth.setdefault(truth[c], set()).add(e)
    with_evidence, without = [], 0
    for recording, entities in sorted(entities_of_truth.items()):
        ordered = sorted(entities)
        for i, a in enumerate(ordered):
            for b in ordered[i + 1 :]:
                if created_in.get(a) is None or created_in.get(b) is None or created_in[a] == created_in[b]:
                    continue
                if frozenset((a, b)) in evidence:
                    with_evidence.append((recording, a, b))
                else:
                    without += 1
    return Outcome(
        f1=prf.f1,
        precision=prf.precision,
        recall=prf.recall,
        entities=len(set(entity_of.values())),
        decisions_per_content=Counter(p.record["content_id"] for p in content),
        dead_letters=dead_lettered(settings),
        by_worker=Counter(names.get(p.worker, p.worker or "?") for p in content),
        split_with_evidence=with_evidence,
        split_without_evidence=without,
        records=records,
    )


def keep(path: Path, records: list[Published]) -> None:
    """The decisions read, kept beside the workers' logs for whoever reads a failed run."""
    with path.open("w", encoding="utf-8") as out:
        for p in records:
            out.write(json.dumps({"partition": p.partition, "worker": p.worker, "record": p.record}) + "\n")


def band(gap_s: float) -> str:
    lower = 0.0
    for upper in GAP_BANDS_S:
        if gap_s < upper:
            return f"{lower:g}-{upper:g}s"
        lower = upper
    return f">={lower:g}s"


def visibility(records: list[Published], truth: dict[str, str]) -> dict[str, list[int]]:
    """For every pair of true duplicates, the later one's decision: was the earlier one among its
    scored candidates? [not found, pairs] by (the same worker or another one wrote the earlier
    one, the time between the two decisions)."""
    decided = sorted(
        ((int(p.record["decided_at_ms"]), p.worker, p.record) for p in records if p.from_content_event),
        key=lambda row: (row[0], row[2]["content_id"]),
    )
    by_recording: dict[str, list[tuple[int, str, dict[str, Any]]]] = {}
    for row in decided:
        if row[2]["content_id"] in truth:
            by_recording.setdefault(truth[row[2]["content_id"]], []).append(row)
    cells: dict[str, list[int]] = {}
    for rows in by_recording.values():
        for i, (t_late, w_late, late) in enumerate(rows):
            seen = {c["content_id"] for c in late.get("candidates") or ()}
            for t_early, w_early, early in rows[:i]:
                writer = "same worker" if w_early == w_late else "other worker"
                cell = cells.setdefault(f"{writer} {band((t_late - t_early) / 1000)}", [0, 0])
                cell[0] += early["content_id"] not in seen
                cell[1] += 1
    return dict(sorted(cells.items()))


def describe(label: str, o: Outcome) -> str:
    return (
        f"{label}: F1 {o.f1:.4f} (P {o.precision:.4f} R {o.recall:.4f}), {o.entities} entities, "
        f"true recordings split across partitions: {len(o.split_with_evidence)} with evidence, "
        f"{o.split_without_evidence} without"
    )


def test_three_workers_with_a_leave_and_a_join_match_one_worker(stack: Settings, tmp_path: Path) -> None:
    ds = load_dataset(DATASET)
    assert ds.truth is not None
    scored = split_ids(ds, SPLIT)
    items = seeded_order([i for i in ds.items if i.content_id in scored], 0)
    truth = {c: ds.truth[c].entity_id for c in scored}
    timeout_s = 120 + len(items) / 10  # well above the slowest rate seen on 2 shared cores
    scorer, threshold = served_matcher(stack)
    one = WorkerGroup("one", tmp_path / "one")
    many = WorkerGroup("many", tmp_path / "many")
    try:
        started = time.monotonic()
        stream_one_worker(one, items, timeout_s)
        one_s = time.monotonic() - started
        baseline = outcome(one.settings, truth, threshold, one.names)

        started = time.monotonic()
        moves = stream_many_workers(many, items, timeout_s)
        many_s = time.monotonic() - started
        before = outcome(many.settings, truth, threshold, many.names)
        first, second = reconcile_twice(many.settings, scorer, threshold)
        after = outcome(many.settings, truth, threshold, many.names)
        reasons = Counter(d["reason"] for d in dead_letters(many.settings))
        partitions = Counter(p.partition for p in after.records if p.from_content_event)
        misses = visibility(before.records, truth)
        for name, o in (("one", baseline), ("many-before", before), ("many-after", after)):
            keep(tmp_path / f"{name}-decisions.jsonl", o.records)

        print(
            f"\n[many-workers] musicbrainz-20k {SPLIT}: {len(items)} events, {len(set(truth.values()))} recordings, "
            f"{PARTITIONS} partitions, merge threshold {threshold:.3f}\n"
            f"  {describe('one worker', baseline)}; streamed in {one_s:.0f}s\n"
            f"  {describe('3 workers, one left, one joined, before reconciliation', before)}; streamed in "
            f"{many_s:.0f}s; {moves['left']} left at {moves['decided_at_leave']} decided, {moves['joined']} "
            f"answered at {moves['decided_at_join']}; decisions by worker {dict(sorted(after.by_worker.items()))}; "
            f"by partition {dict(sorted(partitions.items()))}; dead letters {dict(reasons)} (one worker: "
            f"{sum(baseline.dead_letters.values())})\n"
            f"  reconciliation: {first.plan.cross_partition_pairs} cross-partition duplicate pairs "
            f"({first.plan.contradicted} left apart: their members contradict) "
            f"({first.rescored} raced pairs scored again), {first.published} MERGE decisions published; "
            f"a second pass: {second.plan.cross_partition_pairs} pairs, {second.published} published\n"
            f"  {describe('after reconciliation', after)}; F1 minus one worker's {after.f1 - baseline.f1:+.4f}\n"
            f"  earlier true duplicate not among the later item's candidates [missed, pairs], one worker: "
            f"{visibility(baseline.records, truth)}\n"
            f"  the same, many workers: {misses}"
        )
        for label, o in (("one worker", baseline), ("many workers", after)):
            decided, dead = o.decisions_per_content, o.dead_letters
            lost = set(truth) - set(decided) - set(dead)
            assert not lost, f"{label}: {len(lost)} events lost (neither decided nor dead-lettered): {sorted(lost)[:5]}"
            twice = {c: n for c, n in (decided + dead).items() if n != 1 or (c in decided and c in dead)}
            assert not twice, f"{label}: answered more than once: {list(twice.items())[:5]}"
        assert set(after.dead_letters) == set(baseline.dead_letters), "the workers dead-lettered other events"
        assert len(partitions) == PARTITIONS, f"events reached only partitions {sorted(partitions)}"
        assert moves["decided_at_leave"] < len(items), "the worker left after everything was decided"
        assert after.by_worker[moves["left"]] > 0 and after.by_worker[moves["joined"]] > 0, after.by_worker
        assert not after.split_with_evidence, (
            f"entities created twice that reconciliation should have joined: {after.split_with_evidence[:5]}"
        )
        assert second.published == 0, "a second reconciliation pass published again"
        assert abs(after.f1 - baseline.f1) <= F1_BOUND, (baseline.f1, before.f1, after.f1)
    finally:
        one.stop_all()
        many.stop_all()
        one.drop()
        many.drop()

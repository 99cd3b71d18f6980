"""Many workers in one consumer group, one shared Milvus: the same quality as one worker.

A subset of musicbrainz-20k (valid portion, seeded order) is streamed twice over six partitions:
through one worker, then through three, one of which leaves midway while a fourth joins. Every
event must get exactly one decision; after the reconciliation pass (duplicates created in two
partitions merged, ``streams/reconciliation.py``) pairwise F1 must be within 0.005 of the one
worker's, and a second pass must find nothing left to merge. The figures are printed (``-s``);
``SCALE_TEST_EVENTS`` runs a larger subset by hand (docs/scaling.md).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from deploy.worker import free_port, isolated_namespace
from evaluation.datasets import load_dataset
from evaluation.evaluate import split_items
from evaluation.metrics import pairwise_prf
from resolution.entities import EntityStore, rebuild_state
from resolution.model import ContentItem
from settings import Settings
from streams.kafka import ensure_topics
from streams.reconciliation import CrossPartitionReconciler, publish_merges, read_decisions
from tests.integration.streaming import produce, wait_decisions
from tests.shared_data import SHARED_DATA
from tests.workers import drop_namespace, worker_process

pytestmark = pytest.mark.integration

DATASET = SHARED_DATA / "musicbrainz-20k"
EVENTS = int(os.environ.get("SCALE_TEST_EVENTS", "900"))
PARTITIONS = 6


def merge_threshold(settings: Settings) -> float:
    """The shipped matcher's merge threshold: the reconciler merges on the workers' own evidence."""
    from inference.matcher_model import MatcherModel, latest_version_dir

    version = latest_version_dir(settings.stack.triton_model_repository / settings.worker.matcher_model)
    return MatcherModel.load(version).thresholds.merge if version is not None else settings.worker.merge_threshold


def subset() -> tuple[list[ContentItem], dict[str, str]]:
    ds = load_dataset(DATASET)
    assert ds.truth is not None
    items = split_items(ds, "valid")
    random.Random(14).shuffle(items)
    items = items[:EVENTS]
    return items, {i.content_id: ds.truth[i.content_id].entity_id for i in items}


class Group:
    """Workers of one namespace (one consumer group, one collection); each its own web port."""

    def __init__(self, tag: str, logs: Path) -> None:
        self.settings, self.env = isolated_namespace(tag, "test", {"RESOLVER_KAFKA_PARTITIONS": str(PARTITIONS)})
        ensure_topics(self.settings.kafka)
        self.logs = logs
        self.workers: list[Any] = []

    def start(self, n: int) -> list[Any]:
        started = []
        for _ in range(n):
            env = {**self.env, "RESOLVER_WORKER_WEB_PORT": str(free_port())}
            settings = Settings.from_env({**os.environ, **env})
            w = worker_process(settings, env, self.logs / f"worker-{len(self.workers)}.log")
            w.start(wait=False)
            self.workers.append(w)
            started.append(w)
        for w in started:
            w.wait_ready()
        return started

    def stop_all(self) -> None:
        for w in self.workers:
            w.stop()

    def drop(self) -> None:
        drop_namespace(self.settings)


def quality(settings: Settings, truth: dict[str, str]) -> dict[str, Any]:
    records = read_decisions(settings.kafka)
    store = EntityStore(rebuild_state([d.record for d in records]))
    pred = {cid: store.resolve_id(store.entity_of(cid) or cid) for cid in truth}
    prf = pairwise_prf(pred, truth)
    content = [d.record for d in records if d.record.get("trigger", "content-event") == "content-event"]
    per_event: dict[str, set[str]] = {}
    for r in content:
        per_event.setdefault(r["event_id"], set()).add(r["decision_id"])
    return {
        "f1": prf.f1,
        "precision": prf.precision,
        "recall": prf.recall,
        "decided": len(per_event),
        "decided_twice": sum(1 for ids in per_event.values() if len(ids) > 1),
        "live_entities": len({pred[c] for c in pred}),
        "records": records,
    }


def visibility(records: list[Any], truth: dict[str, str]) -> dict[str, list[int]]:
    """For each pair of true duplicates decided one after the other: was the earlier one among the
    later one's candidates? Per (same or other partition, gap between the decisions): [found, pairs]."""
    decided = [
        (int(d.record["decided_at_ms"]), d.partition, d.record)
        for d in records
        if d.record.get("trigger", "content-event") == "content-event" and d.record["content_id"] in truth
    ]
    by_entity: dict[str, list[tuple[int, int, dict[str, Any]]]] = {}
    for row in sorted(decided, key=lambda r: r[0]):
        by_entity.setdefault(truth[row[2]["content_id"]], []).append(row)
    out: dict[str, list[int]] = {}
    for rows in by_entity.values():
        for i, (t_late, p_late, late) in enumerate(rows):
            seen = {c["content_id"] for c in late.get("candidates") or ()}
            for t_early, p_early, early in rows[:i]:
                gap = (t_late - t_early) / 1000
                band = "<2s" if gap < 2 else "2-10s" if gap < 10 else ">=10s"
                key = f"{'same' if p_late == p_early else 'other'} partition {band}"
                cell = out.setdefault(key, [0, 0])
                cell[0] += early["content_id"] in seen
                cell[1] += 1
    return dict(sorted(out.items()))


def stream_one_worker(items: list[ContentItem], logs: Path) -> Settings:
    group = Group("one", logs)
    try:
        group.start(1)
        produce(group.settings, items)
        got = wait_decisions(group.settings, {i.event_id for i in items}, timeout_s=240)
        assert len(got) == len(items), f"one worker decided {len(got)} of {len(items)}"
    finally:
        group.stop_all()
    return group.settings


def stream_many_workers(items: list[ContentItem], logs: Path) -> tuple[Settings, Group]:
    """Three workers; once the first half is decided one leaves (SIGTERM) and a fourth joins."""
    group = Group("many", logs)
    half = len(items) // 2
    try:
        first = group.start(3)
        produce(group.settings, items[:half])
        time.sleep(3.0)  # the first half is being decided when the group changes
        first[1].stop()
        group.start(1)
        produce(group.settings, items[half:])
        got = wait_decisions(group.settings, {i.event_id for i in items}, timeout_s=300)
        assert len(got) == len(items), f"many workers decided {len(got)} of {len(items)}"
    finally:
        group.stop_all()
    return group.settings, group


@pytest.mark.dataset
def test_three_workers_over_six_partitions_match_one_worker(stack: Settings, tmp_path: Path) -> None:
    if not DATASET.exists():
        pytest.skip(f"{DATASET} is absent (a fresh clone without ../shared/data)")
    items, truth = subset()
    one_settings = stream_one_worker(items, tmp_path / "one")
    many_group: Group | None = None
    try:
        one = quality(one_settings, truth)
        many_settings, many_group = stream_many_workers(items, tmp_path / "many")
        before = quality(many_settings, truth)
        reconciler = CrossPartitionReconciler(merge_threshold(stack))
        plan = reconciler.plan(before["records"])
        published = publish_merges(many_settings.kafka, plan)
        after = quality(many_settings, truth)
        again = reconciler.plan(after["records"])
        partitions = {d.partition for d in after["records"]}
        seen = visibility(before["records"], truth)
        print(
            f"\n[many-workers] {len(items)} events, {PARTITIONS} partitions: one worker F1 {one['f1']:.4f} "
            f"(P {one['precision']:.4f} R {one['recall']:.4f}, {one['live_entities']} entities); "
            f"3 workers, one left, one joined: F1 {before['f1']:.4f} before reconciliation "
            f"({before['live_entities']} entities), {after['f1']:.4f} after "
            f"(P {after['precision']:.4f} R {after['recall']:.4f}, {after['live_entities']} entities); "
            f"cross-partition duplicate pairs found {plan.cross_partition_pairs}, merges published {published}, "
            f"left after: {len(again.merges)}; decided {after['decided']}, twice {after['decided_twice']}; "
            f"decision partitions used {sorted(partitions)}; earlier duplicate among the candidates "
            f"(found/pairs): {seen}"
        )
        assert one["decided"] == len(items) and one["decided_twice"] == 0
        assert after["decided"] == len(items), "an event was lost"
        assert after["decided_twice"] == 0, "an event was decided twice"
        assert len(partitions) == PARTITIONS, f"events reached only partitions {sorted(partitions)}"
        assert again.merges == [], f"entities still created twice after reconciliation: {again.merges[:3]}"
        assert abs(after["f1"] - one["f1"]) <= 0.005, (one["f1"], before["f1"], after["f1"])
    finally:
        drop_namespace(one_settings)
        if many_group is not None:
            many_group.drop()

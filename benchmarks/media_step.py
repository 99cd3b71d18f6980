"""What the worker's media step costs, and changes, where events carry no media references.

The media step is on by default (``RESOLVER_WORKER_MEDIA_EVIDENCE``) only if it is free for the
metadata-only feeds: a batch without ``audio_ref`` / ``image_ref`` skips the reading, and an
item without media evidence is scored exactly as before. This streams a labelled dataset in
worker-sized batches through the worker's offline resolver twice per round, without the media
step (the baseline) and with it, in alternating order, and reports

- decisions that differ from a first run without the step (action, relation, entity, linked
  entity, confidence, reason, signals; and the clustering left in the store), for the runs without
  it (the resolver's own run-to-run differences) and with it: expected equal. The recent-writes
  overlay keeps a count of rows (``RESOLVER_WORKER_RECENT_ROWS``), no wall-clock window any more,
  so the offline resolver is deterministic and every difference would be the step's;
- events per second of each, and their ratio, per round and as the median.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.state_store import cpu_flags
from evaluation.datasets import load_dataset
from evaluation.streaming import OfflineResolver, seeded_order, stream_items
from resolution.model import ContentItem, Decision


def _decision_key(d: Decision) -> tuple[Any, ...]:
    """What a decision says; scores to 6 places (the matcher's float32 batches differ in the last
    bits from run to run, with or without the media step)."""
    relation = d.relation.value if d.relation else None
    signals = sorted((k, round(v, 6)) for k, v in d.signals.items())
    return (d.action.value, relation, d.entity_id, d.related_entity_id, round(d.confidence, 6), d.reason, signals)


async def _stream(offline: OfflineResolver, order: list[ContentItem]) -> tuple[float, dict[str, Any], dict[str, str]]:
    async with offline.fresh() as (resolver, store):
        started = time.perf_counter()
        outcome = await stream_items(order, resolver, store, offline.batch_size, progress=False)
        seconds = time.perf_counter() - started
    decisions = {cid: _decision_key(d) for cid, d in outcome.decisions.items()}
    return seconds, decisions, {**outcome.entity_of, **{f"work:{k}": v for k, v in outcome.work_of.items()}}


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def run_media_step_check(
    dataset: Path, without_media: OfflineResolver, with_media: OfflineResolver, rounds: int = 3, limit: int = 0
) -> dict[str, Any]:
    ds = load_dataset(dataset, limit=limit or None)
    items = list(ds.items)
    with_refs = sum(bool(i.audio_ref or i.image_ref) for i in items)
    order = seeded_order(items, 0)
    # Embeddings are cached on disk: one untimed pass (the control) so that no run pays for
    # encoding; every later run's decisions are compared with it, the baseline's own runs too
    # (a difference between two runs without the media step is the resolver's, not the step's).
    _, control_d, control_c = asyncio.run(_stream(without_media, order))
    per_round = []
    differing = {"off": 0, "on": 0}
    outcomes = {"off": 0, "on": 0}  # action, relation, entity or linked entity (not only a score)
    assignments = {"off": 0, "on": 0}
    sample: dict[str, Any] = {}
    for n in range(rounds):
        sides = [("off", without_media), ("on", with_media)]
        runs = {name: asyncio.run(_stream(offline, order)) for name, offline in (sides if n % 2 == 0 else sides[::-1])}
        for name, (_, decided, assigned) in runs.items():
            diff = _differences(control_d, decided)
            differing[name] = max(differing[name], len(diff))
            changed = [k for k in diff if (control_d.get(k) or ())[:4] != (decided.get(k) or ())[:4]]
            outcomes[name] = max(outcomes[name], len(changed))
            assignments[name] = max(assignments[name], len(_differences(control_c, assigned)))
            if diff and name not in sample:
                sample[name] = {"content_id": diff[0], "control": control_d.get(diff[0]), "run": decided.get(diff[0])}
        off_s, on_s = runs["off"][0], runs["on"][0]
        per_round.append(
            {"off_events_per_s": len(order) / off_s, "on_events_per_s": len(order) / on_s, "ratio": off_s / on_s}
        )
    return {
        "dataset": ds.name,
        "events": len(order),
        "events_with_media_refs": with_refs,
        "rounds": per_round,
        "median_off_events_per_s": statistics.median(r["off_events_per_s"] for r in per_round),
        "median_on_events_per_s": statistics.median(r["on_events_per_s"] for r in per_round),
        "median_ratio_on_to_off": statistics.median(r["ratio"] for r in per_round),
        "decisions_differing_from_control": differing,
        "outcomes_differing_from_control": outcomes,
        "assignments_differing_from_control": assignments,
        "first_difference": {k: repr(v) for k, v in sample.items()},
        "cpu_flags": cpu_flags(),
        "cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
    }


def format_media_step(r: dict[str, Any]) -> str:
    rounds = "; ".join(f"{x['off_events_per_s']:.0f} / {x['on_events_per_s']:.0f} ev/s" for x in r["rounds"])
    return (
        f"{r['dataset']}: {r['events']} events ({r['events_with_media_refs']} with media references); "
        f"off / on per round: {rounds}; median ratio on:off {r['median_ratio_on_to_off']:.3f}; "
        f"decisions differing from a run without it: without {r['decisions_differing_from_control']['off']}, "
        f"with {r['decisions_differing_from_control']['on']}; assignments differing: without "
        f"{r['assignments_differing_from_control']['off']}, with {r['assignments_differing_from_control']['on']}; "
        f"decisions with another action, relation or entity: without {r['outcomes_differing_from_control']['off']}, "
        f"with {r['outcomes_differing_from_control']['on']}\n"
        f"CPU flags: {r['cpu_flags']} ({r['cpus']} cores), load average {r['load_average_1m']:.2f}"
    )

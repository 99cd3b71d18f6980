"""What the worker's media step costs, and changes, where events carry no media references.

The media step is on by default (``RESOLVER_WORKER_MEDIA_EVIDENCE``) only if it is free for the
metadata-only feeds: a batch without ``audio_ref`` / ``image_ref`` skips the reading, and an
item without media evidence is scored exactly as before. This streams a labelled dataset in
worker-sized batches through the worker's offline resolver twice per round, without the media
step (the baseline) and with it, in alternating order, and reports

- decisions that differ (action, relation, entity, linked entity, confidence, reason, signals;
  and the clustering left in the store): expected 0;
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
    relation = d.relation.value if d.relation else None
    return (
        d.action.value,
        relation,
        d.entity_id,
        d.related_entity_id,
        d.confidence,
        d.reason,
        sorted(d.signals.items()),
    )


async def _stream(offline: OfflineResolver, order: list[ContentItem]) -> tuple[float, dict[str, Any], dict[str, str]]:
    async with offline.fresh() as (resolver, store):
        started = time.perf_counter()
        outcome = await stream_items(order, resolver, store, offline.batch_size, progress=False)
        seconds = time.perf_counter() - started
    decisions = {cid: _decision_key(d) for cid, d in outcome.decisions.items()}
    return seconds, decisions, {**outcome.entity_of, **{f"work:{k}": v for k, v in outcome.work_of.items()}}


def run_media_step_check(
    dataset: Path, without_media: OfflineResolver, with_media: OfflineResolver, rounds: int = 3, limit: int = 0
) -> dict[str, Any]:
    ds = load_dataset(dataset, limit=limit or None)
    items = list(ds.items)
    with_refs = sum(bool(i.audio_ref or i.image_ref) for i in items)
    order = seeded_order(items, 0)
    # Embeddings are cached on disk: one untimed pass so that neither side pays for encoding.
    asyncio.run(_stream(without_media, order))
    per_round = []
    differing = 0
    cluster_differences = 0
    for n in range(rounds):
        runs = {}
        for name, offline in (
            (("off", without_media), ("on", with_media))
            if n % 2 == 0
            else (
                ("on", with_media),
                ("off", without_media),
            )
        ):
            runs[name] = asyncio.run(_stream(offline, order))
        (off_s, off_d, off_c), (on_s, on_d, on_c) = runs["off"], runs["on"]
        differing = max(differing, sum(off_d.get(cid) != on_d.get(cid) for cid in off_d.keys() | on_d.keys()))
        cluster_differences = max(
            cluster_differences, sum(off_c.get(k) != on_c.get(k) for k in off_c.keys() | on_c.keys())
        )
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
        "decisions_differing": differing,
        "assignments_differing": cluster_differences,
        "cpu_flags": cpu_flags(),
        "cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
    }


def format_media_step(r: dict[str, Any]) -> str:
    rounds = "; ".join(f"{x['off_events_per_s']:.0f} / {x['on_events_per_s']:.0f} ev/s" for x in r["rounds"])
    return (
        f"{r['dataset']}: {r['events']} events ({r['events_with_media_refs']} with media references); "
        f"off / on per round: {rounds}; median ratio on:off {r['median_ratio_on_to_off']:.3f}; "
        f"decisions differing {r['decisions_differing']}, assignments differing {r['assignments_differing']}\n"
        f"CPU flags: {r['cpu_flags']} ({r['cpus']} cores), load average {r['load_average_1m']:.2f}"
    )

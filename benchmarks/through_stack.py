"""``resolver evaluate --through-stack``: a labelled cluster set through the deployed path.

Every record is produced to Kafka (in the first seeded order ``evaluate`` streams) for an
isolated worker (its own topics, consumer group, Milvus collection and web port, deleted
afterwards, as the end-to-end benchmark sets it up); the worker decides with Triton and Milvus;
the clustering is then exported from its decisions topic (replayed, corrections applied) and
the chosen split's records are scored against the truth, with throughput and latency.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.end_to_end import EndToEndBench
from evaluation.cluster_scoring import prf_dict
from evaluation.datasets import Dataset, load_dataset
from evaluation.evaluate import split_ids
from evaluation.metrics import bcubed_prf, pairwise_prf
from evaluation.streaming import seeded_order
from resolution.entities import cluster_rows, rebuild_state
from resolution.model import ContentItem
from settings import Settings
from streams.replay import decision_records, write_clusters


def tagged(items: list[ContentItem], tag: str) -> tuple[list[ContentItem], dict[str, str]]:
    """Items with ids unique to this run (topics are fresh, but Milvus rows and traces are
    shared services); and the map back to the dataset's record ids."""
    out = [replace(i, event_id=f"{i.event_id}@{tag}", content_id=f"{i.content_id}@{tag}") for i in items]
    return out, {o.content_id: i.content_id for o, i in zip(out, items, strict=True)}


def score_clusters(
    rows: list[tuple[str, str, str]], ds: Dataset, split: str, original: dict[str, str]
) -> dict[str, Any]:
    """Pairwise, B-cubed and work-level P/R/F1 of an exported clustering over the split's records."""
    assert ds.truth is not None
    truth = ds.truth
    scored = split_ids(ds, split)
    entity_of = {original.get(c, c): e for c, e, _w in rows}
    work_of = {original.get(c, c): w for c, _e, w in rows}
    entity_truth = {c: truth[c].entity_id for c in scored}
    out: dict[str, Any] = {
        "records": len(scored),
        "exported": len(rows),
        "missing": len(scored - entity_of.keys()),
        "pairwise": prf_dict(pairwise_prf(entity_of, entity_truth)),
        "bcubed": prf_dict(bcubed_prf(entity_of, entity_truth)),
    }
    if any(truth[c].work_id for c in scored):
        work_truth = {c: truth[c].work_id or truth[c].entity_id for c in scored}
        out["work_pairwise"] = prf_dict(pairwise_prf(work_of, work_truth))
    return out


class DatasetThroughStack(EndToEndBench):
    """The end-to-end benchmark's isolated worker, fed one dataset's records in a given order."""

    def __init__(self, base: Settings, items: list[ContentItem], log_dir: Path) -> None:
        super().__init__(base, None, log_dir)
        self._events = iter(items)


def through_stack(settings: Settings, dataset_dir: Path, split: str, clusters_out: Path | None) -> dict[str, Any]:
    ds = load_dataset(dataset_dir)
    if ds.truth is None or ds.pairs is not None:
        raise ValueError(f"{ds.name}: --through-stack needs a cluster set (truth.csv)")
    records = [i for i in ds.items if i.content_id in ds.truth]
    items, original = tagged(seeded_order(records, 0), f"eval{int(time.time())}")
    log_dir = settings.stack.state_dir / "logs"
    with DatasetThroughStack(settings, items, log_dir) as run:
        phase = run.run_phase("through-stack", len(items), None)
        rows = cluster_rows(rebuild_state(decision_records(run.settings)))
    if clusters_out is not None:
        write_clusters(clusters_out, [(original.get(c, c), e, w) for c, e, w in rows])
    return {
        "dataset": ds.name,
        "kind": "clusters",
        "split": split,
        "mode": "through-stack",
        "text_model": settings.worker.text_model,
        "streamed": len(items),
        "decided": phase.events - phase.missing,
        "events_per_s": phase.events_per_s,
        "latency_ms": phase.latency_ms,
        "batch_size_mean": phase.batch_size_mean,
        **score_clusters(rows, ds, split, original),
    }


def through_stack_command(settings: Settings, dataset_dir: Path, split: str, json_out: str | None) -> int:
    clusters = Path(json_out).with_suffix(".clusters.csv") if json_out else None
    m = through_stack(settings, dataset_dir, split, clusters)

    def prf(d: dict[str, Any]) -> str:
        return f"P {d['precision']:.4f} R {d['recall']:.4f} F1 {d['f1']:.4f}"

    print(f"{m['dataset']} [through the stack, split={split}, text model {m['text_model']}]")
    print(f"  streamed {m['streamed']}, decided {m['decided']}, scored {m['records']} (missing {m['missing']})")
    print(f"  pairwise      {prf(m['pairwise'])}")
    print(f"  b-cubed       {prf(m['bcubed'])}")
    if "work_pairwise" in m:
        print(f"  work pairwise {prf(m['work_pairwise'])}")
    lat = m["latency_ms"]
    print(f"  {m['events_per_s']:.1f} events/s; latency ms {json.dumps(lat)}; mean batch {m['batch_size_mean']}")
    if json_out:
        Path(json_out).write_text(json.dumps(m, indent=2) + "\n", encoding="utf-8")
    if m["missing"]:
        print(f"[evaluate] {m['missing']} scored records got no decision", file=sys.stderr)
        return 1
    return 0

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


def score_pairs(rows: list[tuple[str, str, str]], ds: Dataset, split: str, original: dict[str, str]) -> dict[str, Any]:
    """A pair set judged from the exported clustering (``evaluation.pair_scoring.judged_together``:
    a video and a work together when in one work, two recordings when in one entity), raw and
    leak-free: the measure ``resolver evaluate`` reports offline as "clustered"."""
    from evaluation.leakage import leak_free
    from evaluation.pair_examples import pair_set_examples
    from evaluation.pair_scoring import clustered_pair_prf
    from evaluation.splits import in_split

    assert ds.pairs is not None
    entity_of = {original.get(c, c): e for c, e, _w in rows}
    work_of = {original.get(c, c): w for c, _e, w in rows}

    class NoVectors:  # the pairs' cosine plays no part here: the worker has decided
        def vectors(self, texts: list[str]) -> Any:
            import numpy as np

            return np.zeros((len(texts), 1), dtype=np.float32)

    every = pair_set_examples(ds, NoVectors())  # type: ignore[arg-type]
    examples = [e for e in every if in_split(e.portion, split)]
    out = {"records": len(ds.items), "exported": len(rows), **clustered_pair_prf(examples, entity_of, work_of)}
    out["missing"] = len({c for e in examples for c in (e.left.content_id, e.right.content_id)} - entity_of.keys())
    if split in ("valid", "test"):
        out["leak_free"] = clustered_pair_prf(leak_free(examples, every), entity_of, work_of)
    return out


def content_decisions(records: list[dict[str, Any]], original: dict[str, str]) -> dict[str, str]:
    """Each content event's own decision (MERGE, LINK, NEW), by the dataset's record id."""
    return {
        original.get(r["content_id"], r["content_id"]): r["action"]
        for r in records
        if r["action"] in ("MERGE", "LINK", "NEW") and not r.get("members")
    }


def cluster_signatures(rows: list[tuple[str, str, str]], original: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """Each record's final entity as the set of its members' record ids (entity ids are not
    comparable across runs; memberships are)."""
    members: dict[str, list[str]] = {}
    for c, e, _w in rows:
        members.setdefault(e, []).append(original.get(c, c))
    return {m: tuple(sorted(group)) for group in members.values() for m in group}


def differing(runs: list[dict[str, Any]]) -> int:
    """Records whose value differs between any run and the first."""
    first = runs[0]
    return sum(1 for key in first if any(run.get(key) != first[key] for run in runs[1:]))


def through_stack(
    settings: Settings, dataset_dir: Path, split: str, clusters_out: Path | None, repeat: int = 1
) -> dict[str, Any]:
    ds = load_dataset(dataset_dir)
    if ds.truth is None and ds.pairs is None:
        raise ValueError(f"{ds.name}: neither truth.csv nor pairs.csv")
    records = [i for i in ds.items if ds.truth is None or i.content_id in ds.truth]
    order = seeded_order(records, 0)
    log_dir = settings.stack.state_dir / "logs"
    decisions: list[dict[str, str]] = []
    signatures: list[dict[str, tuple[str, ...]]] = []
    for run_no in range(repeat):
        items, original = tagged(order, f"eval{int(time.time())}r{run_no}")
        with DatasetThroughStack(settings, items, log_dir) as run:
            phase = run.run_phase("through-stack", len(items), None)
            published = decision_records(run.settings)
        rows = cluster_rows(rebuild_state(published))
        decisions.append(content_decisions(published, original))
        signatures.append(cluster_signatures(rows, original))
        if run_no == 0:
            first_rows, first_original, first_phase = rows, original, phase
    if clusters_out is not None:
        write_clusters(clusters_out, [(first_original.get(c, c), e, w) for c, e, w in first_rows])
    scores = (
        score_pairs(first_rows, ds, split, first_original)
        if ds.pairs is not None
        else score_clusters(first_rows, ds, split, first_original)
    )
    out: dict[str, Any] = {
        "dataset": ds.name,
        "kind": "pairs" if ds.pairs is not None else "clusters",
        "split": split,
        "mode": "through-stack",
        "text_model": settings.worker.text_model,
        "streamed": len(order),
        "decided": first_phase.events - first_phase.missing - first_phase.dead_lettered,
        "dead_lettered": first_phase.dead_lettered,
        "unanswered": first_phase.missing,
        "events_per_s": first_phase.events_per_s,
        "latency_ms": first_phase.latency_ms,
        "batch_size_mean": first_phase.batch_size_mean,
        **scores,
    }
    if repeat > 1:
        out["determinism"] = {
            "runs": repeat,
            "decisions_differing": differing(decisions),
            "clusters_differing": differing(signatures),
            "records": len(order),
        }
    return out


def through_stack_command(
    settings: Settings, dataset_dir: Path, split: str, json_out: str | None, repeat: int = 1
) -> int:
    clusters = Path(json_out).with_suffix(".clusters.csv") if json_out else None
    m = through_stack(settings, dataset_dir, split, clusters, repeat)

    def prf(d: dict[str, Any]) -> str:
        return f"P {d['precision']:.4f} R {d['recall']:.4f} F1 {d['f1']:.4f}"

    print(f"{m['dataset']} [through the stack, split={split}, text model {m['text_model']}]")
    print(
        f"  streamed {m['streamed']}, decided {m['decided']}, dead-lettered {m['dead_lettered']}, "
        f"scored {m['records']} (without an entity {m['missing']})"
    )
    if m["kind"] == "pairs":
        print(f"  pairs {m['pairs']} (positives {m['positives']}): {prf(m['pairwise'])}")
        if "leak_free" in m:
            free = m["leak_free"]
            print(f"  leak-free pairs {free['pairs']} (positives {free['positives']}): {prf(free['pairwise'])}")
    else:
        print(f"  pairwise      {prf(m['pairwise'])}")
        print(f"  b-cubed       {prf(m['bcubed'])}")
        if "work_pairwise" in m:
            print(f"  work pairwise {prf(m['work_pairwise'])}")
    if "determinism" in m:
        d = m["determinism"]
        print(
            f"  determinism over {d['runs']} runs of the same stream: {d['decisions_differing']} of {d['records']} "
            f"decisions and {d['clusters_differing']} final clusters differ from the first run"
        )
    lat = m["latency_ms"]
    print(f"  {m['events_per_s']:.1f} events/s; latency ms {json.dumps(lat)}; mean batch {m['batch_size_mean']}")
    if json_out:
        Path(json_out).write_text(json.dumps(m, indent=2) + "\n", encoding="utf-8")
    if m["unanswered"]:
        print(f"[evaluate] {m['unanswered']} streamed events got neither a decision nor a dead letter", file=sys.stderr)
        return 1
    return 0

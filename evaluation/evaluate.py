"""``resolver evaluate``: a labelled dataset through the worker's resolution code, offline.

Thin orchestration over pure modules: ``streaming`` (orders, batches), ``cluster_scoring`` and
``pair_scoring`` (metrics of one outcome), ``at_once`` (the batch-job comparison), ``leakage``
(leak-free pairs), ``summary`` (the printed lines). The resolver comes from the caller: the
command builds it through the composition root from the worker's settings (text model variant,
pipeline chunk, candidate paths and caps, thresholds, correction limits, index).

Cluster sets (``truth.csv``): by default every record of the set is streamed, in N seeded
orders, and only the chosen split's records are scored: the others are the look-alikes a real
catalogue holds. ``stream="split"`` streams the split's records alone (the first release's
evaluation). Pair sets (``pairs.csv``): every pair of the split is scored by the matcher and
classified by the policy; beside the raw figure, the leak-free pairs (no record shared with a
training pair, by id or normalised text).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.at_once import resolve_at_once
from evaluation.cluster_scoring import EvaluationResult, has_entity_pairs, prf_dict, stream_details, stream_quality
from evaluation.datasets import Dataset
from evaluation.leakage import leak_free
from evaluation.metrics import bcubed_prf, pairwise_prf
from evaluation.pair_examples import PairExample, cluster_key, pair_set_examples
from evaluation.pair_misses import missed_positives, reason_counts
from evaluation.pair_scoring import clustered_pair_prf, pair_details, pair_prf
from evaluation.splits import cluster_portion, in_split
from evaluation.streaming import OfflineResolver, StreamOutcome, seeded_order, stream_items
from resolution.drift import decision_signals
from resolution.model import ContentItem, Decision
from resolution.normalise import normalise
from resolution.policy import DecisionPolicy

STREAM_CHOICES = ("all", "split")


def split_ids(ds: Dataset, split: str) -> set[str]:
    assert ds.truth is not None
    return {
        item.content_id
        for item in ds.items
        if item.content_id in ds.truth and in_split(cluster_portion(cluster_key(ds.truth[item.content_id])), split)
    }


def _mean_prf(runs: list[dict[str, Any]], key: str) -> dict[str, float]:
    return {m: float(np.mean([r[key][m] for r in runs])) for m in ("precision", "recall", "f1")}


async def evaluate_clusters(
    ds: Dataset,
    split: str,
    offline: OfflineResolver,
    shuffles: int = 3,
    progress: bool = True,
    at_once: bool = True,
    stream: str = "all",
    repeat: int = 1,
) -> EvaluationResult:
    """``repeat`` > 1: the first order is streamed that many times in all (fresh state each time)
    and the decisions and final clusters that differ from the first run are counted."""
    if stream not in STREAM_CHOICES:
        raise ValueError(f"stream must be one of {STREAM_CHOICES}, not {stream!r}")
    assert ds.truth is not None
    truth = ds.truth
    scored = split_ids(ds, split)
    if not scored:
        raise ValueError(f"{ds.name}: no records in split {split!r}")
    streamed: list[ContentItem] = [
        i for i in ds.items if i.content_id in truth and (stream == "all" or i.content_id in scored)
    ]
    ids = [i.content_id for i in streamed if i.content_id in scored]
    with_work = any(truth[cid].work_id for cid in ids)
    norms = {item.content_id: normalise(item) for item in streamed}
    offline.encoder.prefill([n.embed_text for n in norms.values()], progress=progress)
    runs: list[dict[str, Any]] = []
    details: EvaluationResult | None = None
    repeats: list[StreamOutcome] = []
    for seed in range(shuffles):
        order = seeded_order(streamed, seed)
        async with offline.fresh() as (resolver, store):
            outcome = await stream_items(
                order, resolver, store, offline.batch_size, progress, label=f"order {seed + 1}/{shuffles}"
            )
        runs.append({"seed": seed, **stream_quality(outcome, truth, with_work, scored)})
        if seed == 0:
            repeats.append(outcome)
            for run_no in range(1, repeat):
                async with offline.fresh() as (resolver, store):
                    repeats.append(
                        await stream_items(
                            order, resolver, store, offline.batch_size, progress, label=f"order 1 again ({run_no})"
                        )
                    )
        if details is None:
            details = stream_details(outcome, truth, norms, scored)
            details.drift_observations = [decision_signals(d) for d in outcome.decisions.values()]
    assert details is not None
    entity_key = "work_pairwise" if with_work and not has_entity_pairs(ids, truth) else "pairwise"
    f1s = [r[entity_key]["f1"] for r in runs]
    metrics: dict[str, Any] = {
        "dataset": ds.name,
        "kind": "clusters",
        "split": split,
        "stream": stream,
        "streamed": len(streamed),
        "records": len(ids),
        "entities": len({truth[cid].entity_id for cid in ids}),
        "model": offline.scorer.model_version,
        "text_model": offline.encoder.model_version,
        "resolver": offline.description,
        "thresholds": {"merge": offline.thresholds.merge, "link": offline.thresholds.link},
        "batch_size": offline.batch_size,
        "pairwise": _mean_prf(runs, "pairwise"),
        "bcubed": _mean_prf(runs, "bcubed"),
        "shuffles": [
            {
                "seed": r["seed"],
                "f1": r["pairwise"]["f1"],
                "precision": r["pairwise"]["precision"],
                "recall": r["pairwise"]["recall"],
                "bcubed_f1": r["bcubed"]["f1"],
                **({"work_f1": r["work_pairwise"]["f1"]} if with_work else {}),
                "candidate_recall": r["candidate_recall"],
                "events_per_s": r["events_per_s"],
            }
            for r in runs
        ],
        "spread": {"measure": f"{entity_key}.f1", "max_minus_min": float(max(f1s) - min(f1s))},
        "candidate_recall": float(np.mean([r["candidate_recall"] for r in runs])),
        "events_per_s": float(np.mean([r["events_per_s"] for r in runs])),
    }
    if with_work:
        metrics["work_pairwise"] = _mean_prf(runs, "work_pairwise")
        metrics["work_candidate_recall"] = float(np.mean([r["work_candidate_recall"] for r in runs]))
    if at_once:
        metrics["at_once"] = await _at_once(ids, norms, truth, offline, with_work, progress)
    if repeat > 1:
        metrics["determinism"] = determinism(repeats)
    details.metrics = metrics
    return details


def _said(d: Decision) -> tuple[Any, ...]:
    """What a decision says: action, relation, entity, linked entity, confidence to 6 places (the
    order of application, ``sequence``, is left out: it is stamped from the clock and only orders)."""
    return (*_outcome(d), round(d.confidence, 6))


def _outcome(d: Decision) -> tuple[Any, ...]:
    return (d.action.value, d.relation.value if d.relation else None, d.entity_id, d.related_entity_id)


def cluster_members(assigned: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """Each record's final entity (or work) as the sorted ids of its members."""
    members: dict[str, list[str]] = {}
    for cid, group_id in assigned.items():
        members.setdefault(group_id, []).append(cid)
    return {cid: tuple(sorted(group)) for group in members.values() for cid in group}


def determinism(outcomes: list[StreamOutcome]) -> dict[str, int]:
    """Records whose decision (whole, or its outcome: action, relation, entity, linked entity),
    final entity's members or final work's members differ between any run and the first."""
    first, rest = outcomes[0], outcomes[1:]

    def differing(value: Any) -> int:
        return sum(1 for c in first.order if any(value(o, c) != value(first, c) for o in rest))

    def said(o: StreamOutcome, c: str) -> Any:
        return _said(o.decisions[c]) if c in o.decisions else None

    def outcome(o: StreamOutcome, c: str) -> Any:
        return _outcome(o.decisions[c]) if c in o.decisions else None

    entities = {id(o): cluster_members(o.entity_of) for o in outcomes}
    works = {id(o): cluster_members(o.work_of) for o in outcomes}
    return {
        "runs": len(outcomes),
        "records": len(first.order),
        "decisions_differing": differing(said),
        "outcomes_differing": differing(outcome),
        "clusters_differing": differing(lambda o, c: entities[id(o)].get(c)),
        "works_differing": differing(lambda o, c: works[id(o)].get(c)),
    }


async def _at_once(
    ids: list[str],
    norms: dict[str, Any],
    truth: dict[str, Any],
    offline: OfflineResolver,
    with_work: bool,
    progress: bool,
) -> dict[str, Any]:
    vectors = offline.encoder.vectors([norms[c].embed_text for c in ids])
    started = time.perf_counter()
    entity_of, work_of = await resolve_at_once(
        [norms[c] for c in ids], vectors, offline.scorer, offline.thresholds, offline.candidates_k, progress
    )
    seconds = time.perf_counter() - started
    entity_truth = {c: truth[c].entity_id for c in ids}
    out: dict[str, Any] = {
        "pairwise": prf_dict(pairwise_prf(entity_of, entity_truth)),
        "bcubed": prf_dict(bcubed_prf(entity_of, entity_truth)),
        "events_per_s": len(ids) / seconds if seconds else 0.0,
    }
    if with_work:
        work_truth = {c: truth[c].work_id or truth[c].entity_id for c in ids}
        out["work_pairwise"] = prf_dict(pairwise_prf(work_of, work_truth))
    return out


async def clustered_pairs(
    ds: Dataset,
    examples: list[PairExample],
    every: list[PairExample],
    split: str,
    offline: OfflineResolver,
    progress: bool,
) -> dict[str, Any]:
    """The pairs judged from a clustering, as ``--through-stack`` judges them: every record of the
    set streamed through the resolver in the order the stack streams (the first seeded order),
    a video and its partner "together" when both end in one work. Beside it, why each positive
    pair left apart was missed (``pair_misses``)."""
    order = seeded_order(ds.items, 0)
    async with offline.fresh() as (resolver, store):
        outcome = await stream_items(order, resolver, store, offline.batch_size, progress, label="clustered")
    out = clustered_pair_prf(examples, outcome.entity_of, outcome.work_of)
    out["missed"] = reason_counts(missed_positives(examples, outcome, offline.thresholds))
    out["events_per_s"] = len(order) / outcome.seconds if outcome.seconds else 0.0
    if split in ("valid", "test"):  # the tune pairs are training pairs: none is leak-free
        out["leak_free"] = clustered_pair_prf(leak_free(examples, every), outcome.entity_of, outcome.work_of)
    return out


async def evaluate_pairs(
    ds: Dataset, split: str, offline: OfflineResolver, progress: bool = True, clustered: bool = True
) -> EvaluationResult:
    """Each pair scored by the matcher alone; with ``clustered``, also judged from the clustering
    of every record streamed (the stack's measure: candidates, link decisions, corrections)."""
    offline.encoder.prefill([normalise(i).embed_text for i in ds.items], progress=progress)
    every = pair_set_examples(ds, offline.encoder)
    examples = [e for e in every if in_split(e.portion, split)]
    if not examples:
        raise ValueError(f"{ds.name}: no pairs in split {split!r}")
    started = time.perf_counter()
    scores = await offline.scorer.score([e.pair for e in examples])
    seconds = time.perf_counter() - started
    policy = DecisionPolicy(offline.thresholds)
    result = pair_details(examples, scores, policy)
    result.metrics = {
        "dataset": ds.name,
        "kind": "pairs",
        "split": split,
        "model": offline.scorer.model_version,
        "text_model": offline.encoder.model_version,
        "thresholds": {"merge": offline.thresholds.merge, "link": offline.thresholds.link},
        **pair_prf(examples, scores, policy),
        "events_per_s": len(examples) / seconds if seconds else 0.0,
    }
    if split in ("valid", "test"):  # the tune pairs are training pairs: none is leak-free
        free = set(map(id, leak_free(examples, every)))
        kept = [(e, s) for e, s in zip(examples, scores, strict=True) if id(e) in free]
        result.metrics["leak_free"] = pair_prf([e for e, _ in kept], [s for _, s in kept], policy)
    if clustered:
        result.metrics["clustered"] = await clustered_pairs(ds, examples, every, split, offline, progress)
    return result


async def evaluate_dataset(
    ds: Dataset,
    split: str,
    offline: OfflineResolver,
    shuffles: int = 3,
    progress: bool = True,
    stream: str = "all",
    repeat: int = 1,
) -> list[EvaluationResult]:
    if ds.pairs is not None:
        return [await evaluate_pairs(ds, split, offline, progress)]
    if ds.truth is not None:
        return [await evaluate_clusters(ds, split, offline, shuffles, progress=progress, stream=stream, repeat=repeat)]
    raise ValueError(f"{ds.path}: neither pairs.csv nor truth.csv")


def evaluate_command(
    dataset_dir: Path,
    split: str,
    offlines: list[OfflineResolver],
    shuffles: int = 3,
    stream: str = "all",
    on_result: Callable[[EvaluationResult], None] | None = None,
    repeat: int = 1,
) -> list[EvaluationResult]:
    """What ``resolver evaluate`` runs for one dataset folder, once per resolver (exact, Milvus)."""
    import asyncio

    from evaluation.datasets import load_dataset

    ds = load_dataset(Path(dataset_dir))
    results: list[EvaluationResult] = []
    for offline in offlines:
        for result in asyncio.run(evaluate_dataset(ds, split, offline, shuffles, stream=stream, repeat=repeat)):
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results

"""``resolver evaluate``: replays a labelled dataset through the worker's resolution code, offline.

Cluster sets (``truth.csv``): the records of one split are streamed through ``BatchResolver``
(the class the Faust worker runs per batch) in batches of the worker's size, in N seeded
shuffled orders, with the in-process text encoder (embeddings cached on disk), an exact
in-memory vector index and a dict-backed entity store. Reported per order and averaged:
pairwise and B-cubed P/R/F1 over entities, work-level pairwise P/R/F1 where ``work_id`` exists
(two records of one work count as found when merged or linked), candidate recall (an earlier
true match was among the candidates) and events per second (embeddings excluded: they are
cached). For comparison, "at once" resolves the whole split as one batch job: every record's
candidates come from the full split, every pair is scored by the same matcher, each record joins
its most probable candidate the policy accepts, and clusters are the connected components.

Pair sets (``pairs.csv``): every pair of the split is scored by the matcher and classified by the
policy (``DecisionPolicy.classify``); P/R/F1 of "positive" at the policy's thresholds.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from evaluation.datasets import Dataset, TruthRow
from evaluation.embedding_cache import CachedTextEncoder
from evaluation.metrics import PRF, bcubed_prf, pair_classification_prf, pairwise_prf
from evaluation.pair_examples import PairExample, cluster_key, pair_set_examples, positive_relation
from evaluation.splits import cluster_portion, in_split
from inference.text_encoder import TEXT_DIM
from resolution.candidates import CandidateFinder, InMemoryVectorIndex
from resolution.drift import decision_signals
from resolution.entities import EntityStore
from resolution.matcher import PairInput, PairScorer
from resolution.media_evidence import MediaReader
from resolution.model import Action, ContentItem, Decision
from resolution.normalise import NormalisedItem, normalise
from resolution.policy import DecisionPolicy, Thresholds
from resolution.resolver import BatchResolver

WORST_ERRORS = 25


@dataclass(frozen=True)
class ResolverConfig:
    """The worker's settings that shape resolution (from ``WorkerSettings``)."""

    batch_size: int = 64
    candidates_k: int = 10
    recent_window_s: float = 10.0
    title_candidates_cap: int = 5


@dataclass
class EvaluationResult:
    metrics: dict[str, Any]
    # For the HTML report: (label, score) of scored pairs, confusion, worst errors.
    labels: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    score_name: str = "p(same)"
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    # Drift signals (resolution.drift) of the first streamed order's decisions.
    drift_observations: list[dict[str, float]] = field(default_factory=list)


def prf_dict(prf: PRF) -> dict[str, Any]:
    out: dict[str, Any] = {"precision": prf.precision, "recall": prf.recall, "f1": prf.f1}
    for name in ("tp", "fp", "fn"):
        value = getattr(prf, name)
        if value is not None:
            out[name] = value
    return out


def _mean_prf(runs: list[dict[str, Any]], key: str) -> dict[str, float]:
    return {m: float(np.mean([r[key][m] for r in runs])) for m in ("precision", "recall", "f1")}


# --------------------------------------------------------------------------------------------
# Cluster sets: streaming
# --------------------------------------------------------------------------------------------


@dataclass
class StreamOutcome:
    order: list[str]
    decisions: dict[str, Decision]
    entity_of: dict[str, str]
    work_of: dict[str, str]
    seconds: float


async def stream_through_resolver(
    items: list[ContentItem],
    encoder: CachedTextEncoder,
    scorer: PairScorer,
    thresholds: Thresholds,
    config: ResolverConfig,
    progress: bool = True,
    label: str = "stream",
    media: MediaReader | None = None,
) -> StreamOutcome:
    """Resolve ``items`` in this order, in worker-sized batches, with fresh offline state."""
    table: dict[str, Any] = {}
    store = EntityStore(table)
    finder = CandidateFinder(
        InMemoryVectorIndex(TEXT_DIM),
        config.candidates_k,
        config.recent_window_s,
        TEXT_DIM,
        config.title_candidates_cap,
    )
    resolver = BatchResolver(
        encoder, finder, scorer, DecisionPolicy(thresholds), store, max_candidates=config.candidates_k, media=media
    )
    decisions: dict[str, Decision] = {}
    started = time.perf_counter()
    with tqdm(total=len(items), desc=label, unit="rec", disable=not progress, leave=False) as bar:
        for start in range(0, len(items), config.batch_size):
            batch = items[start : start + config.batch_size]
            result = await resolver.resolve(batch)
            for decision in result.decisions:
                decisions[decision.content_id] = decision
            bar.update(len(batch))
    seconds = time.perf_counter() - started
    entity_of = {cid: store.entity_of(cid) or cid for cid in decisions}
    work_of = {cid: store.work_of(entity) or entity for cid, entity in entity_of.items()}
    return StreamOutcome([i.content_id for i in items], decisions, entity_of, work_of, seconds)


def _expected_action(seen_entities: set[str], seen_works: set[str], row: TruthRow) -> str:
    if row.entity_id in seen_entities:
        return Action.MERGE.value
    if row.work_id is not None and row.work_id in seen_works:
        return Action.LINK.value
    return Action.NEW.value


def _describe(norm: NormalisedItem | dict[str, Any]) -> str:
    meta = norm.to_meta() if isinstance(norm, NormalisedItem) else norm
    artists = ", ".join(meta.get("artists") or [])
    tags = ",".join(meta.get("tags") or [])
    return f"{meta.get('title_core', '')} | {artists}" + (f" [{tags}]" if tags else "")


def _top_signals(signals: dict[str, float], n: int = 8) -> dict[str, float]:
    keys = ("text_cosine", "title_ratio", "title_token_set", "artist_token_set", "artist_overlap", "release_ratio")
    keys += ("duration_diff_s", "year_diff", "isrc_equal", "version_tags_differ", "one_is_video", "same_source")
    return {k: round(signals[k], 3) for k in keys if k in signals}


def stream_quality(outcome: StreamOutcome, truth: dict[str, TruthRow], with_work: bool) -> dict[str, Any]:
    entity_truth = {cid: truth[cid].entity_id for cid in outcome.order}
    metrics: dict[str, Any] = {
        "pairwise": prf_dict(pairwise_prf(outcome.entity_of, entity_truth)),
        "bcubed": prf_dict(bcubed_prf(outcome.entity_of, entity_truth)),
    }
    if with_work:
        work_truth = {cid: truth[cid].work_id or truth[cid].entity_id for cid in outcome.order}
        metrics["work_pairwise"] = prf_dict(pairwise_prf(outcome.work_of, work_truth))
    # Candidate recall: of the records whose true match arrived earlier, how many had one among
    # their candidates (entity level; work level where works exist).
    seen_entities: set[str] = set()
    seen_works: set[str] = set()
    hits = Counter[str]()
    for cid in outcome.order:
        row = truth[cid]
        candidates = [c.candidate.content_id for c in outcome.decisions[cid].candidates]
        if row.entity_id in seen_entities:
            hits["entity_due"] += 1
            hits["entity_found"] += any(truth[c].entity_id == row.entity_id for c in candidates if c in truth)
        if row.work_id is not None and row.work_id in seen_works:
            hits["work_due"] += 1
            hits["work_found"] += any(truth[c].work_id == row.work_id for c in candidates if c in truth)
        seen_entities.add(row.entity_id)
        if row.work_id is not None:
            seen_works.add(row.work_id)
    metrics["candidate_recall"] = hits["entity_found"] / hits["entity_due"] if hits["entity_due"] else 1.0
    if with_work:
        metrics["work_candidate_recall"] = hits["work_found"] / hits["work_due"] if hits["work_due"] else 1.0
    metrics["events_per_s"] = len(outcome.order) / outcome.seconds if outcome.seconds else 0.0
    return metrics


def stream_details(
    outcome: StreamOutcome, truth: dict[str, TruthRow], norms: dict[str, NormalisedItem]
) -> EvaluationResult:
    """Scored pairs, the confusion per decision type and the worst errors of one order."""
    result = EvaluationResult(metrics={})
    confusion: dict[str, Counter[str]] = {a: Counter() for a in ("MERGE", "LINK", "NEW")}
    seen_entities: set[str] = set()
    seen_works: set[str] = set()
    errors: list[tuple[float, dict[str, Any]]] = []
    for cid in outcome.order:
        row = truth[cid]
        decision = outcome.decisions[cid]
        expected = _expected_action(seen_entities, seen_works, row)
        confusion[expected][decision.action.value] += 1
        for c in decision.candidates:
            other = truth.get(c.candidate.content_id)
            if other is not None:
                result.labels.append(int(other.entity_id == row.entity_id))
                result.scores.append(c.probabilities["same"])
        best = max(decision.candidates, key=lambda c: c.probabilities["same"], default=None)
        true_cands = [c for c in decision.candidates if truth[c.candidate.content_id].entity_id == row.entity_id]
        wrong_merge = decision.action is Action.MERGE and best is not None and best not in true_cands
        missed = expected == Action.MERGE.value and decision.action is not Action.MERGE
        if wrong_merge or missed:
            shown = best if wrong_merge else max(true_cands, key=lambda c: c.probabilities["same"], default=None)
            errors.append(
                (
                    decision.confidence if wrong_merge else 1.0 - (shown.probabilities["same"] if shown else 0.0),
                    {
                        "kind": "false merge" if wrong_merge else "missed merge",
                        "record": f"{cid}: {_describe(norms[cid])}",
                        "candidate": f"{shown.candidate.content_id}: {_describe(shown.candidate.meta)}"
                        if shown
                        else "(the true match was not among the candidates)",
                        "action": decision.action.value,
                        "reason": decision.reason,
                        "probabilities": {k: round(v, 3) for k, v in shown.probabilities.items()} if shown else {},
                        "signals": _top_signals(shown.signals) if shown else {},
                    },
                )
            )
        seen_entities.add(row.entity_id)
        if row.work_id is not None:
            seen_works.add(row.work_id)
    result.confusion = {k: dict(v) for k, v in confusion.items()}
    result.errors = [e for _s, e in sorted(errors, key=lambda t: -t[0])[:WORST_ERRORS]]
    return result


# --------------------------------------------------------------------------------------------
# Cluster sets: all at once
# --------------------------------------------------------------------------------------------


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


async def resolve_at_once(
    norms: list[NormalisedItem],
    vectors: np.ndarray,
    scorer: PairScorer,
    thresholds: Thresholds,
    k: int,
    progress: bool = True,
) -> tuple[dict[str, str], dict[str, str]]:
    """Batch resolution of all records together; (record -> entity, record -> work)."""
    n = len(norms)
    pairs: set[tuple[int, int]] = set()
    for start in range(0, n, 2048):
        sims = vectors[start : start + 2048] @ vectors.T
        kk = min(k + 1, n)
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        for row, neighbours in enumerate(top):
            pairs.update((min(start + row, int(j)), max(start + row, int(j))) for j in neighbours if j != start + row)
    by_key: dict[str, list[int]] = {}
    for i, norm in enumerate(norms):
        by_key.setdefault(norm.title_key, []).append(i)
        if norm.isrc:
            by_key.setdefault("isrc:" + norm.isrc, []).append(i)
    for group in by_key.values():
        pairs.update((a, b) for x, a in enumerate(group) for b in group[x + 1 :])
    ordered = sorted(pairs)
    policy = DecisionPolicy(thresholds)
    best_same: dict[int, tuple[float, int]] = {}
    best_link: dict[int, tuple[float, int]] = {}
    chunk = 4096
    with tqdm(total=len(ordered), desc="at once", unit="pair", disable=not progress, leave=False) as bar:
        for start in range(0, len(ordered), chunk):
            part = ordered[start : start + chunk]
            inputs = [PairInput(norms[i], norms[j], float(vectors[i] @ vectors[j])) for i, j in part]
            for (i, j), score in zip(part, await scorer.score(inputs), strict=True):
                relation = policy.classify(score.probabilities)
                target = best_same if relation == "same" else best_link if relation != "none" else None
                if target is None:
                    continue
                p = score.probabilities[relation]
                for a, b in ((i, j), (j, i)):
                    if p > target.get(a, (-1.0, -1))[0]:
                        target[a] = (p, b)
            bar.update(len(part))
    entities = _UnionFind(n)
    for a, (_p, b) in best_same.items():
        entities.union(a, b)
    works = _UnionFind(n)
    for edges in (best_same, best_link):
        for a, (_p, b) in edges.items():
            works.union(a, b)
    entity_of = {norm.content_id: f"e{entities.find(i)}" for i, norm in enumerate(norms)}
    work_of = {norm.content_id: f"w{works.find(i)}" for i, norm in enumerate(norms)}
    return entity_of, work_of


def split_items(ds: Dataset, split: str) -> list[ContentItem]:
    assert ds.truth is not None
    return [
        item
        for item in ds.items
        if item.content_id in ds.truth and in_split(cluster_portion(cluster_key(ds.truth[item.content_id])), split)
    ]


async def evaluate_clusters(
    ds: Dataset,
    split: str,
    encoder: CachedTextEncoder,
    scorer: PairScorer,
    thresholds: Thresholds,
    config: ResolverConfig,
    shuffles: int = 3,
    progress: bool = True,
    at_once: bool = True,
    media: MediaReader | None = None,
) -> EvaluationResult:
    assert ds.truth is not None
    truth = ds.truth
    items = split_items(ds, split)
    if not items:
        raise ValueError(f"{ds.name}: no records in split {split!r}")
    with_work = any(truth[i.content_id].work_id for i in items)
    norms = {item.content_id: normalise(item) for item in items}
    encoder.prefill([n.embed_text for n in norms.values()], progress=progress)
    runs: list[dict[str, Any]] = []
    details: EvaluationResult | None = None
    for seed in range(shuffles):
        order = list(items)
        random.Random(seed).shuffle(order)
        outcome = await stream_through_resolver(
            order, encoder, scorer, thresholds, config, progress, label=f"order {seed + 1}/{shuffles}", media=media
        )
        runs.append({"seed": seed, **stream_quality(outcome, truth, with_work)})
        if details is None:
            details = stream_details(outcome, truth, norms)
            details.drift_observations = [decision_signals(d) for d in outcome.decisions.values()]
    assert details is not None
    entity_key = "work_pairwise" if with_work and not _has_entity_pairs(items, truth) else "pairwise"
    f1s = [r[entity_key]["f1"] for r in runs]
    metrics: dict[str, Any] = {
        "dataset": ds.name,
        "kind": "clusters",
        "split": split,
        "records": len(items),
        "entities": len({truth[i.content_id].entity_id for i in items}),
        "model": scorer.model_version,
        "thresholds": {"merge": thresholds.merge, "link": thresholds.link},
        "batch_size": config.batch_size,
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
        ids = [i.content_id for i in items]
        vectors = encoder.vectors([norms[c].embed_text for c in ids])
        started = time.perf_counter()
        entity_of, work_of = await resolve_at_once(
            [norms[c] for c in ids], vectors, scorer, thresholds, config.candidates_k, progress
        )
        seconds = time.perf_counter() - started
        entity_truth = {c: truth[c].entity_id for c in ids}
        metrics["at_once"] = {
            "pairwise": prf_dict(pairwise_prf(entity_of, entity_truth)),
            "bcubed": prf_dict(bcubed_prf(entity_of, entity_truth)),
            "events_per_s": len(ids) / seconds if seconds else 0.0,
        }
        if with_work:
            work_truth = {c: truth[c].work_id or truth[c].entity_id for c in ids}
            metrics["at_once"]["work_pairwise"] = prf_dict(pairwise_prf(work_of, work_truth))
    details.metrics = metrics
    return details


def _has_entity_pairs(items: list[ContentItem], truth: dict[str, TruthRow]) -> bool:
    counts = Counter(truth[i.content_id].entity_id for i in items)
    return any(n > 1 for n in counts.values())


# --------------------------------------------------------------------------------------------
# Pair sets
# --------------------------------------------------------------------------------------------


def pair_positive(example: PairExample, policy: DecisionPolicy, probabilities: dict[str, float]) -> bool:
    """A pair is predicted positive when the policy gives it the relation its labels denote:
    ``same`` for two recordings; any relation for a video against a work (it performs it)."""
    relation = policy.classify(probabilities)
    if positive_relation(example.left, example.right) == "same":
        return relation == "same"
    return relation != "none"


async def evaluate_pairs(
    ds: Dataset,
    split: str,
    encoder: CachedTextEncoder,
    scorer: PairScorer,
    thresholds: Thresholds,
    progress: bool = True,
) -> EvaluationResult:
    encoder.prefill([normalise(i).embed_text for i in ds.items], progress=progress)
    examples = [e for e in pair_set_examples(ds, encoder) if in_split(e.portion, split)]
    if not examples:
        raise ValueError(f"{ds.name}: no pairs in split {split!r}")
    started = time.perf_counter()
    scores = await scorer.score([e.pair for e in examples])
    seconds = time.perf_counter() - started
    policy = DecisionPolicy(thresholds)
    result = EvaluationResult(metrics={}, score_name="p(positive relation)")
    predictions: list[float] = []
    confusion: dict[str, Counter[str]] = {}
    errors: list[tuple[float, dict[str, Any]]] = []
    for e, s in zip(examples, scores, strict=True):
        label = e.relation != "none"
        predicted = pair_positive(e, policy, s.probabilities)
        same_type = positive_relation(e.left, e.right) == "same"
        score = s.probabilities["same"] if same_type else 1.0 - s.probabilities["none"]
        result.labels.append(int(label))
        result.scores.append(score)
        predictions.append(1.0 if predicted else 0.0)
        confusion.setdefault(e.relation, Counter())[policy.classify(s.probabilities)] += 1
        if label != predicted:
            errors.append(
                (
                    abs(score - 0.5),
                    {
                        "kind": "false positive" if predicted else "false negative",
                        "record": _describe(e.left),
                        "candidate": _describe(e.right),
                        "action": policy.classify(s.probabilities),
                        "reason": f"label {e.relation}",
                        "probabilities": {k: round(v, 3) for k, v in s.probabilities.items()},
                        "signals": _top_signals(s.signals),
                    },
                )
            )
    prf = pair_classification_prf(result.labels, predictions, 0.5)
    result.confusion = {k: dict(v) for k, v in confusion.items()}
    result.errors = [e for _s, e in sorted(errors, key=lambda t: -t[0])[:WORST_ERRORS]]
    result.metrics = {
        "dataset": ds.name,
        "kind": "pairs",
        "split": split,
        "pairs": len(examples),
        "positives": sum(result.labels),
        "model": scorer.model_version,
        "thresholds": {"merge": thresholds.merge, "link": thresholds.link},
        "pairwise": prf_dict(prf),
        "events_per_s": len(examples) / seconds if seconds else 0.0,
    }
    return result


async def evaluate_dataset(
    ds: Dataset,
    split: str,
    encoder: CachedTextEncoder,
    scorer: PairScorer,
    thresholds: Thresholds,
    config: ResolverConfig,
    shuffles: int = 3,
    progress: bool = True,
    media: MediaReader | None = None,
) -> list[EvaluationResult]:
    results = []
    if ds.pairs is not None:
        results.append(await evaluate_pairs(ds, split, encoder, scorer, thresholds, progress))
    if ds.truth is not None and ds.pairs is None:
        results.append(
            await evaluate_clusters(
                ds, split, encoder, scorer, thresholds, config, shuffles, progress=progress, media=media
            )
        )
    if not results:
        raise ValueError(f"{ds.path}: neither pairs.csv nor truth.csv")
    return results


def summary_lines(metrics: dict[str, Any]) -> list[str]:
    """A short human-readable summary of one dataset's metrics (fractions, 4 decimals)."""

    def prf(d: dict[str, Any]) -> str:
        return f"P {d['precision']:.4f} R {d['recall']:.4f} F1 {d['f1']:.4f}"

    head = f"{metrics['dataset']} [{metrics['kind']}, split={metrics['split']}, model={metrics['model']}]"
    lines = [head]
    if metrics["kind"] == "pairs":
        lines.append(f"  pairs {metrics['pairs']} (positives {metrics['positives']}): {prf(metrics['pairwise'])}")
        return lines
    lines.append(f"  records {metrics['records']}, entities {metrics['entities']}, orders {len(metrics['shuffles'])}")
    lines.append(f"  pairwise      {prf(metrics['pairwise'])}")
    lines.append(f"  b-cubed       {prf(metrics['bcubed'])}")
    if "work_pairwise" in metrics:
        lines.append(f"  work pairwise {prf(metrics['work_pairwise'])}")
    spread = metrics["spread"]
    key = "work_f1" if spread["measure"].startswith("work") else "f1"
    per_order = ", ".join(f"{r[key]:.4f}" for r in metrics["shuffles"])
    lines.append(f"  per order {spread['measure']} [{per_order}]; spread (max - min) {spread['max_minus_min']:.4f}")
    recall = f"  candidate recall {metrics['candidate_recall']:.4f}"
    if "work_candidate_recall" in metrics:
        recall += f" (work {metrics['work_candidate_recall']:.4f})"
    lines.append(recall + f"; {metrics['events_per_s']:.0f} events/s (embeddings cached)")
    if "at_once" in metrics:
        once = metrics["at_once"]
        line = f"  at once: pairwise {prf(once['pairwise'])}; b-cubed F1 {once['bcubed']['f1']:.4f}"
        if "work_pairwise" in once:
            line += f"; work F1 {once['work_pairwise']['f1']:.4f}"
        lines.append(line)
    return lines


def evaluate_command(
    dataset_dir: Path,
    split: str,
    scorer: PairScorer,
    thresholds: Thresholds,
    config: ResolverConfig,
    cache_dir: Path,
    shuffles: int = 3,
    modalities: frozenset[str] = frozenset({"audio", "image"}),
) -> list[EvaluationResult]:
    """What ``resolver evaluate`` runs for one dataset folder. Records that carry ``audio_ref`` /
    ``image_ref`` are resolved with the media evidence of ``modalities`` (empty: text only)."""
    import asyncio

    from evaluation.datasets import load_dataset
    from evaluation.embedding_cache import minilm_cache

    ds = load_dataset(Path(dataset_dir))
    encoder = minilm_cache(cache_dir)
    media = None
    if modalities and any(i.audio_ref or i.image_ref for i in ds.items):
        from media.reader import MediaEvidenceReader

        media = MediaEvidenceReader(modalities=modalities)
    return asyncio.run(evaluate_dataset(ds, split, encoder, scorer, thresholds, config, shuffles, media=media))

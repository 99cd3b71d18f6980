"""Scoring one streamed order of a cluster set against its truth: pure functions of the outcome.

Only the scored records count (the chosen split's); the others were streamed as the look-alikes
a catalogue holds, and their own clustering is not judged. Because splits follow the work (or
entity), every true match of a scored record is itself scored.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from evaluation.datasets import TruthRow
from evaluation.metrics import PRF, bcubed_prf, pairwise_prf
from evaluation.streaming import StreamOutcome
from resolution.model import Action
from resolution.normalise import NormalisedItem

WORST_ERRORS = 25


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


def expected_action(seen_entities: set[str], seen_works: set[str], row: TruthRow) -> str:
    if row.entity_id in seen_entities:
        return Action.MERGE.value
    if row.work_id is not None and row.work_id in seen_works:
        return Action.LINK.value
    return Action.NEW.value


def describe(norm: NormalisedItem | dict[str, Any]) -> str:
    meta = norm.to_meta() if isinstance(norm, NormalisedItem) else norm
    artists = ", ".join(meta.get("artists") or [])
    tags = ",".join(meta.get("tags") or [])
    return f"{meta.get('title_core', '')} | {artists}" + (f" [{tags}]" if tags else "")


def top_signals(signals: dict[str, float]) -> dict[str, float]:
    keys: tuple[str, ...] = (
        "text_cosine",
        "title_ratio",
        "title_token_set",
        "artist_token_set",
        "artist_overlap",
        "release_ratio",
    )
    keys += (
        "duration_diff_s",
        "year_diff",
        "isrc_equal",
        "version_tags_differ",
        "one_is_video",
        "same_source",
        "title_alternate_shared",
    )
    return {k: round(signals[k], 3) for k in keys if k in signals}


def stream_quality(
    outcome: StreamOutcome, truth: dict[str, TruthRow], with_work: bool, scored: set[str]
) -> dict[str, Any]:
    ids = [cid for cid in outcome.order if cid in scored]
    entity_truth = {cid: truth[cid].entity_id for cid in ids}
    metrics: dict[str, Any] = {
        "pairwise": prf_dict(pairwise_prf(outcome.entity_of, entity_truth)),
        "bcubed": prf_dict(bcubed_prf(outcome.entity_of, entity_truth)),
    }
    if with_work:
        work_truth = {cid: truth[cid].work_id or truth[cid].entity_id for cid in ids}
        metrics["work_pairwise"] = prf_dict(pairwise_prf(outcome.work_of, work_truth))
    # Candidate recall: of the scored records whose true match arrived earlier, how many had one
    # among their candidates (entity level; work level where works exist).
    seen_entities: set[str] = set()
    seen_works: set[str] = set()
    hits = Counter[str]()
    for cid in ids:
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
    outcome: StreamOutcome, truth: dict[str, TruthRow], norms: dict[str, NormalisedItem], scored: set[str]
) -> EvaluationResult:
    """Scored pairs, the confusion per decision type and the worst errors of one order."""
    result = EvaluationResult(metrics={})
    confusion: dict[str, Counter[str]] = {a: Counter() for a in ("MERGE", "LINK", "NEW")}
    seen_entities: set[str] = set()
    seen_works: set[str] = set()
    errors: list[tuple[float, dict[str, Any]]] = []
    for cid in outcome.order:
        if cid not in scored:
            continue
        row = truth[cid]
        decision = outcome.decisions[cid]
        expected = expected_action(seen_entities, seen_works, row)
        confusion[expected][decision.action.value] += 1
        for c in decision.candidates:
            other = truth.get(c.candidate.content_id)
            if other is not None:
                result.labels.append(int(other.entity_id == row.entity_id))
                result.scores.append(c.probabilities["same"])
        best = max(decision.candidates, key=lambda c: c.probabilities["same"], default=None)
        true_cands = [
            c
            for c in decision.candidates
            if c.candidate.content_id in truth and truth[c.candidate.content_id].entity_id == row.entity_id
        ]
        wrong_merge = decision.action is Action.MERGE and best is not None and best not in true_cands
        missed = expected == Action.MERGE.value and decision.action is not Action.MERGE
        if wrong_merge or missed:
            shown = best if wrong_merge else max(true_cands, key=lambda c: c.probabilities["same"], default=None)
            errors.append(
                (
                    decision.confidence if wrong_merge else 1.0 - (shown.probabilities["same"] if shown else 0.0),
                    {
                        "kind": "false merge" if wrong_merge else "missed merge",
                        "record": f"{cid}: {describe(norms[cid])}",
                        "candidate": f"{shown.candidate.content_id}: {describe(shown.candidate.meta)}"
                        if shown
                        else "(the true match was not among the candidates)",
                        "action": decision.action.value,
                        "reason": decision.reason,
                        "probabilities": {k: round(v, 3) for k, v in shown.probabilities.items()} if shown else {},
                        "signals": top_signals(shown.signals) if shown else {},
                    },
                )
            )
        seen_entities.add(row.entity_id)
        if row.work_id is not None:
            seen_works.add(row.work_id)
    result.confusion = {k: dict(v) for k, v in confusion.items()}
    result.errors = [e for _s, e in sorted(errors, key=lambda t: -t[0])[:WORST_ERRORS]]
    return result


def has_entity_pairs(ids: list[str], truth: dict[str, TruthRow]) -> bool:
    counts = Counter(truth[cid].entity_id for cid in ids)
    return any(n > 1 for n in counts.values())

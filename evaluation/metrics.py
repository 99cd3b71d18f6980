"""Clustering and pair-classification metrics.

Cluster metrics are computed from a contingency table (counts of records per predicted cluster x
true cluster), so they cost O(n) for n records, never O(n^2) pairs.

Conventions: a ratio with a zero denominator is 1.0 (nothing was claimed, so nothing claimed was
wrong; nothing was to be found, so nothing was missed). So predicting all singletons against a
truth with no pairs gives P = R = F1 = 1.0, and against a truth with pairs gives P = 1.0, R = 0.0.
F1 is 0.0 when precision + recall is 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PRF:
    """Precision, recall, F1 and, where the metric counts things, the counts behind them
    (pairs for pairwise metrics, items for pair classification; None for B-cubed, an average)."""

    precision: float
    recall: float
    f1: float
    tp: int | None = None
    fp: int | None = None
    fn: int | None = None


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 1.0


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _from_counts(tp: int, fp: int, fn: int) -> PRF:
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    return PRF(precision, recall, _f1(precision, recall), tp, fp, fn)


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def _contingency(
    pred: dict[str, str], truth: dict[str, str]
) -> tuple[Counter[tuple[Hashable, str]], Counter[Hashable], Counter[str]]:
    """Cell, predicted-cluster and true-cluster sizes over the records in ``truth``.

    A record missing from ``pred`` is its own singleton (the resolver said nothing about it);
    records only in ``pred`` are ignored (there is no truth to score them against).
    """
    cells: Counter[tuple[Hashable, str]] = Counter()
    for record_id, true_cluster in truth.items():
        predicted: Hashable = pred.get(record_id, ("unpredicted", record_id))
        cells[(predicted, true_cluster)] += 1
    pred_sizes: Counter[Hashable] = Counter()
    truth_sizes: Counter[str] = Counter()
    for (predicted, true_cluster), count in cells.items():
        pred_sizes[predicted] += count
        truth_sizes[true_cluster] += count
    return cells, pred_sizes, truth_sizes


def pairwise_prf(pred: dict[str, str], truth: dict[str, str]) -> PRF:
    """Pairwise precision/recall over all record pairs put together (same cluster).

    tp = pairs together in both, fp = together only in the prediction, fn = together only in truth.
    """
    cells, pred_sizes, truth_sizes = _contingency(pred, truth)
    tp = sum(_pairs(n) for n in cells.values())
    predicted_pairs = sum(_pairs(n) for n in pred_sizes.values())
    true_pairs = sum(_pairs(n) for n in truth_sizes.values())
    return _from_counts(tp, predicted_pairs - tp, true_pairs - tp)


def bcubed_prf(pred: dict[str, str], truth: dict[str, str]) -> PRF:
    """B-cubed: per record, the share of its predicted cluster that truly belongs with it
    (precision) and the share of its true cluster that was predicted with it (recall), averaged
    over records. Each record counts itself, so singletons score 1.0."""
    cells, pred_sizes, truth_sizes = _contingency(pred, truth)
    total = sum(cells.values())
    if not total:
        return PRF(1.0, 1.0, 1.0)
    # Every record in a cell of size n sees n correct co-members, hence n * n per cell.
    precision = sum(n * n / pred_sizes[p] for (p, _t), n in cells.items()) / total
    recall = sum(n * n / truth_sizes[t] for (_p, t), n in cells.items()) / total
    return PRF(precision, recall, _f1(precision, recall))


def work_clusters(entity_of: dict[str, str], work_of_entity: dict[str, str]) -> dict[str, str]:
    """Record -> work from record -> entity and entity -> work; an entity with no known work is
    a work of its own, so work-level pairwise scores are ``pairwise_prf`` on these clusters."""
    return {record: work_of_entity.get(entity, entity) for record, entity in entity_of.items()}


def _check(labels: Sequence[int], scores: Sequence[float]) -> None:
    if len(labels) != len(scores):
        raise ValueError(f"{len(labels)} labels but {len(scores)} scores")


def pair_classification_prf(labels: Sequence[int], scores: Sequence[float], threshold: float) -> PRF:
    """Pairs with ``score >= threshold`` are predicted positive; labels are 1 (match) or 0."""
    _check(labels, scores)
    tp = fp = fn = 0
    for label, score in zip(labels, scores, strict=True):
        predicted = score >= threshold
        if predicted and label:
            tp += 1
        elif predicted:
            fp += 1
        elif label:
            fn += 1
    return _from_counts(tp, fp, fn)


def precision_recall_curve(labels: Sequence[int], scores: Sequence[float]) -> list[tuple[float, float, float]]:
    """``(threshold, precision, recall)`` at every distinct score, highest threshold first (so
    recall never decreases along the list); one sort, then a running count."""
    _check(labels, scores)
    positives = sum(1 for label in labels if label)
    order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
    curve: list[tuple[float, float, float]] = []
    tp = fp = 0
    for rank, index in enumerate(order):
        if labels[index]:
            tp += 1
        else:
            fp += 1
        last_of_tie = rank + 1 == len(order) or scores[order[rank + 1]] != scores[index]
        if last_of_tie:
            curve.append((float(scores[index]), _ratio(tp, tp + fp), _ratio(tp, positives)))
    return curve


def best_f1_threshold(labels: Sequence[int], scores: Sequence[float]) -> float:
    """The score threshold with the highest F1; on a tie the higher (more precise) threshold."""
    curve = precision_recall_curve(labels, scores)
    if not curve:
        raise ValueError("no scores to choose a threshold from")
    best_threshold, best = curve[0][0], -1.0
    for threshold, precision, recall in curve:
        f1 = _f1(precision, recall)
        if f1 > best:
            best_threshold, best = threshold, f1
    return best_threshold

"""Clustering and pair metrics on hand-worked examples, plus a brute-force cross-check."""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation.metrics import (
    PRF,
    bcubed_prf,
    best_f1_threshold,
    pair_classification_prf,
    pairwise_prf,
    precision_recall_curve,
    work_clusters,
)

# truth {a,b,c},{d}; predicted {a,b},{c,d}
TRUTH = {"a": "T1", "b": "T1", "c": "T1", "d": "T2"}
PRED = {"a": "P1", "b": "P1", "c": "P2", "d": "P2"}


def _fields(prf: PRF) -> tuple[float | int | None, ...]:
    """The figures as a tuple, for ``pytest.approx`` (which compares tuples, not dataclasses)."""
    return (prf.precision, prf.recall, prf.f1, prf.tp, prf.fp, prf.fn)


def test_pairwise_hand_worked() -> None:
    # true pairs: ab ac bc (3); predicted pairs: ab cd (2)
    # tp = {ab} = 1, fp = {cd} = 1, fn = {ac, bc} = 2
    # P = 1/2, R = 1/3, F1 = 2 * (1/2)(1/3) / (1/2 + 1/3) = (1/3) / (5/6) = 2/5
    assert _fields(pairwise_prf(PRED, TRUTH)) == pytest.approx((0.5, 1 / 3, 0.4, 1, 1, 2))


def test_bcubed_hand_worked() -> None:
    # record: |pred ∩ truth| / |pred| (P), / |truth| (R)
    # a: {a,b}∩{a,b,c} = 2 -> P 2/2, R 2/3
    # b: same            -> P 1,   R 2/3
    # c: {c,d}∩{a,b,c} = 1 -> P 1/2, R 1/3
    # d: {c,d}∩{d} = 1     -> P 1/2, R 1/1
    # P = (1 + 1 + 1/2 + 1/2) / 4 = 3/4; R = (2/3 + 2/3 + 1/3 + 1) / 4 = 2/3
    # F1 = 2 * (3/4)(2/3) / (3/4 + 2/3) = 1 / (17/12) = 12/17
    result = bcubed_prf(PRED, TRUTH)
    assert (result.precision, result.recall, result.f1) == (
        pytest.approx(0.75),
        pytest.approx(2 / 3),
        pytest.approx(12 / 17),
    )
    assert (result.tp, result.fp, result.fn) == (None, None, None)


def test_everything_in_one_cluster() -> None:
    truth = {"a": "1", "b": "1", "c": "2", "d": "2"}
    pred = dict.fromkeys(truth, "all")
    # predicted pairs C(4,2) = 6, true pairs 2, tp 2: P = 2/6, R = 1, F1 = 2(1/3)/(4/3) = 1/2
    assert _fields(pairwise_prf(pred, truth)) == pytest.approx((1 / 3, 1.0, 0.5, 2, 4, 0))
    # every record: cluster of 4, 2 belong -> P = 1/2, R = 1; F1 = 2(1/2)/(3/2) = 2/3
    assert _fields(bcubed_prf(pred, truth))[:3] == pytest.approx((0.5, 1.0, 2 / 3))


def test_all_singletons_and_empty_conventions() -> None:
    truth = {"a": "1", "b": "1", "c": "2"}
    singletons = {k: k for k in truth}
    # nothing predicted together: P = 0/0 := 1.0, R = 0/1 = 0, F1 = 0
    assert pairwise_prf(singletons, truth) == PRF(1.0, 0.0, 0.0, 0, 0, 1)
    # truth without pairs and prediction without pairs: both 0/0 := 1.0
    assert pairwise_prf({"a": "x", "b": "y"}, {"a": "1", "b": "2"}) == PRF(1.0, 1.0, 1.0, 0, 0, 0)
    assert pairwise_prf({}, {}) == PRF(1.0, 1.0, 1.0, 0, 0, 0)
    assert bcubed_prf({}, {}) == PRF(1.0, 1.0, 1.0)


def test_perfect_prediction_with_other_labels() -> None:
    truth = {"a": "1", "b": "1", "c": "2"}
    assert pairwise_prf({"a": "x", "b": "x", "c": "y"}, truth) == PRF(1.0, 1.0, 1.0, 1, 0, 0)
    assert bcubed_prf({"a": "x", "b": "x", "c": "y"}, truth) == PRF(1.0, 1.0, 1.0)


def test_missing_predictions_are_singletons_and_extra_ones_ignored() -> None:
    truth = {"a": "1", "b": "1"}
    # b missing -> its own cluster; z has no truth -> ignored: tp 0, fp 0, fn 1
    assert pairwise_prf({"a": "x", "z": "x"}, truth) == PRF(1.0, 0.0, 0.0, 0, 0, 1)


def test_work_clusters() -> None:
    entity_of = {"a": "e1", "b": "e2", "c": "e3"}
    work_of_entity = {"e1": "w1", "e2": "w1"}
    works = work_clusters(entity_of, work_of_entity)
    assert works == {"a": "w1", "b": "w1", "c": "e3"}
    # work-level: truth puts a, b together; a prediction that merged a, b as one entity scores 1.0
    assert pairwise_prf(works, {"a": "W", "b": "W", "c": "V"}) == PRF(1.0, 1.0, 1.0, 1, 0, 0)


def _brute_pairwise(pred: dict[str, str], truth: dict[str, str]) -> tuple[int, int, int]:
    tp = fp = fn = 0
    for x, y in combinations(sorted(truth), 2):
        together_pred = pred[x] == pred[y]
        together_truth = truth[x] == truth[y]
        tp += together_pred and together_truth
        fp += together_pred and not together_truth
        fn += together_truth and not together_pred
    return tp, fp, fn


def _brute_bcubed(pred: dict[str, str], truth: dict[str, str]) -> tuple[float, float]:
    precision = recall = 0.0
    for x in truth:
        same_pred = {y for y in truth if pred[y] == pred[x]}
        same_truth = {y for y in truth if truth[y] == truth[x]}
        precision += len(same_pred & same_truth) / len(same_pred)
        recall += len(same_pred & same_truth) / len(same_truth)
    return precision / len(truth), recall / len(truth)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=25))
def test_counting_matches_brute_force(labels: list[tuple[int, int]]) -> None:
    pred = {f"r{i}": f"p{p}" for i, (p, _t) in enumerate(labels)}
    truth = {f"r{i}": f"t{t}" for i, (_p, t) in enumerate(labels)}
    result = pairwise_prf(pred, truth)
    assert (result.tp, result.fp, result.fn) == _brute_pairwise(pred, truth)
    bcubed = bcubed_prf(pred, truth)
    assert (bcubed.precision, bcubed.recall) == pytest.approx(_brute_bcubed(pred, truth))


def test_large_clustering_is_fast() -> None:
    # 20k records in 2k clusters: a pairwise loop would be 2e8 comparisons; counting is instant.
    truth = {f"r{i}": f"t{i // 10}" for i in range(20_000)}
    pred = {f"r{i}": f"p{i // 5}" for i in range(20_000)}
    # each true cluster of 10 -> 2 predicted clusters of 5: tp = 2000 * 2 * C(5,2) = 40000,
    # true pairs = 2000 * C(10,2) = 90000 -> fn = 50000, fp = 0
    assert _fields(pairwise_prf(pred, truth)) == pytest.approx((1.0, 4 / 9, 8 / 13, 40_000, 0, 50_000))


LABELS = [1, 1, 0, 0, 1]
SCORES = [0.9, 0.8, 0.7, 0.4, 0.3]


def test_pair_classification_prf() -> None:
    # >= 0.5 predicted positive: indices 0, 1, 2 -> tp 2 (0, 1), fp 1 (2), fn 1 (4)
    assert _fields(pair_classification_prf(LABELS, SCORES, 0.5)) == pytest.approx((2 / 3, 2 / 3, 2 / 3, 2, 1, 1))
    # the threshold is inclusive
    assert _fields(pair_classification_prf(LABELS, SCORES, 0.8)) == pytest.approx((1.0, 2 / 3, 0.8, 2, 0, 1))
    with pytest.raises(ValueError):
        pair_classification_prf([1, 0], [0.5], 0.5)


def test_precision_recall_curve() -> None:
    # 3 positives. Walking down the scores: tp/fp after each
    # 0.9: 1/0 -> P 1, R 1/3; 0.8: 2/0 -> P 1, R 2/3; 0.7: 2/1 -> P 2/3, R 2/3
    # 0.4: 2/2 -> P 1/2, R 2/3; 0.3: 3/2 -> P 3/5, R 1
    assert precision_recall_curve(LABELS, SCORES) == [
        (0.9, 1.0, pytest.approx(1 / 3)),
        (0.8, 1.0, pytest.approx(2 / 3)),
        (0.7, pytest.approx(2 / 3), pytest.approx(2 / 3)),
        (0.4, 0.5, pytest.approx(2 / 3)),
        (0.3, 0.6, 1.0),
    ]


def test_precision_recall_curve_groups_ties() -> None:
    # both 0.5 scores count together: 1 tp + 1 fp -> P 1/2, R 1/2; then 0.2: P 2/3, R 1
    assert precision_recall_curve([1, 0, 1], [0.5, 0.5, 0.2]) == [
        (0.5, 0.5, 0.5),
        (0.2, pytest.approx(2 / 3), 1.0),
    ]


def test_best_f1_threshold() -> None:
    # F1 along the curve: 0.9 -> 1/2, 0.8 -> 4/5, 0.7 -> 2/3, 0.4 -> 4/7, 0.3 -> 3/4
    assert best_f1_threshold(LABELS, SCORES) == 0.8
    # tie: 0.9 -> P 1, R 1/2 (F1 2/3); 0.6 -> P 1/2, R 1 (F1 2/3): the higher threshold wins
    assert best_f1_threshold([1, 0, 0, 1], [0.9, 0.8, 0.7, 0.6]) == 0.9
    with pytest.raises(ValueError):
        best_f1_threshold([], [])


def test_retries_total_sums_every_dependency() -> None:
    from streams.metrics import ResolverMetrics

    m = ResolverMetrics()
    assert m.retries_total() == 0
    m.retries.labels("triton").inc(2)
    m.retries.labels("milvus").inc()
    assert m.retries_total() == 3

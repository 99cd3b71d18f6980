"""Scoring a pair set: each labelled pair classified by the policy, P/R/F1 of "positive"."""

from __future__ import annotations

from collections import Counter
from typing import Any

from evaluation.cluster_scoring import WORST_ERRORS, EvaluationResult, describe, prf_dict, top_signals
from evaluation.metrics import pair_classification_prf
from evaluation.pair_examples import PairExample, positive_relation
from resolution.matcher import PairScore
from resolution.model import Relation
from resolution.policy import DecisionPolicy


def pair_positive(example: PairExample, policy: DecisionPolicy, probabilities: dict[str, float]) -> bool:
    """A pair is predicted positive when the policy gives it the relation its labels denote:
    ``same`` for two recordings; any relation for a video against a work (it performs it)."""
    relation = policy.classify(probabilities)
    if positive_relation(example.left, example.right) == "same":
        return relation == "same"
    return relation != "none"


def _labelled_prf(examples: list[PairExample], predicted: list[bool]) -> dict[str, Any]:
    """P/R/F1 of "positive" for the labelled pairs, whichever way each was predicted."""
    labels = [int(e.relation != "none") for e in examples]
    return {
        "pairs": len(examples),
        "positives": sum(labels),
        "pairwise": prf_dict(pair_classification_prf(labels, [float(p) for p in predicted], 0.5)),
    }


def pair_prf(examples: list[PairExample], scores: list[PairScore], policy: DecisionPolicy) -> dict[str, Any]:
    return _labelled_prf(
        examples, [pair_positive(e, policy, s.probabilities) for e, s in zip(examples, scores, strict=True)]
    )


def pair_details(examples: list[PairExample], scores: list[PairScore], policy: DecisionPolicy) -> EvaluationResult:
    """Scores for the curves, the confusion per label and the worst errors."""
    result = EvaluationResult(metrics={}, score_name="p(positive relation)")
    confusion: dict[str, Counter[str]] = {}
    errors: list[tuple[float, dict[str, Any]]] = []
    for e, s in zip(examples, scores, strict=True):
        label = e.relation != "none"
        predicted = pair_positive(e, policy, s.probabilities)
        same_type = positive_relation(e.left, e.right) == "same"
        score = s.probabilities["same"] if same_type else 1.0 - s.probabilities["none"]
        result.labels.append(int(label))
        result.scores.append(score)
        confusion.setdefault(e.relation, Counter())[policy.classify(s.probabilities)] += 1
        if label != predicted:
            errors.append(
                (
                    abs(score - 0.5),
                    {
                        "kind": "false positive" if predicted else "false negative",
                        "record": describe(e.left),
                        "candidate": describe(e.right),
                        "action": policy.classify(s.probabilities),
                        "reason": f"label {e.relation}",
                        "probabilities": {k: round(v, 3) for k, v in s.probabilities.items()},
                        "signals": top_signals(s.signals),
                    },
                )
            )
    result.confusion = {k: dict(v) for k, v in confusion.items()}
    result.errors = [e for _s, e in sorted(errors, key=lambda t: -t[0])[:WORST_ERRORS]]
    return result


def judged_together(example: PairExample, entity_of: dict[str, str], work_of: dict[str, str]) -> bool:
    """A pair judged from a clustering, as the stack's export is: a video and its partner are
    together when both are in one work; two recordings when both are in one entity. A record the
    clustering does not hold is with nothing."""
    a, b = example.left.content_id, example.right.content_id
    if a not in entity_of or b not in entity_of:
        return False
    if positive_relation(example.left, example.right) == Relation.VIDEO_OF.value:
        return work_of.get(a) == work_of.get(b)
    return entity_of[a] == entity_of[b]


def clustered_pair_prf(
    examples: list[PairExample], entity_of: dict[str, str], work_of: dict[str, str]
) -> dict[str, Any]:
    """P/R/F1 of the labelled pairs judged from a clustering (``judged_together``): what
    ``evaluate --through-stack`` measures, so an offline resolver's clustering compares with it."""
    return _labelled_prf(examples, [judged_together(e, entity_of, work_of) for e in examples])

"""The decision policy: from scored candidates to MERGE, LINK or NEW.

Thresholds are chosen on training data (``resolver train``) and shipped with the model; they
are never tuned on the split that is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from resolution.model import Action, Relation, ScoredCandidate


@dataclass(frozen=True)
class Thresholds:
    merge: float = 0.5
    link: float = 0.5


@dataclass(frozen=True)
class PolicyOutcome:
    action: Action
    target: ScoredCandidate | None
    relation: Relation | None
    confidence: float
    reason: str


class DecisionPolicy:
    def __init__(self, thresholds: Thresholds) -> None:
        self.thresholds = thresholds

    def decide(self, scored: list[ScoredCandidate]) -> PolicyOutcome:
        best_same = max(scored, key=lambda c: c.probabilities["same"], default=None)
        if best_same is not None and best_same.probabilities["same"] >= self.thresholds.merge:
            p = best_same.probabilities["same"]
            return PolicyOutcome(
                Action.MERGE, best_same, Relation.SAME, p, f"p(same)={p:.3f} >= {self.thresholds.merge:.3f}"
            )

        def link_score(c: ScoredCandidate) -> float:
            return max(c.probabilities["version_of"], c.probabilities["video_of"])

        best_link = max(scored, key=link_score, default=None)
        if best_link is not None and link_score(best_link) >= self.thresholds.link:
            relation = (
                Relation.VIDEO_OF
                if best_link.probabilities["video_of"] >= best_link.probabilities["version_of"]
                else Relation.VERSION_OF
            )
            p = best_link.probabilities[relation.value]
            return PolicyOutcome(
                Action.LINK, best_link, relation, p, f"p({relation.value})={p:.3f} >= {self.thresholds.link:.3f}"
            )
        top = 0.0
        if scored:
            top = max(max(c.probabilities["same"], link_score(c)) for c in scored)
        reason = "no candidates" if not scored else f"best p={top:.3f} below thresholds"
        return PolicyOutcome(Action.NEW, None, None, 1.0 - top, reason)

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

    def classify(self, probabilities: dict[str, float]) -> str:
        """The relation this policy gives one scored pair on its own: what pair-level training and
        evaluation measure, with the same order of checks as ``decide``."""
        if probabilities["same"] >= self.thresholds.merge:
            return Relation.SAME.value
        version, video = probabilities["version_of"], probabilities["video_of"]
        if max(version, video) >= self.thresholds.link:
            return Relation.VIDEO_OF.value if video >= version else Relation.VERSION_OF.value
        return Relation.NONE.value

    def decide(self, scored: list[ScoredCandidate], forbidden: frozenset[str] = frozenset()) -> PolicyOutcome:
        """``forbidden``: entities the item must not be merged into (curators' must-not-link, or
        contradicting evidence); they may still be linked to."""
        mergeable = [c for c in scored if c.candidate.entity_id not in forbidden]
        best_same = max(mergeable, key=lambda c: c.probabilities["same"], default=None)
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

"""Why a labelled positive pair is apart in a streamed clustering: the step of resolving that lost it.

A pair set scores each pair on its own; a clustering puts a record in one work, through the
candidates it was compared with and the one target it was linked to. For a positive pair the
clustering holds apart, the later of its two records (in stream order) tells which step:

- ``not_candidate``: the earlier record was never among the later one's candidates;
- ``below_link``: it was, but scored below the merge and link thresholds;
- ``other_target``: it scored above one of them, and the policy chose a target in another work;
- ``undone``: the later record was put in the earlier one's work, and a correction (or a move of
  either record) took them apart afterwards;
- ``apart_in_scoring``: both in one work, and the pair still judged apart (a record missing from
  the clustering).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from evaluation.pair_examples import PairExample
from evaluation.pair_scoring import judged_together
from evaluation.streaming import StreamOutcome
from resolution.model import Action, ScoredCandidate
from resolution.policy import Thresholds

REASONS = ("not_candidate", "below_link", "other_target", "undone", "apart_in_scoring")


@dataclass(frozen=True)
class MissedPair:
    example: PairExample
    reason: str
    later: str  # the record decided second
    partner: ScoredCandidate | None  # the earlier record as the later one's candidate, if it was one


def _above(c: ScoredCandidate, t: Thresholds) -> bool:
    p = c.probabilities
    return p["same"] >= t.merge or max(p["version_of"], p["video_of"]) >= t.link


def missed_positives(examples: list[PairExample], outcome: StreamOutcome, thresholds: Thresholds) -> list[MissedPair]:
    position = {cid: n for n, cid in enumerate(outcome.order)}
    out = []
    for e in examples:
        if e.relation == "none" or judged_together(e, outcome.entity_of, outcome.work_of):
            continue
        a, b = e.left.content_id, e.right.content_id
        if a not in position or b not in position:
            out.append(MissedPair(e, "apart_in_scoring", b, None))
            continue
        later, earlier = (a, b) if position[a] > position[b] else (b, a)
        if outcome.work_of[a] == outcome.work_of[b]:
            out.append(MissedPair(e, "apart_in_scoring", later, None))
            continue
        decision = outcome.decisions[later]
        partner = next((c for c in decision.candidates if c.candidate.content_id == earlier), None)
        # The earlier record's work when the later one was decided: as a candidate it carries it.
        earlier_work = partner.candidate.work_id if partner else outcome.decisions[earlier].work_id
        joined = decision.action in (Action.MERGE, Action.LINK) and decision.work_id == earlier_work
        if joined:
            reason = "undone"
        elif partner is None:
            reason = "not_candidate"
        elif not _above(partner, thresholds):
            reason = "below_link"
        else:
            reason = "other_target"
        out.append(MissedPair(e, reason, later, partner))
    return out


def reason_counts(missed: list[MissedPair]) -> dict[str, int]:
    counts = Counter(m.reason for m in missed)
    return {r: counts.get(r, 0) for r in REASONS}

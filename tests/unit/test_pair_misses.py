"""Why a positive pair is apart in a clustering: each step of resolving, on a hand-made outcome."""

from __future__ import annotations

from evaluation.pair_examples import PairExample
from evaluation.pair_misses import missed_positives, reason_counts
from evaluation.streaming import StreamOutcome
from resolution.model import Action, Candidate, Decision, Relation, ScoredCandidate
from resolution.normalise import NormalisedItem
from resolution.policy import Thresholds

THRESHOLDS = Thresholds(merge=0.5, link=0.5)


def _video(cid: str) -> NormalisedItem:
    return NormalisedItem(content_id=cid, kind="music_video", title_core=cid, version_class="video")


def _pair(a: str, b: str) -> PairExample:
    return PairExample("t", "valid", _video(a), _video(b), 0.0, Relation.VIDEO_OF.value)


def _scored(cid: str, work: str, video_of: float) -> ScoredCandidate:
    probabilities = {"same": 0.0, "version_of": 0.0, "video_of": video_of, "none": 1.0 - video_of}
    return ScoredCandidate(Candidate(cid, f"e-{cid}", work, 0.5, {}), Relation.VIDEO_OF, video_of, probabilities, {})


def _decision(cid: str, work: str, action: Action, candidates: tuple[ScoredCandidate, ...] = ()) -> Decision:
    return Decision(f"ev-{cid}", cid, action, f"e-{cid}", work, 1.0, candidates=candidates)


def test_each_step_that_keeps_a_positive_pair_apart() -> None:
    decisions = {
        "a": _decision("a", "W1", Action.NEW),
        "b": _decision("b", "W2", Action.NEW),  # a was not among its candidates
        "c": _decision("c", "W3", Action.NEW, (_scored("a", "W1", 0.2),)),  # a scored below link
        "d": _decision("d", "W2", Action.LINK, (_scored("a", "W1", 0.7), _scored("b", "W2", 0.9))),
        "e": _decision("e", "W1", Action.LINK, (_scored("a", "W1", 0.9),)),  # linked, then moved away
        "f": _decision("f", "W1", Action.LINK, (_scored("a", "W1", 0.9),)),  # together: not a miss
    }
    work_of = {"a": "W1", "b": "W2", "c": "W3", "d": "W2", "e": "W4", "f": "W1"}
    outcome = StreamOutcome(list(decisions), decisions, {c: f"e-{c}" for c in decisions}, work_of, 1.0)
    pairs = [_pair(x, "a") for x in "bcdef"]
    missed = missed_positives(pairs, outcome, THRESHOLDS)
    assert [(m.later, m.reason) for m in missed] == [
        ("b", "not_candidate"),
        ("c", "below_link"),
        ("d", "other_target"),
        ("e", "undone"),
    ]
    assert reason_counts(missed) == {
        "not_candidate": 1,
        "below_link": 1,
        "other_target": 1,
        "undone": 1,
        "apart_in_scoring": 0,
    }

"""The cross-encoder's place in scoring: only the fast matcher's uncertain recording pairs, its
p(same) mapped onto the merge threshold, hard evidence still applied after it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest

from inference.cross_encoder import record_text
from resolution.matcher import (
    BandRefinedScorer,
    PairInput,
    PairScore,
    UncertainBand,
    onto_threshold,
    refined,
)
from resolution.normalise import NormalisedItem
from resolution.policy import DecisionPolicy, Thresholds


def item(cid: str, title: str = "illusion", kind: str = "recording", isrc: str | None = None) -> NormalisedItem:
    return NormalisedItem(
        content_id=cid,
        kind=kind,
        title_core=title,
        artists=("zedd",),
        featured=("echosmith",),
        release="true colors",
        duration_ms=390000,
        year=2015,
        isrc=isrc,
    )


class FixedScorer:
    """The fast matcher's answer, given per pair by the right side's id: p(same) only."""

    model_version = "matcher-test"

    def __init__(self, p_same: dict[str, float]) -> None:
        self.p_same = p_same

    async def score(self, pairs: list[PairInput]) -> list[PairScore]:
        out = []
        for p in pairs:
            same = self.p_same[p.right.content_id]
            rest = 1.0 - same
            probabilities = {"same": same, "version_of": 0.5 * rest, "video_of": 0.0, "none": 0.5 * rest}
            signals = {"isrc_conflict": float(bool(p.left.isrc and p.right.isrc and p.left.isrc != p.right.isrc))}
            out.append(PairScore(probabilities, signals))
        return out


class RecordingRefiner:
    """Says p(same) = ``answer`` for every pair and remembers what it was asked."""

    model_version = "xenc-test"
    decision_threshold = 0.4

    def __init__(self, answer: float) -> None:
        self.answer = answer
        self.asked: list[str] = []

    async def same_probability(self, pairs: list[PairInput]) -> Iterable[float]:
        self.asked.extend(p.right.content_id for p in pairs)
        return [self.answer] * len(pairs)


def scored(refiner: RecordingRefiner, p_same: dict[str, float], pairs: list[PairInput]) -> list[PairScore]:
    scorer = BandRefinedScorer(FixedScorer(p_same), refiner, UncertainBand(0.1, 0.9), lambda: 0.8)
    return asyncio.run(scorer.score(pairs))


def test_only_recording_pairs_in_the_band_are_refined_and_decided_by_the_refiner() -> None:
    left = item("l")
    pairs = [
        PairInput(left, item("sure-no"), 0.5),
        PairInput(left, item("unsure"), 0.9),
        PairInput(left, item("sure-yes"), 0.99),
        PairInput(left, item("video", kind="music_video"), 0.9),
    ]
    p_same = {"sure-no": 0.02, "unsure": 0.6, "sure-yes": 0.97, "video": 0.5}
    refiner = RecordingRefiner(0.7)
    scores = scored(refiner, p_same, pairs)
    assert refiner.asked == ["unsure"]
    assert [s.probabilities["same"] for s in scores][::2] == [0.02, 0.97]
    assert scores[3].probabilities["same"] == 0.5  # a video's relation is the matcher's call
    unsure = scores[1]
    assert unsure.signals["refined_same"] == pytest.approx(0.7)
    # 0.7 is above the refiner's own threshold 0.4: above the merge threshold 0.8 after mapping,
    # so the policy merges where the matcher alone (0.6) would not.
    assert unsure.probabilities["same"] > 0.8
    assert DecisionPolicy(Thresholds(merge=0.8, link=0.5)).classify(unsure.probabilities) == "same"
    assert sum(unsure.probabilities.values()) == pytest.approx(1.0)
    assert unsure.probabilities["version_of"] == pytest.approx(unsure.probabilities["none"])


def test_a_refiner_saying_no_keeps_the_pair_apart() -> None:
    left = item("l")
    scores = scored(RecordingRefiner(0.1), {"unsure": 0.85}, [PairInput(left, item("unsure"), 0.9)])
    assert scores[0].probabilities["same"] < 0.8


def test_hard_evidence_still_wins_over_the_refiner() -> None:
    left = item("l", isrc="USAAA0000001")
    right = item("unsure", isrc="USAAA0000002")
    scores = scored(RecordingRefiner(0.99), {"unsure": 0.5}, [PairInput(left, right, 0.9)])
    assert scores[0].probabilities["same"] == pytest.approx(0.01)


def test_the_mapping_puts_the_refiners_threshold_on_the_merge_threshold() -> None:
    assert onto_threshold(0.4, 0.4, 0.8) == pytest.approx(0.8)
    assert onto_threshold(0.0, 0.4, 0.8) == 0.0
    assert onto_threshold(1.0, 0.4, 0.8) == pytest.approx(1.0)
    values = [onto_threshold(p / 20, 0.4, 0.8) for p in range(21)]
    assert values == sorted(values)
    assert refined({"same": 1.0, "version_of": 0.0, "video_of": 0.0, "none": 0.0}, 0.3)["none"] == pytest.approx(0.7)


def test_a_band_must_be_a_range_of_probabilities() -> None:
    with pytest.raises(ValueError):
        UncertainBand(0.9, 0.1)
    with pytest.raises(ValueError):
        UncertainBand(-0.1, 0.5)


def test_a_record_is_serialised_with_its_field_names() -> None:
    text = record_text(item("x"))
    assert text == (
        "COL title VAL illusion COL artist VAL zedd COL featuring VAL echosmith "
        "COL release VAL true colors COL length VAL 6:30 COL year VAL 2015"
    )

"""Pair scoring: how likely two items are the same recording, a version, or a video of it.

``PairScorer`` is what the resolver calls, once per batch. ``RuleScorer`` is the transparent
baseline that needs no trained model; the learned matcher (``inference``) implements the same
protocol, served by Triton or run in-process.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from resolution.features import pair_signals
from resolution.model import Relation
from resolution.normalise import NormalisedItem

RELATIONS: tuple[str, ...] = (Relation.SAME.value, Relation.VERSION_OF.value, Relation.VIDEO_OF.value, "none")


@dataclass(frozen=True)
class PairInput:
    left: NormalisedItem
    right: NormalisedItem
    text_cosine: float
    # The pair's media similarities (``resolution.media_evidence.media_signals``), None where
    # either side has no media: a learned matcher reads them as features (0 when absent).
    media: Mapping[str, float] | None = None


@dataclass(frozen=True)
class PairScore:
    probabilities: dict[str, float]
    signals: dict[str, float]

    @property
    def best_relation(self) -> str:
        return max(RELATIONS[:3], key=lambda r: self.probabilities[r])


class PairScorer(Protocol):
    # Read-only here: a plain attribute satisfies it, and so does a scorer whose version follows
    # another's (``BandRefinedScorer``).
    @property
    def model_version(self) -> str: ...

    async def score(self, pairs: list[PairInput]) -> list[PairScore]: ...


def _moved(probabilities: dict[str, float], relation: str, to: str) -> dict[str, float]:
    """Every rule's one move: what a scorer gave ``relation`` goes to ``to``, leaving 0.01."""
    moved = probabilities[relation] - 0.01
    return {**probabilities, relation: 0.01, to: probabilities.get(to, 0.0) + moved}


def with_identifier_evidence(probabilities: dict[str, float], signals: dict[str, float]) -> dict[str, float]:
    """Two different valid ISRCs are two recordings, whatever the text says.

    The golden sets carry no ISRCs, so a trained model cannot have learned this; it is applied
    after any scorer. The p(same) it removes goes to ``none``."""
    if signals.get("isrc_conflict", 0.0) < 1.0 or probabilities.get("same", 0.0) <= 0.01:
        return probabilities
    return _moved(probabilities, "same", to="none")


# Same recordings whose titles lost a "(Live)" or "(Demo)" differ in length by under a second in
# the MusicBrainz training portions (106 of 109 such pairs); store lengths differ by a few.
PERFORMANCE_GAP_S = 10.0


def with_performance_evidence(probabilities: dict[str, float], signals: dict[str, float]) -> dict[str, float]:
    """A demo, acoustic, live or karaoke take against a track without that tag, their lengths
    ``PERFORMANCE_GAP_S`` or more apart, is another performance of the work: a version, not the
    same recording, however well title, artist and release agree (a model learns the opposite
    from feeds that drop the tag). The p(same) it removes goes to ``version_of``."""
    if (
        signals.get("performance_differs", 0.0) < 1.0
        or signals.get("duration_known", 0.0) < 1.0
        or signals.get("duration_diff_s", 0.0) < PERFORMANCE_GAP_S
        or probabilities.get("same", 0.0) <= 0.01
    ):
        return probabilities
    return _moved(probabilities, "same", to="version_of")


def with_other_cut_evidence(probabilities: dict[str, float], signals: dict[str, float]) -> dict[str, float]:
    """One artist's same-titled track of another length (a radio edit, an extended mix, a
    re-release; neither a video) is a version of the same song when it is not the same
    recording: the p(none) a scorer gives it goes to ``version_of``. A model trained on the golden
    sets cannot learn it (MusicBrainz, the only set with lengths and same-artist namesakes,
    records no works, so it labels these pairs "none"). p(same) is left alone: whether the two
    are one recording remains the scorer's call."""
    if (
        signals.get("title_equal", 0.0) < 1.0
        or signals.get("title_placeholder", 0.0) >= 1.0
        or signals.get("artist_known", 0.0) < 1.0
        or signals.get("artist_overlap", 0.0) < 1.0
        or signals.get("one_is_video", 0.0) >= 1.0
        or signals.get("both_video", 0.0) >= 1.0
        or signals.get("duration_known", 0.0) < 1.0
        or signals.get("duration_diff_s", 0.0) < PERFORMANCE_GAP_S
        or probabilities.get("none", 0.0) <= 0.01
    ):
        return probabilities
    return _moved(probabilities, "none", to="version_of")


def with_alternate_title_evidence(probabilities: dict[str, float], signals: dict[str, float]) -> dict[str, float]:
    """Two records whose titles differ but share a name of the song (``title_alternate_shared``:
    "Laisse tomber les filles" and "Chick Habit / Laisse tomber les filles", "Goodbye My Love,
    Goodbye" and "Dovidjenja ljubavi (Goodbye My Love, Goodbye)") are versions of one work when
    they are not one recording: the p(none) a scorer gives them goes to ``version_of``. The
    matcher's features compare whole titles, so they read such a pair as two songs; the served
    model is fixed, so this is a rule after it, not a feature. p(same) is left to the scorer."""
    if signals.get("title_alternate_shared", 0.0) < 1.0 or probabilities.get("none", 0.0) <= 0.01:
        return probabilities
    return _moved(probabilities, "none", to="version_of")


def with_rule_evidence(probabilities: dict[str, float], signals: dict[str, float]) -> dict[str, float]:
    """The hard evidence applied after any scorer: identifiers, performances, other cuts,
    alternate titles."""
    applied = with_performance_evidence(with_identifier_evidence(probabilities, signals), signals)
    return with_alternate_title_evidence(with_other_cut_evidence(applied, signals), signals)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class RuleScorer:
    """Hand-set weights over the comparison signals: the baseline before a model is trained."""

    model_version = "rules-1"

    async def score(self, pairs: list[PairInput]) -> list[PairScore]:
        return [self.score_one(p) for p in pairs]

    def score_one(self, pair: PairInput) -> PairScore:
        s = pair_signals(pair.left, pair.right, pair.text_cosine)
        title = max(s["title_token_set"], s["title_ratio"])
        artist = max(s["artist_token_set"], s["artist_overlap"]) if s["artist_known"] else 0.7
        duration_penalty = 0.0
        if s["duration_known"]:
            duration_penalty = min(s["duration_diff_s"], 60.0) / 10.0
        identity = 6.0 * title + 4.0 * artist + 3.0 * s["text_cosine"] - 10.5 - duration_penalty
        identity += 6.0 * s["isrc_equal"] - 6.0 * s["isrc_conflict"]
        same_work = _sigmoid(8.0 * title + 2.0 * s["text_cosine"] - 7.5)
        distinct_form = max(s["version_tags_differ"], s["one_is_video"])
        p_identity = _sigmoid(identity)
        p_same = p_identity * (1.0 - distinct_form)
        p_video = same_work * s["one_is_video"] * _sigmoid(4.0 * artist - 2.0)
        # A cover (other artist) or a tagged version of the same work.
        cover = same_work * (1.0 - artist) * (1.0 - s["one_is_video"])
        p_version = max(same_work * s["version_tags_differ"] * (1.0 - s["one_is_video"]), cover * 0.9)
        p_version = min(p_version, 1.0 - p_same)
        p_video = min(p_video, 1.0 - p_same - p_version)
        p_none = max(0.0, 1.0 - p_same - p_version - p_video)
        probs = {"same": p_same, "version_of": p_version, "video_of": p_video, "none": p_none}
        return PairScore(probabilities=probs, signals=s)


class PairRefiner(Protocol):
    """A slower, more exact judge of "same recording" for the pairs the fast scorer leaves
    uncertain (the cross-encoder, ``inference.cross_encoder``): p(same) per pair."""

    model_version: str
    # The p(same) at which it says "same" (chosen on its tune pairs).
    decision_threshold: float

    async def same_probability(self, pairs: list[PairInput]) -> Iterable[float]: ...


@dataclass(frozen=True)
class UncertainBand:
    """Fast-matcher p(same) in [low, high]: the pair goes to the refiner."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= self.high <= 1.0:
            raise ValueError(f"an uncertain band needs 0 <= low <= high <= 1, not [{self.low}, {self.high}]")

    def holds(self, p_same: float) -> bool:
        return self.low <= p_same <= self.high


def onto_threshold(p: float, own: float, target: float) -> float:
    """``p`` moved monotonically (piecewise linear) so that the refiner's own decision threshold
    lands on the policy's merge threshold: the refiner decides, the policy's threshold stays one."""
    if p < own:
        return p / own * target if own > 0 else target
    return target + (p - own) / (1.0 - own) * (1.0 - target) if own < 1 else 1.0


def refined(probabilities: dict[str, float], p_same: float) -> dict[str, float]:
    """The refiner's p(same) in place of the fast scorer's; the rest shared out as before."""
    rest = 1.0 - probabilities["same"]
    others = [r for r in RELATIONS if r != "same"]
    shares = {r: float(r == "none") for r in others} if rest <= 1e-09 else {r: probabilities[r] / rest for r in others}
    return {"same": p_same, **{r: (1.0 - p_same) * shares[r] for r in others}}


class BandRefinedScorer:
    """The fast scorer for every pair; the refiner, in addition, for the recording pairs whose
    fast p(same) falls in the uncertain band, its p(same) replacing the fast one (mapped onto
    the merge threshold ``merge_threshold()`` returns, which follows promotions). The rule
    evidence (identifiers, performances, other cuts) is applied again after it, so a refiner
    never overrides hard evidence. ``signals["refined_same"]`` records the refiner's raw p(same)."""

    def __init__(
        self,
        fast: PairScorer,
        refiner: PairRefiner,
        band: UncertainBand,
        merge_threshold: Callable[[], float],
    ) -> None:
        self.fast = fast
        self.refiner = refiner
        self.band = band
        self._merge_threshold = merge_threshold
        self.refined_pairs = 0

    @property
    def model_version(self) -> str:
        return f"{self.fast.model_version}+{self.refiner.model_version}"

    def in_band(self, pair: PairInput, score: PairScore) -> bool:
        videos = pair.left.kind.endswith("video") or pair.right.kind.endswith("video")
        return not videos and self.band.holds(score.probabilities["same"])

    async def score(self, pairs: list[PairInput]) -> list[PairScore]:
        scores = await self.fast.score(pairs)
        todo = [n for n, (p, s) in enumerate(zip(pairs, scores, strict=True)) if self.in_band(p, s)]
        if not todo:
            return scores
        p_same = await self.refiner.same_probability([pairs[n] for n in todo])
        merge = self._merge_threshold()
        out = list(scores)
        for n, p in zip(todo, p_same, strict=True):
            mapped = onto_threshold(float(p), self.refiner.decision_threshold, merge)
            signals = {**scores[n].signals, "refined_same": float(p)}
            out[n] = PairScore(with_rule_evidence(refined(scores[n].probabilities, mapped), signals), signals)
        self.refined_pairs += len(todo)
        return out

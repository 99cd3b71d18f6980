"""The learned fusion: media similarities as matcher features, what a pair without media feeds the
model, the media set's labels and dropout copies, and the resolver handing media to the scorer."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from inference.matcher_model import LocalPairScorer, MatcherModel, MatcherNet, pair_features
from media.generated_set import MediaItem, MediaSetBuilder, source_split
from resolution.candidates import CandidateFinder, InMemoryVectorIndex
from resolution.entities import EntityStore
from resolution.features import MEDIA_FEATURE_NAMES
from resolution.matcher import PairInput, PairScore
from resolution.media_evidence import MEDIA_SIGNALS, FusionRule, MediaEvidence, media_signals
from resolution.model import ContentItem
from resolution.normalise import NormalisedItem
from resolution.policy import DecisionPolicy, Thresholds
from resolution.resolver import BatchResolver
from tests.unit.text_fakes import BOW_DIM, BagOfWordsEncoder
from training.matcher import MODEL_FEATURES, SignalExample, examples_matrix
from training.media_pairs import DROPOUTS, _kept, media_relation


def _pair(media: dict[str, float] | None = None) -> PairInput:
    a = NormalisedItem("a", "recording", "yesterday", artists=("the beatles",), duration_ms=125_000)
    b = NormalisedItem("b", "music_video", "official video", artists=("beatlesvevo",), duration_ms=126_000)
    return PairInput(a, b, 0.41, media)


def _model() -> MatcherModel:
    torch.manual_seed(0)
    return MatcherModel(MatcherNet(len(MODEL_FEATURES), 8).eval(), MODEL_FEATURES, Thresholds(0.6, 0.4))


AUDIO_SAYS_SAME = {"audio_fingerprint": 0.93, "audio_chroma": 0.99, "audio_compared": 1.0,
                   "image_hash": 0.95, "image_compared": 1.0}  # fmt: skip


def test_the_feature_vectors_carry_the_media_similarities() -> None:
    assert MODEL_FEATURES[-len(MEDIA_SIGNALS) :] == MEDIA_SIGNALS == MEDIA_FEATURE_NAMES
    signals, matrix = pair_features([_pair(AUDIO_SAYS_SAME), _pair()], MODEL_FEATURES)
    columns = [MODEL_FEATURES.index(n) for n in MEDIA_SIGNALS]
    assert matrix[0, columns].tolist() == [np.float32(AUDIO_SAYS_SAME[n]) for n in MEDIA_SIGNALS]
    # Without media: 0 with *_compared 0, and the decision's signals name no media.
    assert matrix[1, columns].tolist() == [0.0] * len(MEDIA_SIGNALS)
    assert signals[0]["audio_fingerprint"] == 0.93 and "audio_fingerprint" not in signals[1]
    assert matrix[0, : -len(MEDIA_SIGNALS)].tolist() == matrix[1, : -len(MEDIA_SIGNALS)].tolist()


def test_a_pair_without_media_is_scored_as_one_whose_media_compared_nothing() -> None:
    """An absent modality and one not on both sides are the same input to the matcher."""
    scorer = LocalPairScorer(_model())
    none_at_all = scorer.score_now([_pair()])[0].probabilities
    one_sided = media_signals(MediaEvidence(fingerprint=np.arange(50, dtype=np.uint32)), MediaEvidence())
    assert set(one_sided.values()) == {0.0}
    assert scorer.score_now([_pair(one_sided)])[0].probabilities == none_at_all
    assert scorer.score_now([_pair(AUDIO_SAYS_SAME)])[0].probabilities != none_at_all


def test_an_older_matcher_without_media_features_still_scores_pairs_with_media() -> None:
    text_names = MODEL_FEATURES[: -len(MEDIA_SIGNALS)]
    torch.manual_seed(0)
    old = MatcherModel(MatcherNet(len(text_names), 8).eval(), text_names, Thresholds(0.6, 0.4))
    scorer = LocalPairScorer(old)
    with_media, without = scorer.score_now([_pair(AUDIO_SAYS_SAME), _pair()])
    assert with_media.probabilities == without.probabilities
    assert with_media.signals["audio_compared"] == 1.0


def test_signal_examples_without_media_read_zero_for_the_media_features() -> None:
    text = dict.fromkeys(MODEL_FEATURES[: -len(MEDIA_SIGNALS)], 0.5)
    matrix = examples_matrix([SignalExample("d", "fit", "same", text)], MODEL_FEATURES)
    assert matrix[0, -len(MEDIA_SIGNALS) :].tolist() == [0.0] * len(MEDIA_SIGNALS)


def _item(cid: str, role: str, recording: str, work: str) -> MediaItem:
    kind = "music_video" if role == "video" else "recording"
    return MediaItem(cid, kind, "t", ("a",), 1000, "", "", role, recording, work, "img")


def test_media_set_labels_follow_recording_and_work() -> None:
    studio = _item("s", "studio", "rec-1", "w-1")
    assert media_relation(studio, _item("d", "duplicate", "rec-1", "w-1")) == "same"
    assert media_relation(studio, _item("v", "video", "rec-1", "w-1")) == "video_of"
    # A video carries its recording's audio: against another take of the work it is a version.
    assert media_relation(_item("v", "video", "rec-1", "w-1"), _item("l", "live", "rec-2", "w-1")) == "version_of"
    assert media_relation(studio, _item("o", "studio", "rec-3", "w-3")) == "none"


def test_the_dropout_copies_cover_every_combination_with_some_media() -> None:
    full = MediaEvidence(fingerprint=np.arange(60, dtype=np.uint32), chroma=np.ones(192, np.float32),
                         image_bits=np.ones(64, dtype=bool))  # fmt: skip
    seen = []
    for _name, kept in DROPOUTS:
        signals = media_signals(_kept(full, kept), _kept(full, kept))
        seen.append((signals["audio_compared"], signals["image_compared"]))
    # Never both dropped: text pairs come from the golden sets (training/media_pairs.py says why).
    assert sorted(seen) == [(0.0, 1.0), (1.0, 0.0), (1.0, 1.0)]


def test_fit_tune_and_valid_sources_are_split_by_name() -> None:
    names = [f"chorale-{n}" for n in range(400)]
    splits = [source_split(n) for n in names]
    assert set(splits) == {"fit", "tune", "valid"}
    # About a quarter held out for the gate; the rest split by the first hash byte as before.
    assert 0.15 < splits.count("valid") / len(names) < 0.35
    for name, split in zip(names, splits, strict=True):
        if split != "valid":
            assert split == ("fit", "tune")[hashlib.sha1(name.encode()).digest()[0] % 2]


def test_training_live_takes_alternate_between_the_studio_cover_and_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half the training live takes show the studio cover, so a shared picture is not taught as
    the same recording; an evaluation set keeps a cover of its own for every live take."""
    picked: list[str] = []

    def own_cover(self: MediaSetBuilder, name: str) -> tuple[Path, str]:
        picked.append(name)
        return tmp_path / f"{name}.jpg", f"img-own-{name}"

    def resized(self: MediaSetBuilder, cover: Path, transform: str, name: str) -> Path:
        assert transform == "resize"
        return tmp_path / f"{name}.jpg"

    monkeypatch.setattr(MediaSetBuilder, "_cover", own_cover)
    monkeypatch.setattr(MediaSetBuilder, "_image_duplicate", resized)
    studio = tmp_path / "studio.jpg"
    for split, expected in (
        ("fit", ["img-studio", "img-own-b", "img-studio"]),
        ("eval", ["img-own-a", "img-own-b", "img-own-c"]),
    ):
        builder = MediaSetBuilder(tmp_path / split, 13, "tiny", split)
        ids = [builder._live_cover(name, n, studio, "img-studio")[1] for n, name in enumerate("abc")]
        assert ids == expected, split


class _RecordingScorer:
    """Remembers the pairs it was given; says "same" for everything."""

    model_version = "recording-scorer"

    def __init__(self) -> None:
        self.pairs: list[PairInput] = []

    async def score(self, pairs: list[PairInput]) -> list[PairScore]:
        self.pairs.extend(pairs)
        probabilities = {"same": 0.9, "version_of": 0.04, "video_of": 0.03, "none": 0.03}
        return [PairScore(probabilities, {}) for _ in pairs]


class _Reader:
    def __init__(self, evidence: dict[str, MediaEvidence]) -> None:
        self._evidence = evidence

    async def read(self, items: list[ContentItem]) -> list[MediaEvidence]:
        return [self._evidence.get(i.content_id, MediaEvidence()) for i in items]


def _resolver(scorer: Any, reader: _Reader, rule: bool) -> BatchResolver:
    policy = DecisionPolicy(Thresholds(merge=0.5, link=0.5))
    finder = CandidateFinder(InMemoryVectorIndex(BOW_DIM), 10, 10, BOW_DIM)
    fusion = FusionRule.FULL if rule else FusionRule.OFF
    return BatchResolver(BagOfWordsEncoder(), finder, scorer, policy, EntityStore({}), media=reader, media_rule=fusion)


def test_the_resolver_hands_each_pair_its_media_and_applies_the_rule_only_when_asked() -> None:
    fp = np.random.default_rng(1).integers(0, 2**32, 200, dtype=np.uint64).astype(np.uint32)
    other = np.random.default_rng(2).integers(0, 2**32, 200, dtype=np.uint64).astype(np.uint32)
    items = [ContentItem("e1", "a", "feed", "recording", "Song", ("Band",), audio_ref="/a.wav"),
             ContentItem("e2", "b", "feed", "recording", "Song", ("Band",), audio_ref="/b.wav")]  # fmt: skip
    reader = _Reader({"a": MediaEvidence(fingerprint=fp), "b": MediaEvidence(fingerprint=other)})
    for rule in (False, True):
        scorer = _RecordingScorer()
        decisions = asyncio.run(_resolver(scorer, reader, rule).resolve(list(items))).decisions
        (pair,) = scorer.pairs
        assert pair.media is not None and pair.media["audio_compared"] == 1.0
        assert pair.media["audio_fingerprint"] < 0.2
        # Other audio: the rule overrules the scorer's "same"; without it the scorer decides.
        assert (decisions[1].action.value == "MERGE") is (not rule)
    plain = _RecordingScorer()
    asyncio.run(_resolver(plain, _Reader({}), False).resolve(list(items)))
    assert plain.pairs[0].media is None


def test_the_auto_fusion_rule_follows_whether_the_scoring_matcher_reads_media() -> None:
    """ "auto" (the default) applies the hand rule only while the matcher that scores has no media
    feature; asked each time, so a promotion to a media-trained version turns it off."""
    from content_resolver.composition import media_fusion_rule, scoring_features
    from settings import Settings

    text_names = MODEL_FEATURES[: -len(MEDIA_SIGNALS)]
    text_only = MatcherModel(MatcherNet(len(text_names), 8).eval(), text_names, Thresholds(0.6, 0.4))

    class _Swapped(LocalPairScorer):
        """A scorer whose model changes under it, as a Triton scorer's does on promotion."""

        served = text_only

        @property
        def model(self) -> MatcherModel:
            return self.served

    scorer = _Swapped(text_only)
    settings = Settings.from_env({})
    assert settings.worker.media_fusion_rule == "auto"
    rule = media_fusion_rule(settings, scorer)
    assert rule() is FusionRule.FULL and scoring_features(scorer) == text_names
    scorer.served = _model()
    # Behind a media-trained matcher only the video picture rule stays (media_evidence.FusionRule).
    assert rule() is FusionRule.VIDEO_PICTURE and scoring_features(scorer) == MODEL_FEATURES
    full, off = FusionRule.FULL, FusionRule.OFF
    for word, expected in (("on", full), ("1", full), ("off", off), ("0", off)):
        fixed = media_fusion_rule(Settings.from_env({"RESOLVER_WORKER_MEDIA_FUSION_RULE": word}), scorer)
        assert fixed() is expected, word
    with pytest.raises(ValueError, match="expected auto, on or off"):
        media_fusion_rule(Settings.from_env({"RESOLVER_WORKER_MEDIA_FUSION_RULE": "sometimes"}), scorer)


def test_the_media_head_leaves_every_pair_without_media_to_the_text_matcher(tmp_path: Path) -> None:
    """The fused version scores a pair without media on both sides exactly as its base (so no
    metadata-only set can change), learns the media where both sides have them, and reloads as
    it was saved."""
    from training.media_fusion import FusionConfig, fused_feature_names, train_fusion_head

    text_names = MODEL_FEATURES[: -len(MEDIA_SIGNALS)]
    torch.manual_seed(0)
    base = MatcherModel(MatcherNet(len(text_names), 8).eval(), text_names, Thresholds(0.6, 0.4))
    rng = np.random.default_rng(3)
    examples = []
    for n in range(400):
        text = dict(zip(text_names, rng.random(len(text_names)).tolist(), strict=True))
        same = n % 2 == 0
        media = {"audio_fingerprint": 0.9 if same else 0.1, "audio_chroma": 0.9, "audio_compared": 1.0,
                 "image_hash": 0.5, "image_compared": 1.0}  # fmt: skip
        portion = "fit" if n < 300 else "tune"
        examples.append(SignalExample("m", portion, "same" if same else "none", {**text, **media}))
    fused = train_fusion_head(base, examples, FusionConfig(epochs=60, batch_size=32), progress=False)
    assert fused.thresholds == base.thresholds and fused.metadata["base"]["version"] == base.version
    x_text = rng.random((50, len(text_names))).astype(np.float32)
    no_media = np.concatenate([x_text, np.zeros((50, len(MEDIA_SIGNALS)), np.float32)], axis=1)
    assert np.array_equal(fused.predict(no_media), base.predict(x_text))
    tune = [e for e in examples if e.portion == "tune"]
    p_same = fused.predict(examples_matrix(tune, fused.feature_names))[:, 0]
    truth = np.array([e.relation == "same" for e in tune])
    assert p_same[truth].min() > 0.5 > p_same[~truth].max()
    fused.save(tmp_path / "2")
    again = MatcherModel.load(tmp_path / "2")
    assert again.version == fused.version and again.feature_names == MODEL_FEATURES
    assert np.array_equal(again.predict(no_media), base.predict(x_text))
    with pytest.raises(ValueError, match="reads media already"):
        fused_feature_names(fused)
